"""The project's own app: tablemigrate owns its tables, which point at tables Wagtail's and Django's
migrations own (multi-table inheritance from wagtailcore_page, foreign keys to auth_user)."""

from django.conf import settings
from django.db import models
from wagtail.fields import RichTextField
from wagtail.models import Page


class HomePage(Page):
    intro = models.CharField(max_length=250, blank=True)
    body = RichTextField(blank=True)


class Bookmark(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bookmarks")
    page = models.ForeignKey(HomePage, on_delete=models.CASCADE, related_name="bookmarks")
    note = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "page"], name="home_bookmark_unique_user_page")]
