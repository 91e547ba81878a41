"""Version 1 of the fixture "third-party" app (version 2 is in ../vendor_upgrade)."""

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.name
