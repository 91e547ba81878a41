"""Create table chats_chat.

  - create table chats_chat

Table:       chats_chat
Generated:   2026-11-25T06:05:02Z by `manage.py tablemigrate generate`
Label:       Initial
Destructive: no
"""

table = 'chats_chat'
label = 'Initial'
destructive = []
down_destructive = [
    'drops table chats_chat and all its rows',
]

up = [
    """CREATE TABLE "chats_chat" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "title" varchar(100) NOT NULL,
    "created_at" datetime NOT NULL
)""",
]

down = [
    'DROP TABLE "chats_chat"',
]
