"""The project's own app: tablemigrate owns its tables. They point at tables that Wagtail's, allauth's and Django's
migrations own (multi-table inheritance from wagtailcore_page, foreign keys to auth_user and, from release 2 of
the project, to allauth's account_emailaddress).

UPGRADE_SITE_RELEASE=2 is the project's next release, deployed together with the package upgrade: a new column
with a default on ArticlePage and a new model.
"""

import os

from django.conf import settings
from django.db import models
from wagtail.models import Page

RELEASE = int(os.environ.get("UPGRADE_SITE_RELEASE", "1"))


class ArticlePage(Page):
    intro = models.CharField(max_length=250, blank=True)
    if RELEASE >= 2:
        subtitle = models.CharField(max_length=100, blank=True, default="(none)")


class Bookmark(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bookmarks")
    page = models.ForeignKey(ArticlePage, on_delete=models.CASCADE, related_name="bookmarks")
    note = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "page"], name="journal_bookmark_unique_user_page")]


if RELEASE >= 2:
    class Subscription(models.Model):
        address = models.ForeignKey("account.EmailAddress", on_delete=models.CASCADE,
                                    related_name="subscriptions")
        page = models.ForeignKey(ArticlePage, on_delete=models.CASCADE, related_name="subscriptions")
