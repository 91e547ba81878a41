"""Issue 24: `generate` does no work its result does not need (the speed of `generate` after a change)."""

from __future__ import annotations

from tablemigrate.generate import partial
from tablemigrate.generate.pipeline import generate

from .test_generate_once import shop


def test_the_snapshot_for_no_change_is_made_only_when_nothing_changed(tmp_path, monkeypatch):
    """`schema.sql` as the changed tables' markers give it with no module is what a generate that finds
    no change writes; after a change the new modules' snapshot is written instead."""
    d = tmp_path / "m"
    generate(d, shop())
    made: list[str] = []
    real = partial.Narrowed.unchanged_snapshot

    def spy(self):
        made.append("snapshot")
        return real(self)

    monkeypatch.setattr(partial.Narrowed, "unchanged_snapshot", spy)
    assert generate(d, shop("body")).changed
    assert made == []
    assert not generate(d, shop("body")).changed
    assert made == ["snapshot"]
