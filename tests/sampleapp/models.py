"""A tiny installed app, so that the command's default model discovery has something to find."""

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    title = models.CharField(max_length=200, db_index=True)


class BookProxy(Book):
    class Meta:
        proxy = True


class External(models.Model):
    name = models.TextField()

    class Meta:
        managed = False
        db_table = "external_thing"
