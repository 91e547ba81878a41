"""Create table posts_post.

  - create table posts_post

Table:       posts_post
Generated:   2026-11-25T06:05:02Z by `manage.py tablemigrate generate`
Label:       Initial
Destructive: no
"""

table = 'posts_post'
label = 'Initial'
destructive = []
down_destructive = [
    'drops table posts_post and all its rows',
]

up = [
    """CREATE TABLE "posts_post" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "author_id" bigint NOT NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED,
    "title" varchar(200) NOT NULL,
    "body" text NOT NULL,
    "published" bool NOT NULL,
    "created_at" datetime NOT NULL,
    CONSTRAINT "unique_author_title" UNIQUE ("author_id", "title")
)""",
    'CREATE INDEX "post_created_idx" ON "posts_post" ("created_at" DESC)',
    'CREATE INDEX "posts_post_author_id_fe5487bf" ON "posts_post" ("author_id")',
]

down = [
    'DROP TABLE "posts_post"',
]
