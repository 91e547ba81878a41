"""The project's own app: tablemigrate owns its tables. Its models reference the tables of apps whose
Django migrations own them (a foreign key to vendor.Category and to auth.User, multi-table inheritance
from vendor.Category, and a proxy of auth.User)."""

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from vendor.models import Category


class Item(models.Model):
    title = models.CharField(max_length=100)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="items")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="items")


class FeaturedCategory(Category):
    rank = models.IntegerField(default=0)


class Staff(User):
    class Meta:
        proxy = True
