"""Example tests: they pass with the test database built from the models (the default) and with it
built from the tablemigrate history (EXAMPLE_TEST_MIGRATIONS=1), under `manage.py test` and pytest."""

from django.conf import settings
from django.db import connection
from django.test import TestCase, TransactionTestCase

from example_project.posts.models import Post, Tag
from example_project.users.models import User


def history_rows():
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        if "tablemigrate_history" not in tables:
            return None
        cursor.execute("SELECT count(*) FROM tablemigrate_history")
        return cursor.fetchone()[0]


class PostTests(TestCase):
    def test_the_test_database_is_built_the_configured_way(self):
        if settings.TABLEMIGRATE_TEST_MIGRATIONS:
            self.assertEqual(history_rows(), 7)  # the example's 7 migration modules
        else:
            self.assertIsNone(history_rows())

    def test_posts_with_tags(self):
        author = User.objects.create(username="ann", email="ann@example.com")
        post = Post.objects.create(author=author, title="Hello", body="...")
        post.tags.add(Tag.objects.create(name="news"))
        self.assertEqual(list(author.posts.values_list("tags__name", flat=True)), ["news"])


class FlushedBetweenTests(TransactionTestCase):
    """Each transactional test starts empty: no rows leak, and the flush keeps the history table."""

    def check_alone(self):
        User.objects.create(username="only", email="o@example.com")
        self.assertEqual(User.objects.count(), 1)
        if settings.TABLEMIGRATE_TEST_MIGRATIONS:
            self.assertEqual(history_rows(), 7)

    def test_first(self):
        self.check_alone()

    def test_second(self):
        self.check_alone()
