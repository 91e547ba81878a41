"""Drift: tables whose live structure differs from what replaying the applied history produces."""

from __future__ import annotations

from pathlib import Path

from tablemigrate.history.loader import Migration, checksum, load_migration
from tablemigrate.history.schemafile import read_header
from tablemigrate.history.status import Status, Target, check_history, status
from tablemigrate.project.build import private_database, raw
from tablemigrate.sqlite.introspect import introspect
from tablemigrate.sqlite.schema import Schema

from .apply import Applier


def history_schema(migrations: list[Migration]) -> Schema:
    """What `migrations` build on an empty database (schema only: data steps have no rows to work on)."""
    with private_database() as replay:
        conn = raw(replay)
        applier = Applier(conn, python=False)
        for m in migrations:
            applier.apply(m, "up")
        return introspect(conn)


def drift(target: Target, directory: Path, owned: set[str] | None = None,
          foreign: frozenset[str] = frozenset(), st: Status | None = None) -> list[str]:
    """Tables whose live structure differs from what replaying the applied migrations produces.
    `owned`: lower-case tables of managed models; a live table outside the history and outside it
    (an unmanaged model's, one made by hand) is not drift. `foreign`: tables of apps whose Django
    migrations own them (build.foreign_tables), which an older history may still describe. `st`: the
    history's status, when the caller has it already."""
    st = st or status(target.conn, directory)
    check_history(st)
    live_schema = introspect(target.conn)
    header = read_header(directory)
    applied_hash = checksum("\n".join(f"{a.name} {a.checksum}" for a in st.applied).encode())
    if not st.pending and header.get("history") == applied_hash and header.get("schema") == live_schema.fingerprint():
        return []  # the snapshot describes exactly this history, and the live schema matches it
    by_stem = {p.stem: p for p in st.files}
    expected = history_schema([load_migration(by_stem[a.name]) for a in st.applied]).tables
    live = live_schema.tables
    extra = {k for k in live if k not in expected and owned is not None and k not in owned}
    return sorted(k for k in set(expected) | set(live)
                  if expected.get(k) != live.get(k) and k not in extra and k not in foreign)
