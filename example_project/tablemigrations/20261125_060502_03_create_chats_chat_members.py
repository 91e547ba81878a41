"""Create table chats_chat_members.

  - create table chats_chat_members

Table:       chats_chat_members
Generated:   2026-11-25T06:05:02Z by `manage.py tablemigrate generate`
Label:       Initial
Destructive: no
"""

table = 'chats_chat_members'
label = 'Initial'
destructive = []
down_destructive = [
    'drops table chats_chat_members and all its rows',
]

up = [
    """CREATE TABLE "chats_chat_members" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "chat_id" bigint NOT NULL REFERENCES "chats_chat" ("id") DEFERRABLE INITIALLY DEFERRED,
    "user_id" bigint NOT NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED
)""",
    'CREATE INDEX "chats_chat_members_chat_id_d9d62ec3" ON "chats_chat_members" ("chat_id")',
    'CREATE UNIQUE INDEX "chats_chat_members_chat_id_user_id_9a41f160_uniq" ON "chats_chat_members" ("chat_id", "user_id")',
    'CREATE INDEX "chats_chat_members_user_id_af95dfa2" ON "chats_chat_members" ("user_id")',
]

down = [
    'DROP TABLE "chats_chat_members"',
]
