from django.db import models


class User(models.Model):
    username = models.CharField(max_length=40, unique=True)
    email = models.EmailField()
    display_name = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.username
