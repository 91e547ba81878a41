"""The project's own app: tablemigrate owns its tables, the custom user model's among them."""

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    pass
