"""Create table posts_tag.

  - create table posts_tag

Table:       posts_tag
Generated:   2026-11-25T06:05:02Z by `manage.py tablemigrate generate`
Label:       Initial
Destructive: no
"""

table = 'posts_tag'
label = 'Initial'
destructive = []
down_destructive = [
    'drops table posts_tag and all its rows',
]

up = [
    """CREATE TABLE "posts_tag" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "name" varchar(50) NOT NULL UNIQUE
)""",
]

down = [
    'DROP TABLE "posts_tag"',
]
