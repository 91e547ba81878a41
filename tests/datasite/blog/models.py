"""The project's own app. `Category.position` came after the default rows (migration 0003), and the
current model's `save` numbers new categories: a data step that ran with these classes instead of the
historical models would write other rows than Django's `migrate` did."""

from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=50, unique=True)
    position = models.IntegerField(default=0)

    def save(self, *args, **kwargs):
        if not self.position:
            self.position = 100 + type(self).objects.count()
        super().save(*args, **kwargs)


class Setting(models.Model):
    key = models.CharField(max_length=50, unique=True)
    value = models.TextField()
