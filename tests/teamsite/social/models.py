"""The fixture "third-party" app (as django-allauth's `account`): its table points at AUTH_USER_MODEL."""

from django.conf import settings
from django.db import models


class EmailAddress(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    email = models.EmailField(max_length=254)
    verified = models.BooleanField(default=False)
