"""The project's tests, for Django's runner (`manage.py test`) and pytest-django (`pytest shop/tests.py`):
the test database has vendor's initial data (its Django data step ran) and shop's tables work."""

from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.test import TestCase
from vendor.models import Category

from shop.models import FeaturedCategory, Item, Staff


class MixedSiteTests(TestCase):
    def test_vendor_data_step_ran(self):
        self.assertEqual(list(Category.objects.values_list("name", flat=True)), ["General"])

    def test_content_types_exist(self):
        self.assertTrue(ContentType.objects.filter(app_label="shop", model="item").exists())
        self.assertTrue(ContentType.objects.filter(app_label="vendor", model="category").exists())

    def test_item_points_at_vendor_and_auth(self):
        user = Staff.objects.create(username="ann")
        general = Category.objects.get(name="General")
        Item.objects.create(title="tea", category=general, owner=user)
        self.assertEqual(list(general.items.values_list("title", "owner__username")), [("tea", "ann")])
        self.assertEqual(User.objects.get().username, "ann")  # the proxy's row is auth's

    def test_featured_category_inherits_from_vendor(self):
        FeaturedCategory.objects.create(name="Sale", rank=3)
        self.assertEqual(Category.objects.count(), 2)  # "General" and the parent row of "Sale"
        self.assertEqual(Category.objects.get(name="Sale").featuredcategory.rank, 3)
