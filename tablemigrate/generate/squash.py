"""`squash`: the first modules of the history become one checkpoint (as Django's `squashmigrations`).

The checkpoint's `up` creates at once the schema those modules produce (tables, indexes, virtual tables,
views, triggers, as SQLite keeps them after replaying the modules), and it `replaces` them: a database
that applied every one of them records the checkpoint in their place and applies nothing
(tablemigrate.history.status); a new database runs the checkpoint alone. Before anything is written it
is proved: the checkpoint applied to an empty database gives the very schema (and rows, and
`user_version`/`application_id`) the replaced modules give, and the modules after it, replayed on top,
give the schema `schema.sql` records. The replaced files move to `squashed/<checkpoint>/`; only the
`history` line of `schema.sql` changes (the schema is the same).

A data step (a function, a carried Django `RunPython`/`RunSQL`) in the range is refused: replaying never
runs it, so a checkpoint cannot know what it wrote, and new databases would silently lack it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tablemigrate.errors import ConfigurationError, GenerateError, HistoryConflict, MigrationFailed, ShapeMismatch
from tablemigrate.history.loader import (
    SNAPSHOT_NAME,
    SQUASHED_DIR,
    Migration,
    Replaced,
    Step,
    history_checksum,
    load_migration,
    load_source,
    migration_files,
    recorded_files,
)
from tablemigrate.history.schemafile import read_header
from tablemigrate.operations import RunPython
from tablemigrate.project.build import private_database, raw
from tablemigrate.run.adopt import find_point
from tablemigrate.run.apply import Applier
from tablemigrate.sqlite import shapes
from tablemigrate.sqlite.introspect import HISTORY_TABLE, introspect, is_internal, shadow_tables, virtual_tables
from tablemigrate.sqlite.schema import same_tables
from tablemigrate.sqlite.sqltext import quote

from .verify import mismatch
from .writer import render_checkpoint

#: The header values of the database that are not schema objects and that a module can set: carried.
PRAGMAS = ("user_version", "application_id")


@dataclass
class Squash:
    """What `squash` wrote (or would write): the checkpoint `name` and `text`, the modules it replaces,
    the folder they move to, and `notes` for the command to print."""

    name: str
    text: str
    replaced: list[Migration]
    archive: Path
    notes: list[str] = field(default_factory=list)


def squash(directory: Path, *, to: str | None = None, now: datetime | None = None, write: bool = True) -> Squash:
    """The modules of `directory` up to `to` (default: all) as one checkpoint, proved, then written (`write`)."""
    now = now or datetime.now(timezone.utc)
    files = migration_files(directory)
    names = [p.stem for p in files]
    if to is not None and to not in names:
        raise ConfigurationError(f"--to {to}: no migration module of that name in {directory}")
    squashed = files[:names.index(to) + 1] if to is not None else files
    rest = files[len(squashed):]
    if len(squashed) < 2:
        raise ConfigurationError(f"nothing to squash: {'no migration module' if not squashed else 'one module'} "
                                 f"up to {to or 'the last'} in {directory}")
    header = read_header(directory)
    if header.get("history") != history_checksum(recorded_files(directory)):
        raise ConfigurationError(f"{SNAPSHOT_NAME} does not record the modules in {directory} (a module was added, "
                                 "edited or deleted since `generate` wrote it): run `manage.py tablemigrate generate` "
                                 "first; nothing was written")
    modules = [load_migration(p) for p in squashed]
    _refuse_data_steps(modules)
    name = _checkpoint_name(modules[-1].name, names)
    if rest and name >= rest[0].stem:
        raise ConfigurationError(f"the checkpoint's name {name} would not sort before {rest[0].stem}: squash up to "
                                 "another module (--to); nothing was written")
    point = find_point(modules)
    carried = point.django if point is not None and point.last == modules[-1].name else None
    notes = []
    if point is not None and carried is None:  # past it, or a history baselined before it was recorded
        instead = f", or squash --to {point.last}" if point.last != modules[-1].name else ""
        notes.append(f"the checkpoint replaces the adoption point ({point.last}): a database made by Django's "
                     "`migrate` can no longer be adopted (`baseline`) from these modules (adopt every such database "
                     f"first{instead})")
    with private_database() as a_db, private_database() as c_db:
        a, c = raw(a_db), raw(c_db)
        _replay(a, modules)
        up = creating_statements(a)
        replaces = [Replaced(m.name, (m.checksum, *m.previous_checksums)) for m in modules]
        tables = sorted(introspect(a).tables)
        summary = [f"replaces {modules[0].name} ... {modules[-1].name}",
                   f"{len(tables)} tables" + (f": {', '.join(tables)}" if len(tables) <= 12 else "")]
        text = render_checkpoint(up, replaces, summary, now, carried)
        checkpoint = load_source(text.encode(), name)
        _prove(a, c, checkpoint, modules)
        later = [load_migration(p) for p in rest]
        _replay(c, later)
        if introspect(c).fingerprint() != header.get("schema"):
            raise GenerateError(f"internal error: the checkpoint and the modules after it do not give the schema "
                                f"{SNAPSHOT_NAME} records; nothing was written")
    result = Squash(name, text, modules, directory / SQUASHED_DIR / name, notes)
    if write:
        _write(result, directory, header["history"])
    return result


def _refuse_data_steps(modules: list[Migration]) -> None:
    for i, m in enumerate(modules):
        step = next((s for s in m.up if isinstance(s, RunPython)), None)
        if step is not None:
            where = (f"squash up to the module before it (`squash --to {modules[i - 1].name}`)" if i
                     else "it is the first module: there is nothing before it to squash")
            raise ConfigurationError(
                f"{m.name} has a data step ({step!r}): a checkpoint creates the schema only, and replaying the "
                f"history never runs a data step, so new databases built from the checkpoint would silently lack "
                f"what it does; nothing was written. {where[0].upper() + where[1:]}")


def _checkpoint_name(last: str, names: list[str]) -> str:
    """`<timestamp>_<NN>_checkpoint` of the last replaced module (generate's names), else `<last>_checkpoint`."""
    stamp = re.match(r"\d{8}_\d{6}_\d+_", last)
    name = f"{stamp.group()}checkpoint" if stamp else f"{last}_checkpoint"
    if name in names:
        name = f"{last}_checkpoint"
    return name


def _replay(conn: sqlite3.Connection, modules: list[Migration]) -> None:
    """Apply `modules` (schema only: data steps do not run) on `conn`, each checked against the shape it
    expects, as `generate` replays the history."""
    applier = Applier(conn, python=False)
    try:
        for m in modules:
            shapes.check(conn, m, "up")
            applier.apply(m, "up")
    except ShapeMismatch as exc:
        raise HistoryConflict(f"the migration history conflicts with itself: {exc}", exc.module) from None
    except MigrationFailed as exc:
        raise GenerateError(f"replaying the migration history failed: {exc}") from exc


def creating_statements(conn: sqlite3.Connection) -> list[Step]:
    """The statements that create `conn`'s schema again, as SQLite keeps each object's text: the tables,
    the virtual tables (their shadow tables come with them), the indexes, the views, then the triggers
    (which may be on views), each kind in the order SQLite keeps them; then the header values a module
    set (`PRAGMAS`)."""
    shadows = shadow_tables(conn)
    virtual = {v.lower() for v in virtual_tables(conn)}
    rank = {"table": 0, "index": 2, "view": 3, "trigger": 4}
    found = []
    for rowid, kind, obj, tbl, sql in conn.execute(
            "SELECT rowid, type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"):
        if is_internal(obj) or is_internal(tbl) or obj.lower() in shadows or tbl.lower() in shadows:
            continue
        found.append((rank[kind] + (kind == "table" and obj.lower() in virtual), rowid, sql))
    out: list[Step] = [sql for _rank, _rowid, sql in sorted(found)]
    for pragma in PRAGMAS:
        value = conn.execute(f"PRAGMA {pragma}").fetchone()[0]
        if value:
            out.append(f"PRAGMA {pragma} = {int(value)}")
    return out


def _rows(conn: sqlite3.Connection) -> dict[str, str]:
    """A digest of the rows of each table that holds any (shadow tables and SQLite's own included; not the
    virtual tables, whose rows are their shadow tables' or another table's), by name."""
    virtual = {v.lower() for v in virtual_tables(conn)}
    out = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> ?",
                                (HISTORY_TABLE,)).fetchall():
        if name.lower() in virtual:
            continue
        rows = sorted(repr(r) for r in conn.execute(_rows_of(name)))
        if rows:
            out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out


def _rows_of(table: str) -> str:
    """The query for the rows of `table` that make a database differ: an AUTOINCREMENT counter at 0 (a
    rebuild of an empty table writes one) is the same as none, the next id is 1 either way."""
    if table.lower() == "sqlite_sequence":
        return "SELECT name, seq FROM sqlite_sequence WHERE seq <> 0"
    return f"SELECT * FROM {quote(table)}"


def _header_values(conn: sqlite3.Connection) -> list[int]:
    return [conn.execute(f"PRAGMA {pragma}").fetchone()[0] for pragma in PRAGMAS]


def _prove(a: sqlite3.Connection, c: sqlite3.Connection, checkpoint: Migration, modules: list[Migration]) -> None:
    """The checkpoint applied to the empty database `c` must give what `modules` gave `a`: the schema (as
    `generate` compares it), the rows, the header values. Rows that SQL of a module wrote (seed data) are
    not carried: refused, naming the module."""
    try:
        Applier(c).apply(checkpoint, "up")
    except MigrationFailed as exc:
        raise GenerateError(f"internal error: the checkpoint fails on an empty database: {exc}; nothing was "
                            "written") from exc
    want, got = introspect(a), introspect(c)
    if not same_tables(got.tables, want.tables) or got.fingerprint() != want.fingerprint() \
            or _header_values(a) != _header_values(c):
        raise GenerateError("internal error: the checkpoint does not reproduce the schema of the modules it replaces "
                            f"(tables: {mismatch(got.tables, want.tables)}); nothing was written")
    rows_a, rows_c = _rows(a), _rows(c)
    differ = sorted(k for k in rows_a.keys() | rows_c.keys() if rows_a.get(k) != rows_c.get(k))
    if differ:
        writer = _writer_of(modules, differ)
        raise ConfigurationError(
            f"{writer} writes rows ({', '.join(differ)}): a checkpoint creates the schema only, so new databases "
            "built from it would lack them; nothing was written. Squash up to the module before it (--to), or move "
            "the rows into a module after the checkpoint")


def _writer_of(modules: list[Migration], tables: list[str]) -> str:
    """The first of `modules` after which one of `tables` holds a row (replayed again, on the failure path only)."""
    with private_database() as db:
        conn = raw(db)
        applier = Applier(conn, python=False)
        for m in modules:
            applier.apply(m, "up")
            present = {n.lower() for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if any(t.lower() in present and conn.execute(_rows_of(t)).fetchone()
                   for t in tables):
                return m.name
    return "a module of the range"


def _write(result: Squash, directory: Path, old_history: str) -> None:
    """Write the checkpoint, move the replaced modules into the archive, and give `schema.sql` the new
    history; on any failure, put everything back as it was."""
    path = directory / f"{result.name}.py"
    moved: list[tuple[Path, Path]] = []
    snapshot = directory / SNAPSHOT_NAME
    before = snapshot.read_bytes()
    try:
        result.archive.mkdir(parents=True, exist_ok=False)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(result.text, encoding="utf-8")
        os.replace(temporary, path)
        for m in result.replaced:
            assert m.path is not None
            moved.append((m.path, result.archive / m.path.name))
            os.replace(*moved[-1])
        new_history = history_checksum(recorded_files(directory))
        text = before.decode("utf-8").replace(f"-- history: {old_history}\n", f"-- history: {new_history}\n", 1)
        temporary = snapshot.with_name(f".{SNAPSHOT_NAME}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, snapshot)
    except BaseException as exc:
        for leftover in (path.with_name(f".{path.name}.tmp"), snapshot.with_name(f".{SNAPSHOT_NAME}.tmp")):
            leftover.unlink(missing_ok=True)
        for source, moved_to in reversed(moved):
            os.replace(moved_to, source)
        path.unlink(missing_ok=True)
        snapshot.write_bytes(before)
        if result.archive.is_dir() and not any(result.archive.iterdir()):
            shutil.rmtree(result.archive)
        if isinstance(exc, OSError):
            raise ConfigurationError(f"cannot write to {directory}: {exc.strerror}; nothing was changed") from None
        raise
