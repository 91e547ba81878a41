-- tablemigrate schema snapshot: the schema that replaying every migration module in this
-- directory produces. Rewritten by `manage.py tablemigrate generate`; do not edit by hand.
-- history: 14b2ddb7084d8fa1260a4218d4f870b879258fe57e13be1193e91274298f9cec
-- schema: 92716d6ffe4fb0076893e5357aa431587e2f81c2850d0a92e9629c35e06bc87e
-- models: 56eaa060831239203ef3482e4afeb0a1101c50f588756e7753a9f9cebed9f2bc

CREATE TABLE "chats_chat" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "title" varchar(100) NOT NULL,
    "created_at" datetime NOT NULL
);

CREATE TABLE "chats_chat_members" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "chat_id" bigint NOT NULL REFERENCES "chats_chat" ("id") DEFERRABLE INITIALLY DEFERRED,
    "user_id" bigint NOT NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX "chats_chat_members_chat_id_d9d62ec3" ON "chats_chat_members" ("chat_id");

CREATE UNIQUE INDEX "chats_chat_members_chat_id_user_id_9a41f160_uniq" ON "chats_chat_members" ("chat_id", "user_id");

CREATE INDEX "chats_chat_members_user_id_af95dfa2" ON "chats_chat_members" ("user_id");

CREATE TABLE "chats_message" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "chat_id" bigint NOT NULL REFERENCES "chats_chat" ("id") DEFERRABLE INITIALLY DEFERRED,
    "sender_id" bigint NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED,
    "text" text NOT NULL,
    "sent_at" datetime NOT NULL
);

CREATE INDEX "chats_message_chat_id_f3080004" ON "chats_message" ("chat_id");

CREATE INDEX "chats_message_sender_id_4f3659eb" ON "chats_message" ("sender_id");

CREATE INDEX "message_chat_sent_idx" ON "chats_message" ("chat_id", "sent_at");

CREATE TABLE "posts_post" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "author_id" bigint NOT NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED,
    "title" varchar(200) NOT NULL,
    "body" text NOT NULL,
    "published" bool NOT NULL,
    "created_at" datetime NOT NULL,
    CONSTRAINT "unique_author_title" UNIQUE ("author_id", "title")
);

CREATE INDEX "post_created_idx" ON "posts_post" ("created_at" DESC);

CREATE INDEX "posts_post_author_id_fe5487bf" ON "posts_post" ("author_id");

CREATE TABLE "posts_post_tags" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "post_id" bigint NOT NULL REFERENCES "posts_post" ("id") DEFERRABLE INITIALLY DEFERRED,
    "tag_id" bigint NOT NULL REFERENCES "posts_tag" ("id") DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX "posts_post_tags_post_id_1f164920" ON "posts_post_tags" ("post_id");

CREATE UNIQUE INDEX "posts_post_tags_post_id_tag_id_9b9d69ec_uniq" ON "posts_post_tags" ("post_id", "tag_id");

CREATE INDEX "posts_post_tags_tag_id_0743d52e" ON "posts_post_tags" ("tag_id");

CREATE TABLE "posts_tag" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "name" varchar(50) NOT NULL UNIQUE
);

CREATE TABLE "users_user" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "username" varchar(40) NOT NULL UNIQUE,
    "email" varchar(254) NOT NULL,
    "display_name" varchar(100) NOT NULL,
    "is_active" bool NOT NULL,
    "created_at" datetime NOT NULL
);

