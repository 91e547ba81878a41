"""Review probes: FillColumn(per_row=True). Expected to FAIL on main where a defect is shown."""

from __future__ import annotations

import uuid

import django
from django.db import models
from django.db.models import Q

from tablemigrate.generate.pipeline import generate
from tablemigrate.operations import FillColumn

from .helpers import apply_new
from .test_oneoff_values import THREE, live, post_model

CHECK = "condition" if django.VERSION >= (5, 1) else "check"


def small() -> int:
    """A callable default that gives each row its own number below 1000."""
    small.n = getattr(small, "n", 0) + 1
    return small.n


def test_unique_not_null_column_with_a_check_is_filled_per_row(tmp_path):
    """NOT NULL + unique + a CHECK that every value the callable gives satisfies: the rebuild's random
    placeholder (abs(random()/2)) must not trip the CHECK before the per-row fill replaces it."""
    conn, applied = live(tmp_path, post_model(), THREE)
    new = post_model({"constraints": [models.CheckConstraint(**{CHECK: Q(rank__lt=1000)}, name="rank_small")]},
                     rank=models.IntegerField(default=small, unique=True))
    generate(tmp_path / "m", [new])
    apply_new(conn, tmp_path / "m", applied)
    assert sorted(r for (r,) in conn.execute("SELECT rank FROM blog_post")) == [1, 2, 3] or \
        len({r for (r,) in conn.execute("SELECT rank FROM blog_post")}) == 3


def code() -> str:
    return "C" + uuid.uuid4().hex[:7]


def test_unique_text_column_with_a_check_is_filled_per_row(tmp_path):
    conn, applied = live(tmp_path, post_model(), THREE)
    new = post_model({"constraints": [models.CheckConstraint(**{CHECK: Q(code__startswith="C")}, name="code_c")]},
                     code=models.CharField(max_length=8, default=code, unique=True))
    generate(tmp_path / "m", [new])
    apply_new(conn, tmp_path / "m", applied)
    assert len({r for (r,) in conn.execute("SELECT code FROM blog_post")}) == 3


def test_a_column_only_in_a_partial_index_condition_is_computed_once(tmp_path):
    """A column that only a partial unique index's WHERE reads is not unique: Django's AddField computes
    its callable default once for all rows; per_row gives each row another value."""
    conn, applied = live(tmp_path, post_model(), THREE)
    new = post_model({"constraints": [models.UniqueConstraint(fields=["name"], condition=Q(tag__gt=""),
                                                              name="name_if_tag")]},
                     tag=models.CharField(max_length=32, default=code))
    (module,) = generate(tmp_path / "m", [new]).modules
    assert not any(isinstance(s, FillColumn) and s.per_row for s in module.plan.up)
