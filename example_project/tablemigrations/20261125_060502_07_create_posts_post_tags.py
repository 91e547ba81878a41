"""Create table posts_post_tags.

  - create table posts_post_tags

Table:       posts_post_tags
Generated:   2026-11-25T06:05:02Z by `manage.py tablemigrate generate`
Label:       Initial
Destructive: no
"""

table = 'posts_post_tags'
label = 'Initial'
destructive = []
down_destructive = [
    'drops table posts_post_tags and all its rows',
]

up = [
    """CREATE TABLE "posts_post_tags" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "post_id" bigint NOT NULL REFERENCES "posts_post" ("id") DEFERRABLE INITIALLY DEFERRED,
    "tag_id" bigint NOT NULL REFERENCES "posts_tag" ("id") DEFERRABLE INITIALLY DEFERRED
)""",
    'CREATE INDEX "posts_post_tags_post_id_1f164920" ON "posts_post_tags" ("post_id")',
    'CREATE UNIQUE INDEX "posts_post_tags_post_id_tag_id_9b9d69ec_uniq" ON "posts_post_tags" ("post_id", "tag_id")',
    'CREATE INDEX "posts_post_tags_tag_id_0743d52e" ON "posts_post_tags" ("tag_id")',
]

down = [
    'DROP TABLE "posts_post_tags"',
]
