"""The project's own shop."""

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=50, unique=True)


class Tag(models.Model):
    name = models.CharField(max_length=30)


class Item(models.Model):
    name = models.CharField(max_length=100)
    category = models.ForeignKey(Category, on_delete=models.PROTECT)
    tags = models.ManyToManyField(Tag, blank=True)


class Junk(models.Model):
    note = models.TextField(blank=True)
