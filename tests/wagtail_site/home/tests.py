"""Run by tests/test_wagtail_e2e.py under Django's test runner and under pytest-django: the test database must
hold Wagtail's initial data (made by Wagtail's own migrations) and the owned app's tables."""

from django.test import TestCase
from wagtail.models import Collection, Locale, Page, Site

from home.models import HomePage


class TestDatabaseTest(TestCase):
    def test_wagtails_initial_data_and_a_page_of_the_own_app(self):
        root = Page.get_first_root_node()
        self.assertEqual(root.depth, 1)
        self.assertTrue(Site.objects.filter(is_default_site=True).exists())
        self.assertEqual(Collection.get_first_root_node().depth, 1)
        self.assertEqual(Locale.get_default().language_code, "en")
        page = root.add_child(instance=HomePage(title="In a test", slug="in-a-test"))
        self.assertEqual(HomePage.objects.get(slug="in-a-test").get_parent().id, page.get_parent().id)
