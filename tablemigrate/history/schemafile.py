"""`schema.sql`, the automatic snapshot: the schema the migration history produces, as SQL.

It has a header that says what it describes, and one marker line per table that lets `generate` work
on the changed tables only.

    -- history: <checksum of the modules' names and files>
    -- schema: <fingerprint of the schema>
    -- models: <fingerprint of the models the history matches>
    -- ddl: <digest of the models' DDL, when that DDL builds exactly this schema>
    -- tables: <format of the markers>

    -- table {"name": ..., "digest": ..., "ddl": [...], "refs": [...], "indexes": [...], "check": ...}
    CREATE TABLE ...;
    CREATE INDEX ...;

A marker gives the table's structure digest (`schema._digest`, so the header's fingerprint can be
recomputed from the markers alone), the keys of the Django statements that build exactly this table
(empty when the models' table differs, or the table is not a model's), the tables its foreign keys
reference, the names of its indexes (SQLite's names are schema-wide: a new index or table must not take
one), and a check over all of it and the block's text. Markers are written only for schemas of
tables and indexes alone (no view, trigger or virtual table) and are trusted only when every one of them
checks, they recompute the header's fingerprint, and the `tables` line is this `DIGEST_FORMAT`'s
(`read_blocks`); otherwise `generate` reads the file as SQL, as before. No line holds the package's
version: an upgrade leaves the file as it is.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tablemigrate.sqlite import cache, sqltext
from tablemigrate.sqlite.schema import DIGEST_FORMAT, Schema, Table, fingerprint_of, table_digest

from .loader import SNAPSHOT_NAME

HEADER = (
    "-- tablemigrate schema snapshot: the schema that replaying every migration module in this\n"
    "-- directory produces. Rewritten by `manage.py tablemigrate generate`; do not edit by hand.\n"
)
HEADER_KEYS = ("history", "schema", "models", "ddl", "tables")
MARKER = "-- table "


def markers_format() -> str:
    """The `tables` header line: markers whose digests mean something else (another `DIGEST_FORMAT`:
    a tablemigrate whose parser digests a table differently) are not trusted. Not the package's
    version: a release that digests tables as this one does reads the file as it is, and rewrites it
    only when the schema changes. (Written by tablemigrate 0.1.0 as `3-0.1.0`: not trusted, read as
    SQL once.)"""
    return f"digest-{DIGEST_FORMAT}"


def statement_key(statement: str) -> str:
    """The key of one of Django's DDL statements, as a marker lists it."""
    return hashlib.sha256(statement.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class Block:
    """One table of `schema.sql`: its marker's fields and its statements' text."""

    name: str
    digest: str
    ddl: tuple[str, ...]
    refs: tuple[str, ...]
    text: str
    indexes: tuple[str, ...] = ()  # lower-case names of its explicit indexes

    @property
    def key(self) -> str:
        return self.name.lower()

    def check(self) -> str:
        return cache.derived(self, "_check", _check)

    def render(self) -> str:
        marker = json.dumps({"name": self.name, "digest": self.digest, "ddl": list(self.ddl),
                             "refs": list(self.refs), "indexes": list(self.indexes), "check": self.check()})
        return f"{MARKER}{marker}\n{self.text}"


def _check(b: Block) -> str:
    payload = json.dumps([b.name, b.digest, list(b.ddl), list(b.refs), list(b.indexes), b.text])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def _statements_text(statements: Iterable[str]) -> str:
    return "".join(_terminated(stmt) + "\n\n" for stmt in statements)


def _terminated(statement: str) -> str:
    """`statement` ending in a `;` SQLite sees: a text SQLite keeps may end in a `--` comment (a
    hand-written index), which would swallow a `;` put on the same line."""
    text = statement.rstrip().rstrip(";")
    return text + ";" if sqlite3.complete_statement(text + ";") else text + "\n;"


def pretty(table: Table) -> str:
    return cache.derived(table, "_pretty", lambda t: sqltext.pretty_create_table(t.sql))


def table_statements(table: Table) -> list[str]:
    return [pretty(table)] + [table.indexes[k].raw for k in sorted(table.indexes)]


def block(table: Table, ddl: Iterable[str] = ()) -> Block:
    """`table`'s block; `ddl`: the keys of the Django statements that build exactly this table."""
    refs = sorted({fk.ref_table for fk in table.foreign_keys})
    return Block(table.name, table_digest(table), tuple(sorted(ddl)), tuple(refs),
                 _statements_text(table_statements(table)), tuple(sorted(table.indexes)))


def _body(schema: Schema, ddl_of: Mapping[str, Iterable[str]] | None) -> str:
    if ddl_of is None:  # views, triggers or virtual tables: plain SQL, in the order `Schema.statements` gives
        return _statements_text(schema.statements())
    return "".join(block(schema.tables[k], ddl_of.get(k, ())).render() for k in sorted(schema.tables))


def _markable(schema: Schema) -> bool:
    return not (schema.triggers or schema.views or schema.virtual)


def render(schema: Schema, history: str, models: str | None = None, ddl: str | None = None,
           ddl_of: Mapping[str, Iterable[str]] | None = None) -> str:
    """The file for `schema`. `models`: the fingerprint of the models the history matches (None when
    unknown, e.g. baseline). `ddl`: the digest of the models' DDL (`build.model_sql_digest`), given only
    when that DDL builds exactly `schema`. `ddl_of`: per table, the keys of the Django statements that
    build it exactly (tables left out have none); markers are written only when it is given and the
    schema is tables and indexes alone."""
    ddl_of = ddl_of if ddl_of is not None and _markable(schema) else None
    return _render(schema.fingerprint(), history, models, ddl, ddl_of is not None, _body(schema, ddl_of))


def render_blocks(blocks: Mapping[str, Block], history: str, models: str | None, ddl: str | None) -> str:
    """The file for a schema of tables known by their blocks (`read_blocks`, some replaced)."""
    return _render(blocks_fingerprint(blocks), history, models, ddl, True,
                   "".join(blocks[k].render() for k in sorted(blocks)))


def _render(fingerprint: str, history: str, models: str | None, ddl: str | None, marked: bool, body: str) -> str:
    lines = [f"-- history: {history}", f"-- schema: {fingerprint}"]
    lines += [f"-- models: {models}"] * bool(models) + [f"-- ddl: {ddl}"] * bool(ddl)
    lines += [f"-- tables: {markers_format()}"] * marked
    return HEADER + "\n".join(lines) + "\n\n" + body


def blocks_fingerprint(blocks: Mapping[str, Block]) -> str:
    return fingerprint_of({k: b.digest for k, b in blocks.items()})


def read_header(directory: Path) -> dict[str, str]:
    """The `-- key: value` lines at the top of the file ({} when there is none)."""
    out: dict[str, str] = {}
    try:
        with (directory / SNAPSHOT_NAME).open(encoding="utf-8") as fh:
            for line in fh:
                if not line.startswith("-- "):
                    break
                key, sep, value = line[3:].partition(": ")
                if sep and key in HEADER_KEYS:
                    out[key] = value.strip()
    except (OSError, UnicodeDecodeError):
        return {}
    return out


def record_history(directory: Path, before: str, after: str) -> bool:
    """When the file's header records the history `before`, make it record `after` instead, the rest
    unchanged: for a module added that changes no schema (`generate --empty`), so the file goes on
    describing the history exactly. False (nothing written) when it records another history: it was
    stale already, and `generate` rewrites it."""
    path = directory / SNAPSHOT_NAME
    if read_header(directory).get("history") != before:
        return False
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f"-- history: {before}\n", f"-- history: {after}\n", 1), encoding="utf-8")
    return True


def read_blocks(directory: Path, header: Mapping[str, str]) -> dict[str, Block] | None:
    """The file's tables by their markers, when every marker can be trusted: the `tables` line is this
    `DIGEST_FORMAT`'s, the body is nothing but blocks, each block's check holds (no edit by hand, and no
    marker-like line inside a literal split a block), and the blocks give the header's fingerprint.
    None otherwise: the caller reads the file as SQL."""
    if header.get("tables") != markers_format() or not header.get("schema"):
        return None
    try:
        text = (directory / SNAPSHOT_NAME).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    _head, sep, rest = text.partition("\n\n")
    if not sep or (rest and not rest.startswith(MARKER)):
        return None
    blocks: dict[str, Block] = {}
    pieces = rest[len(MARKER):].split("\n" + MARKER) if rest else []
    for i, piece in enumerate(pieces):
        marker, _, body = piece.partition("\n")
        if i < len(pieces) - 1:
            body += "\n"  # the separator took the blank line's newline
        try:
            fields = json.loads(marker)
            found = Block(fields["name"], fields["digest"], tuple(fields["ddl"]), tuple(fields["refs"]), body,
                          tuple(fields["indexes"]))
            valid = isinstance(found.name, str) and fields["check"] == found.check()
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if not valid or found.key in blocks:
            return None
        blocks[found.key] = found
    return blocks if blocks_fingerprint(blocks) == header["schema"] else None
