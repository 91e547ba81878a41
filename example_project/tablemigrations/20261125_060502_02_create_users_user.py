"""Create table users_user.

  - create table users_user

Table:       users_user
Generated:   2026-11-25T06:05:02Z by `manage.py tablemigrate generate`
Label:       Initial
Destructive: no
"""

table = 'users_user'
label = 'Initial'
destructive = []
down_destructive = [
    'drops table users_user and all its rows',
]

up = [
    """CREATE TABLE "users_user" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "username" varchar(40) NOT NULL UNIQUE,
    "email" varchar(254) NOT NULL,
    "display_name" varchar(100) NOT NULL,
    "is_active" bool NOT NULL,
    "created_at" datetime NOT NULL
)""",
]

down = [
    'DROP TABLE "users_user"',
]
