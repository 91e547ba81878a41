"""Version 2 of the fixture "third-party" app: Category gains a NOT NULL slug, filled by 0003's data step.
The upgrade test copies this file over vendor/models.py and migrations/ into vendor/migrations/."""

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100)

    def __str__(self) -> str:
        return self.name
