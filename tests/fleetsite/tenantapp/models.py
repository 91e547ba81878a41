"""A tenant's notes. FLEETSITE_STRICT=1: `body` becomes NOT NULL and `pinned` is added: a rebuild of the
table (every row copied), which rows holding NULL in `body` refuse (tests/test_fleet.py)."""

import os

from django.db import models

STRICT = os.environ.get("FLEETSITE_STRICT") == "1"


class Note(models.Model):
    title = models.CharField(max_length=100)
    body = models.TextField(null=not STRICT)
    if STRICT:
        pinned = models.BooleanField(default=False)
