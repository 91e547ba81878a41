"""Create table chats_message.

  - create table chats_message

Table:       chats_message
Generated:   2026-11-25T06:05:02Z by `manage.py tablemigrate generate`
Label:       Initial
Destructive: no
"""

table = 'chats_message'
label = 'Initial'
destructive = []
down_destructive = [
    'drops table chats_message and all its rows',
]

up = [
    """CREATE TABLE "chats_message" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "chat_id" bigint NOT NULL REFERENCES "chats_chat" ("id") DEFERRABLE INITIALLY DEFERRED,
    "sender_id" bigint NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED,
    "text" text NOT NULL,
    "sent_at" datetime NOT NULL
)""",
    'CREATE INDEX "chats_message_chat_id_f3080004" ON "chats_message" ("chat_id")',
    'CREATE INDEX "chats_message_sender_id_4f3659eb" ON "chats_message" ("sender_id")',
    'CREATE INDEX "message_chat_sent_idx" ON "chats_message" ("chat_id", "sent_at")',
]

down = [
    'DROP TABLE "chats_message"',
]
