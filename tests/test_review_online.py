"""Review probe: a big table's rebuild that `run` proves lossless (no confirmation) is no longer done online.
Expected to FAIL on main."""

from __future__ import annotations

import pytest

from tablemigrate.run import online

from .test_online import ITEM, database, small_chunks  # noqa: F401 (fixture)

WITHOUT_NOTE = ITEM.replace(', "note" text NULL)', ')')
COPY = {"id": '"id"', "owner_id": '"owner_id"', "code": '"code"', "amount": '"amount"'}


def test_a_lossless_destructive_rebuild_of_a_big_table_is_still_done_online(tmp_path, small_chunks):  # noqa: F811
    """`note` holds no value: the data check proves the drop loses nothing, so `run --noinput` applies it
    without --allow-destructive, with a StillEmpty recheck as its first step. That extra step makes
    online.plan answer None (`len(ops) != 1`), so the table is copied in one transaction, locking the
    application out for the whole copy, while `show` says it runs online."""
    from tablemigrate.history.status import Target
    from tablemigrate.project.build import private_database, raw
    from tablemigrate.run import runner

    from .helpers import module as write_module

    path = tmp_path / "app.sqlite3"
    conn = database(path)
    conn.execute("UPDATE item SET note = NULL")
    conn.close()
    d = tmp_path / "tablemigrations"
    write_module(d, "0002_item", "from tablemigrate.operations import RebuildTable\ntable = 'item'\n"
                 "destructive = ['drop column item.note']\n"
                 f"up = ['DROP INDEX \"item_note\"', RebuildTable('item', {WITHOUT_NOTE!r}, {COPY!r})]\ndown = None\n")
    with private_database(str(path)) as db:
        conn = raw(db)
        from tablemigrate.history.loader import load_migration
        assert online.plan(conn, load_migration(d / "0002_item.py"), "up") is not None  # what `show` tells
        started = []
        real = online.run
        with pytest.MonkeyPatch.context() as m:
            m.setattr(online, "run", lambda *a: started.append(1) or real(*a))
            done = runner.run(Target("default", conn, path), d, confirm=None, django=False)
        assert [x.name for x in done] == ["0002_item"]  # no confirmation needed: nothing to lose
        assert started == [1]  # ... and done online, as `show` said
