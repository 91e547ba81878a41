-- tablemigrate schema snapshot: the schema that replaying every migration module in this
-- directory produces. Rewritten by `manage.py tablemigrate generate`; do not edit by hand.
-- history: 14b2ddb7084d8fa1260a4218d4f870b879258fe57e13be1193e91274298f9cec
-- schema: 92716d6ffe4fb0076893e5357aa431587e2f81c2850d0a92e9629c35e06bc87e
-- models: 56eaa060831239203ef3482e4afeb0a1101c50f588756e7753a9f9cebed9f2bc
-- ddl: 7540cd1b20d670a68408b1368df243577d9d801ddfa677234ef3fc90c16feaf4
-- tables: digest-1

-- table {"name": "chats_chat", "digest": "2d22fbaabdc0db5e0c6ce480b5d45a4ec4d391c2bebe081ac20202c7fbf3f4e3", "ddl": ["513ed2e0847457f0b256"], "refs": [], "indexes": [], "check": "c5ec5bc09974e0c35093115e32a835f5"}
CREATE TABLE "chats_chat" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "title" varchar(100) NOT NULL,
    "created_at" datetime NOT NULL
);

-- table {"name": "chats_chat_members", "digest": "0821e82e28e49ed8ff61fc0e54c3e455a18adeec86e6e208e6801b7e12d1b1ec", "ddl": ["3f94d6f29ac8ec77d7db", "951bc38d313d63de24c2", "baedb0885e62240d6ec3", "e926c08322866a4fd875"], "refs": ["chats_chat", "users_user"], "indexes": ["chats_chat_members_chat_id_d9d62ec3", "chats_chat_members_chat_id_user_id_9a41f160_uniq", "chats_chat_members_user_id_af95dfa2"], "check": "87499017971e480f9895447eb9e2ad56"}
CREATE TABLE "chats_chat_members" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "chat_id" bigint NOT NULL REFERENCES "chats_chat" ("id") DEFERRABLE INITIALLY DEFERRED,
    "user_id" bigint NOT NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX "chats_chat_members_chat_id_d9d62ec3" ON "chats_chat_members" ("chat_id");

CREATE UNIQUE INDEX "chats_chat_members_chat_id_user_id_9a41f160_uniq" ON "chats_chat_members" ("chat_id", "user_id");

CREATE INDEX "chats_chat_members_user_id_af95dfa2" ON "chats_chat_members" ("user_id");

-- table {"name": "chats_message", "digest": "c15ae4dd0b072b67f06d8cd7db96b0d13775a452a20184185964e7a9e5a4d7a3", "ddl": ["7a0cf51932e6576c612d", "af26d1ba8390e3edef75", "d00509b38194bf7a9e71", "f6474975f4b3da425633"], "refs": ["chats_chat", "users_user"], "indexes": ["chats_message_chat_id_f3080004", "chats_message_sender_id_4f3659eb", "message_chat_sent_idx"], "check": "a81096253555861677cae211e28b9488"}
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

-- table {"name": "posts_post", "digest": "0d28097f557d70f2163859dee2caa3f297a82fbef78e410d202c2f271c769c69", "ddl": ["868b33501798af833fe1", "ccceb97ecc284b831001", "e7a1702684df157a178f"], "refs": ["users_user"], "indexes": ["post_created_idx", "posts_post_author_id_fe5487bf"], "check": "3a7179717da55a4d86990dd93df1cf04"}
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

-- table {"name": "posts_post_tags", "digest": "86a6d0bf90b0cd4c02092961b6f402c0ecda88c849dfb461c1864f140b08ab10", "ddl": ["0c2507bf07db104a3361", "1849998008db4ac7f829", "b91e04d41ac8be85c39b", "d4f021c2a9f1e23d460a"], "refs": ["posts_post", "posts_tag"], "indexes": ["posts_post_tags_post_id_1f164920", "posts_post_tags_post_id_tag_id_9b9d69ec_uniq", "posts_post_tags_tag_id_0743d52e"], "check": "bb1c109cc865390402d81e831f64b0e5"}
CREATE TABLE "posts_post_tags" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "post_id" bigint NOT NULL REFERENCES "posts_post" ("id") DEFERRABLE INITIALLY DEFERRED,
    "tag_id" bigint NOT NULL REFERENCES "posts_tag" ("id") DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX "posts_post_tags_post_id_1f164920" ON "posts_post_tags" ("post_id");

CREATE UNIQUE INDEX "posts_post_tags_post_id_tag_id_9b9d69ec_uniq" ON "posts_post_tags" ("post_id", "tag_id");

CREATE INDEX "posts_post_tags_tag_id_0743d52e" ON "posts_post_tags" ("tag_id");

-- table {"name": "posts_tag", "digest": "67f0c1204200d873afde479fc874da059d77b9f082bd69b354a7af4c3a2f732b", "ddl": ["34701eafee71602769ba"], "refs": [], "indexes": [], "check": "68e77210c9f7caa89b094187ec258bb5"}
CREATE TABLE "posts_tag" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "name" varchar(50) NOT NULL UNIQUE
);

-- table {"name": "users_user", "digest": "2640e9068a9d446f6efd242658add7e26c402eae77a730d3a491afaa638d1543", "ddl": ["aa2c797ec82e8c38f860"], "refs": [], "indexes": [], "check": "21e92dbd7700c0b607ec43468ee5d5fb"}
CREATE TABLE "users_user" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "username" varchar(40) NOT NULL UNIQUE,
    "email" varchar(254) NOT NULL,
    "display_name" varchar(100) NOT NULL,
    "is_active" bool NOT NULL,
    "created_at" datetime NOT NULL
);

