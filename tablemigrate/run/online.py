"""Copying rebuilds that keep the application writable (issue 15, decision 110).

A `RebuildTable` copies every row inside the migration's one transaction, so SQLite's write lock is held
for the whole copy: on a 1.5M-row table an application insert waited 3.3 s (5.2 s, and one "database is
locked" past Django's 5 s timeout, on a busy machine). For a big table (`TABLEMIGRATE_ONLINE_REBUILD_ROWS`,
default 50,000 rows; None turns this off) of a database in WAL mode, `run` and `revert` instead:

1. **Set up** (one short transaction): the new table, without its foreign keys while it is filled, and
   its indexes, under private names; triggers on the live table that record the rowid of every row
   the application inserts, updates or deletes from then on (`tablemigrate_online_log`), and, before
   an insert or update, of every row holding the new row's UNIQUE keys (an `OR REPLACE` deletes such
   a row without its DELETE trigger). The triggers only record, into a log without constraints (a
   trigger's statement takes the conflict policy of the application's): the application's writes
   never fail because of the rebuild.
2. **Copy** in chunks of rowids, each its own short transaction (about 75 ms, then a pause): the chunk,
   and the rows the application changed in the part already copied, are copied again from the live
   table as it is then. Between chunks the application writes. A copy that has not caught up with the
   application's appends gives up after copying CATCH_UP_FACTOR times the table's rows, or after
   `TABLEMIGRATE_ONLINE_REBUILD_SECONDS` when that is set.
3. **Check** the keys, on the live table (whose key columns the copy takes as they are), in a read
   transaction (WAL: readers never block writers).
4. **Swap** (one short transaction, with the history row): the last changes are copied, the row counts
   must be equal (the proof the whole rebuild gives), the live table is renamed aside and the new one
   takes its name; one `writable_schema` edit of `sqlite_schema` (decision 108's procedure) gives the
   new table its real definition, the old one a definition without foreign keys, and the indexes
   their names; the table's triggers and its dependent views and triggers are made again, the
   AUTOINCREMENT value kept.
5. **Drop** the old table in chunks (a DROP of a big table walks every page: 0.2 s at 300 MB, 2.8 s
   where SQLite zeroes freed pages).

A failure before the swap commits drops what the setup made: the live table was never touched, and the
application's writes are all in it (the run then does not restore its backup over them). A process
killed meanwhile leaves the private objects behind; the next `run` or `revert` drops them first
(`clean_leftovers`). Used only for a module that is exactly one `RebuildTable` with `DROP INDEX` (of a
plain index of its table) and `CREATE INDEX` statements around it, on a table whose rowids the copy
keeps (a rowid alias copied as it is, or, in both definitions, a hidden rowid, which the copy carries by
name), whose foreign keys, primary key and UNIQUE constraints are the live table's and copied as they
are, whose copy expressions read nothing but the row they copy (no other table, no subquery, only
deterministic functions), on a connection allowed to write `sqlite_schema`; everything else rebuilds in
one transaction, as before.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tablemigrate import conf, progress
from tablemigrate.errors import DatabaseLocked, MigrationFailed
from tablemigrate.history.loader import Migration
from tablemigrate.operations import Operation, RebuildTable
from tablemigrate.project.build import connect
from tablemigrate.sqlite import ddl, rebuild, sqltext
from tablemigrate.sqlite.introspect import introspect
from tablemigrate.sqlite.rebuild import Scratch, kept_rowid
from tablemigrate.sqlite.sqltext import quote
from tablemigrate.sqlite.transaction import write_transaction

logger = logging.getLogger("tablemigrate")

PREFIX = "tablemigrate_online_"
LOG = PREFIX + "log"
#: Seconds a chunk's transaction aims at, and the least pause after it. An application write that finds
#: the lock taken waits in SQLite's busy handler, which retries after 1, 2, 5, 10, 15, 20, 25, 25, 25, 50,
#: 50, then every 100 ms: with chunks back to back it got in only by luck and waited 1.7 s (1.5M rows,
#: measured); a pause of 25 ms lets one of its early retries in. Measured on 1.5M rows with a write every
#: 10 ms: chunks of 30 ms with 20 ms pauses gave a longest wait of 86-123 ms and a run of 11.6-11.9 s;
#: 100 ms with 25 ms, 106-195 ms and 7.6-8.5 s (150 ms: 184 ms); 75 ms, 105-122 ms and 8.5-9.3 s (three
#: runs each). The rebuild in one transaction takes about 3.8 s.
CHUNK_SECONDS = 0.075
PAUSE_SECONDS = 0.025
PAUSE_SHARE = 0.3  # of a chunk that ran longer than planned: the pause grows with it
FIRST_CHUNK = 2_000


class Pacer:
    """Chunk sizes that take about CHUNK_SECONDS under the lock, and the pause after each."""

    def __init__(self, first: int = 0):
        self.size = first or FIRST_CHUNK

    def done(self, took: float) -> None:
        """After a chunk's COMMIT: the next size, then the pause that lets waiting writers in."""
        self.size = max(100, min(self.size * 4, int(self.size * CHUNK_SECONDS / max(took, 1e-4))))
        time.sleep(max(PAUSE_SECONDS, PAUSE_SHARE * took))
DEFAULT_ROWS = 50_000


def threshold() -> int | None:
    """Rows from which a copying rebuild keeps the application writable (None: never)."""
    from django.conf import settings

    value = getattr(settings, "TABLEMIGRATE_ONLINE_REBUILD_ROWS", DEFAULT_ROWS)
    return None if value is None else int(value)


@dataclass
class Online:
    """A module's rebuild, done in chunks."""

    op: RebuildTable
    drops: set[str]  # lower-case names of the table's indexes the module drops
    creates: list[str]  # the module's CREATE INDEX statements for the table
    new_without_keys: str  # the new definition without its foreign keys: the copy's while it is filled
    old_without_keys: str  # the live definition without them: the old table's while it is dropped
    live_sql: str  # the live definition, which must not change under the rebuild
    tmp: str = ""
    rowid: str | None = None  # "rowid" when the table has a hidden rowid, which the copy carries
    indexes: dict[str, str] = field(default_factory=dict)  # private name -> the real CREATE INDEX text
    watermark: int | None = None  # rows up to this rowid are copied
    schema_version: int = 0  # after the setup: a VACUUM meanwhile changes it (and may renumber hidden rowids)
    checks: list[Operation] = field(default_factory=list)  # the module's checks (Operation.check_only)

    @property
    def table(self) -> str:
        return self.op.table


def index_statement(sql: str) -> tuple[str, list[sqltext.Token]] | None:
    """('drop', tokens) / ('create', tokens) for a plain DROP INDEX / CREATE [UNIQUE] INDEX statement."""
    try:
        statements = sqltext.split_statements(sql)
        if len(statements) != 1:
            return None
        tokens = sqltext.tokenize(statements[0])
    except ValueError:
        return None
    words = [t.keyword() for t in tokens[:3]]
    if words[:2] == ["drop", "index"]:
        return "drop", tokens
    if words[:2] == ["create", "index"] or words == ["create", "unique", "index"]:
        return "create", tokens
    return None


def _name_at(tokens: list[sqltext.Token], start: int) -> int | None:
    """The index of the (unqualified) name token at `start`, after IF [NOT] EXISTS."""
    i = start
    while i < len(tokens) and tokens[i].keyword() in ("if", "not", "exists"):
        i += 1
    if i >= len(tokens) or (i + 1 < len(tokens) and tokens[i + 1].text == "."):
        return None  # schema-qualified: not ours to rewrite
    return i


def plan(conn: sqlite3.Connection, migration: Migration, direction: str) -> Online | None:
    """The module's rebuild done online, or None when it is done in one transaction. What SQLite makes of
    the live and the new definitions is asked of one scratch database (`rebuild.Scratch`)."""
    rows = threshold()
    if rows is None or not migration.atomic:
        return None
    if conn.execute("PRAGMA main.journal_mode").fetchone()[0].lower() != "wal":
        return None
    steps = migration.steps(direction)
    ops = [s for s in steps if not isinstance(s, str)]
    # The checks that lead the module (run's recheck of what the data check counted) are run in the first
    # transaction and again in the last one.
    checks = []
    while ops and ops[0].check_only:
        checks.append(ops.pop(0))
    # An AlterTableInPlace takes milliseconds; its rare fallback rebuilds in the transaction. A copy that
    # computes values in Python (`fill`) reads the connection's function: in one transaction.
    if len(ops) != 1 or type(ops[0]) is not RebuildTable or not ops[0].copy or ops[0].fill:
        return None
    op = ops[0]
    drops: set[str] = set()
    creates: list[str] = []
    for step in steps:
        if not isinstance(step, str):
            continue
        found = index_statement(step)
        if found is None:
            return None
        kind, tokens = found
        if kind == "drop":
            at = _name_at(tokens, 2)
            if at is None or not _own_plain_index(conn, op.table, tokens[at].name()):
                return None
            drops.add(tokens[at].name().lower())
        else:
            index = ddl.read_index(step)
            # IF NOT EXISTS: which index would it be?
            if index is None or not index.plain or index.table.lower() != op.table.lower() or index.if_not_exists:
                return None
            creates.append(step)
    live = _live_sql(conn, op.table)
    if live is None:
        return None
    with Scratch(connect) as scratch:
        kept = _rowids_kept(live, op, scratch)
        if kept is None or not _keys_unchanged(conn, live, op, scratch) or not _copies_from_its_row(live, op, scratch):
            return None
        new_free, old_free = _without_keys(op.create, op.table, scratch), _without_keys(live, op.table, scratch)
    if new_free is None or old_free is None or not _schema_writable(conn):
        return None
    if conn.execute(f"SELECT count(*) FROM {quote(op.table)}").fetchone()[0] < rows:
        return None
    return Online(op, drops, creates, new_free, old_free, live, rowid=kept or None, checks=checks)


def _own_plain_index(conn: sqlite3.Connection, table: str, index: str) -> bool:
    """`index` is an index of `table` that no foreign key can depend on (not UNIQUE): dropping a UNIQUE
    index another table's key refers to must fail as the rebuild in one transaction fails."""
    row = conn.execute("SELECT tbl_name FROM main.sqlite_master WHERE type = 'index' AND lower(name) = lower(?)",
                       (index,)).fetchone()
    if row is None or row[0].lower() != table.lower():
        return False
    return any(r[1].lower() == index.lower() and not r[2] for r in conn.execute(f"PRAGMA index_list({quote(table)})"))


def _schema_writable(conn: sqlite3.Connection) -> bool:
    """Whether SQLite lets this connection write `sqlite_schema` (not in defensive mode, no authorizer
    that forbids it): the swap writes the real definitions there. SQLite decides when it prepares the
    statement, so EXPLAIN asks without writing anything (`show` calls this too)."""
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("EXPLAIN UPDATE main.sqlite_master SET sql = sql WHERE 0").fetchall()
        return bool(conn.execute("PRAGMA writable_schema").fetchone()[0])
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


def _without_keys(create: str, name: str, scratch: Scratch) -> str | None:
    """`create` without its foreign keys (`ddl.without_foreign_keys`), when SQLite and the parser read
    everything else exactly as in `create` (the same stored layout, the same columns, constraints and
    options); None otherwise. The copy is filled under this definition, and the old table dropped under
    it, so that neither holds rows that would make the application's delete of a parent fail."""
    try:
        text = ddl.without_foreign_keys(create)
        want = introspect(scratch.holding(create)).tables[name.lower()]
        got = introspect(scratch.holding(text)).tables[name.lower()]
        same = (scratch.layout(create, name) == scratch.layout(text, name) and got.foreign_keys == frozenset()
                and dataclasses.replace(want, foreign_keys=frozenset()) == got)
    except (sqlite3.Error, KeyError, ValueError):
        return None
    return text if same else None


def _live_sql(conn: sqlite3.Connection, table: str) -> str | None:
    row = conn.execute("SELECT sql FROM main.sqlite_master WHERE type = 'table' AND lower(name) = lower(?)",
                       (table,)).fetchone()
    return None if row is None else row[0]


def _source(op: RebuildTable, column: str) -> str | None:
    """The copy expression of the new table's `column` (any case)."""
    return next((e for c, e in op.copy.items() if c.lower() == column.lower()), None)


def _copied_as_is(op: RebuildTable, column: str, old_name: str | None = None) -> bool:
    source = _source(op, column)
    return source is not None and source.lower() == quote(old_name or column).lower()


def _rowids_kept(live: str, op: RebuildTable, scratch: Scratch) -> str | None:
    """How the copy keeps each row's rowid (the log of changes is kept by rowid): "" when both tables
    hold it in a column (an INTEGER PRIMARY KEY that the copy takes as it is), "rowid" when neither has
    such a column and the copy carries the hidden rowid by that name (`kept_rowid`); None when it cannot
    (the rebuild then runs in one transaction). A VACUUM the application runs meanwhile may renumber
    hidden rowids, in each table its own way: the copy then fails (`_same_rowids`)."""
    old, new = scratch.layout(live, op.table), scratch.layout(op.create, op.table)
    if old is None or new is None or not old[1] or not new[1]:
        return None
    if {c for c, _hidden in old[0] + new[0]} & {"rowid", "_rowid_", "oid"}:
        return None
    if not old[2] and not new[2]:
        return kept_rowid(old, new)
    return "" if old[2] and new[2] and _copied_as_is(op, new[2][0], old[2][0]) else None


#: SQLite's date and time functions are deterministic by their flags, but not with 'now', 'localtime' or
#: 'utc' (sqlite.org/deterministic.html, "special-case processing"), which the flags do not tell.
_DATE_FUNCTIONS = frozenset({"date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff"})
_DETERMINISTIC = 0x800  # SQLITE_DETERMINISTIC, in `PRAGMA function_list`'s flags


def _copies_from_its_row(live: str, op: RebuildTable, scratch: Scratch) -> bool:
    """Whether each copy expression is a function of the copied row alone, as SQLite resolves it: on a
    scratch database holding only the live table (a name of any other table is an error there), its
    authorizer sees one SELECT (no subquery), reads of that table only, and calls of deterministic
    functions only (by SQLite's own flags; a function the connection registered is not there: refused).
    The online copy copies a row when the chunks reach it and again when the application changes it; a
    value read elsewhere (another table, other rows, the clock) that changes meanwhile would stay stale
    in the rows copied before: a state no serial order gives. Otherwise the rebuild runs in one
    transaction."""
    try:
        held = scratch.holding(live)
    except sqlite3.Error:
        return False
    try:
        deterministic: dict[str, bool] = {}
        for name, flags in held.execute("SELECT name, flags FROM pragma_function_list").fetchall():
            key = name.lower()
            deterministic[key] = deterministic.get(key, True) and bool(flags & _DETERMINISTIC)
        selects, refused = 0, []

        def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, _inner: str | None) -> int:
            nonlocal selects
            if action == sqlite3.SQLITE_SELECT:
                selects += 1
            elif action == sqlite3.SQLITE_READ and db == "main" and ddl.same_name(arg1 or "", op.table):
                pass
            elif not (action == sqlite3.SQLITE_FUNCTION and deterministic.get((arg2 or "").lower())
                      and (arg2 or "").lower() not in _DATE_FUNCTIONS):
                refused.append((action, arg1, arg2))
            return sqlite3.SQLITE_OK

        held.set_authorizer(authorize)
        held.execute(f"SELECT {op._select_list()} FROM {quote(op.table)} LIMIT 0").fetchall()
        return selects == 1 and not refused
    except sqlite3.Error:  # another table, a function or collation of the connection, no function_list
        return False
    finally:
        sqltext.clear_authorizer(held)


def _keys_unchanged(conn: sqlite3.Connection, live: str, op: RebuildTable, scratch: Scratch) -> bool:
    """The new table's foreign keys are the live table's, its primary key and UNIQUE constraints are the
    same, and every column in them or in a key another table references is copied as it is: the rows the
    application writes meanwhile are then checked by its own foreign key enforcement, as always, and the
    tables that reference this one find the same keys."""
    old, new = scratch.layout(live, op.table), scratch.layout(op.create, op.table)
    if old is None or new is None or old[3] != new[3]:
        return False
    db = scratch.holding(op.create)
    new_fks = _foreign_keys(db, op.table)
    keyed = {r[1].lower() for r in db.execute(f"PRAGMA table_info({quote(op.table)})") if r[5]}
    if new_fks != _foreign_keys(conn, op.table):
        return False
    keyed |= {c for fk in new_fks for c in fk[1]}
    keyed |= {to.lower() for (to,) in conn.execute(
        "SELECT f.\"to\" FROM sqlite_master AS m, pragma_foreign_key_list(m.name) AS f "
        "WHERE m.type = 'table' AND lower(f.\"table\") = lower(?) AND f.\"to\" IS NOT NULL", (op.table,))}
    return all(_copied_as_is(op, c) for c in keyed)


def _foreign_keys(conn: sqlite3.Connection, table: str) -> set[tuple]:
    groups: dict[int, list[tuple]] = {}
    for row in conn.execute(f"PRAGMA foreign_key_list({quote(table)})"):
        groups.setdefault(row[0], []).append(row)
    return {(rows[0][2].lower(), tuple(r[3].lower() for r in sorted(rows, key=lambda r: r[1])),
             tuple((r[4] or "").lower() for r in sorted(rows, key=lambda r: r[1])), rows[0][5], rows[0][6],
             rows[0][7]) for rows in groups.values()}


# --- running it ------------------------------------------------------------------------------------------

def _private(kind: str, table: str) -> str:
    digest = hashlib.sha256(table.lower().encode()).hexdigest()[:8]
    return f"{PREFIX}{kind}_{digest}"


def _copy(conn: sqlite3.Connection, work: Online, where: str, params: tuple = ()) -> int:
    """Make the new table's rows `where` the live table's: every such row is deleted first, then all are
    copied. One DELETE before one INSERT: a row the application changed keeps no stale copy that a
    UNIQUE value it gave up could collide with (it moved the value to another row meanwhile)."""
    cols, select = work.op.copy_lists(work.rowid)
    conn.execute(f"DELETE FROM {quote(work.tmp)} WHERE {where}", params)
    return conn.execute(f"INSERT OR ABORT INTO {quote(work.tmp)} ({cols}) SELECT {select} "
                        f"FROM {quote(work.table)} WHERE {where}", params).rowcount


def _logged(upto: str) -> str:
    """The rows the application changed, up to a rowid (`upto`: an SQL expression, '' for all)."""
    return f"rowid IN (SELECT rid FROM {LOG}{f' WHERE rid <= {upto}' if upto else ''})"


def _setup(conn: sqlite3.Connection, work: Online) -> None:
    op, t = work.op, quote(work.table)
    op.check_sources(conn)
    work.tmp = _private("new", work.table)
    if _live_sql(conn, work.table) != work.live_sql:
        raise sqlite3.IntegrityError(f"the definition of {work.table} changed since the rebuild was planned")
    conn.execute(sqltext.pretty_create_table(work.new_without_keys, work.tmp))
    own = [r for r in conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'index' AND sql IS NOT "
                                   "NULL AND lower(tbl_name) = lower(?) ORDER BY rowid", (work.table,))]
    real = [sql for name, sql in own if name.lower() not in work.drops] + work.creates
    for n, sql in enumerate(real):
        private = f"{_private('index', work.table)}_{n}"
        conn.execute(ddl.rename_index(sql, private, work.tmp))
        work.indexes[private] = sql
    # The log has no constraint at all (a rowid may be logged twice): a statement in a trigger takes the
    # conflict policy of the application's statement (its OR ROLLBACK/ABORT/FAIL, or the ABORT of an
    # UPSERT's DO UPDATE) instead of its own, so a log that could conflict would fail the application.
    conn.execute(f"CREATE TABLE {LOG} (rid INTEGER)")
    conn.execute(f"CREATE INDEX {LOG}_rid ON {LOG} (rid)")
    log = f"INSERT INTO {LOG} (rid)"
    trigger = _private("trigger", work.table)
    conn.execute(f"CREATE TRIGGER {trigger}_i AFTER INSERT ON {t} BEGIN {log} VALUES (NEW.rowid); END")
    conn.execute(f"CREATE TRIGGER {trigger}_u AFTER UPDATE ON {t} BEGIN {log} VALUES (OLD.rowid); "
                 f"{log} VALUES (NEW.rowid); END")
    conn.execute(f"CREATE TRIGGER {trigger}_d AFTER DELETE ON {t} BEGIN {log} VALUES (OLD.rowid); END")
    holders = _key_holders(conn, work.table)
    if holders:
        for kind, event in (("ki", "INSERT"), ("ku", "UPDATE")):
            conn.execute(f"CREATE TRIGGER {trigger}_{kind} BEFORE {event} ON {t} BEGIN "
                         + " ".join(f"{log} {select};" for select in holders) + " END")
    work.schema_version = conn.execute("PRAGMA main.schema_version").fetchone()[0]


def _same_rowids(conn: sqlite3.Connection, work: Online) -> None:
    """At the start of each of the copy's transactions, for a table with a hidden rowid: the log and the
    chunks go by rowid, and a VACUUM the application ran meanwhile may have renumbered the hidden rowids
    of the live table and of the copy, each its own way. A VACUUM changes the schema version (as every
    schema change does): the copy then fails, the live table untouched."""
    if work.rowid and conn.execute("PRAGMA main.schema_version").fetchone()[0] != work.schema_version:
        raise sqlite3.IntegrityError(f"the database's schema changed during the copy (a VACUUM, which may "
                                     f"renumber the rowids of {work.table}, say)")


def _key_holders(conn: sqlite3.Connection, table: str) -> list[str]:
    """For each UNIQUE index of `table` (a UNIQUE constraint's, or a CREATE UNIQUE INDEX, on columns or
    expressions): a SELECT, inside a BEFORE INSERT/UPDATE trigger, of the rowids of the rows that hold
    NEW's key. An `OR REPLACE` (or `REPLACE INTO`) deletes such a row without firing its DELETE trigger
    (unless the application's connection has `recursive_triggers` on): logged first, it is copied again,
    or found gone. Each key term is compared as the index compares it (its collation); NEW's values are
    a one-row table with the table's name and columns, so an indexed expression reads them unchanged. A
    partial index's WHERE is left out: a row logged for nothing is only copied again."""
    columns = [r[1] for r in conn.execute(f"PRAGMA table_xinfo({quote(table)})")]
    new_row = "(SELECT " + ", ".join(f"NEW.{quote(c)} AS {quote(c)}" for c in columns) + f") AS {quote(table)}"
    selects = []
    for index in conn.execute(f"PRAGMA index_list({quote(table)})").fetchall():
        if not index[2]:
            continue
        row = conn.execute("SELECT sql FROM main.sqlite_master WHERE type = 'index' AND name = ?",
                           (index[1],)).fetchone()
        text = ddl.read_index(row[0]) if row and row[0] else None
        terms = text.term_texts() if text is not None and text.plain else None
        keys = [r for r in conn.execute(f"PRAGMA index_xinfo({quote(index[1])})") if r[5]]
        conditions = []
        for n, (_seq, cid, name, _desc, collation, _key) in enumerate(keys):
            if cid >= 0:
                term = quote(name)
            elif terms is not None and n < len(terms):
                term = terms[n]
            else:  # (an expression without its text: SQLite always keeps it)
                raise sqlite3.IntegrityError(f"cannot read the key of index {index[1]} of {table}")
            conditions.append(f"({term}) COLLATE {quote(collation)} = (SELECT {term} FROM {new_row})")
        selects.append(f"SELECT rowid FROM {quote(table)} WHERE " + " AND ".join(conditions))
    return selects


#: A copy that has copied this many times the rows its table had when it began is not catching up with
#: the application (which appends faster than the chunks copy): it gives up, whatever the time bound.
CATCH_UP_FACTOR = 3


def _chunks(conn: sqlite3.Connection, work: Online, begin: Callable[[], None], bound: float | None = None) -> None:
    """Copy every row, one short transaction per chunk, sized to take about CHUNK_SECONDS. An application
    that appends faster than the chunks copy is never caught up with, so the copy gives up
    (MigrationFailed; the rebuild is then dropped like after any failure) once it has copied
    CATCH_UP_FACTOR times the rows the table had at the start (a bound that holds at any table size and
    speed: a big table copied slowly is not cut short), or past `bound` seconds when one is set (an
    operator's deploy window)."""
    t = quote(work.table)
    deadline = None if bound is None else time.monotonic() + bound
    shown = progress.current()
    total = conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    pacer, copied = Pacer(), 0
    start = conn.execute(f"SELECT min(rowid) FROM {t}").fetchone()[0]
    while start is not None:
        with write_transaction(conn, begin):
            began = time.perf_counter()  # the lock is ours from here to the COMMIT
            _same_rowids(conn, work)
            high = conn.execute(f"SELECT max(rowid) FROM (SELECT rowid FROM {t} WHERE rowid >= ? ORDER BY rowid "
                                f"LIMIT {int(pacer.size)})", (start,)).fetchone()[0]
            if high is not None:  # (None: the application deleted the rest meanwhile)
                # the chunk, and the rows the application changed in the part already copied
                _copy(conn, work, f"(rowid >= ? AND rowid <= ?) OR {_logged('?')}", (start, high, high))
                copied += conn.execute(f"SELECT count(*) FROM {t} WHERE rowid >= ? AND rowid <= ?",
                                       (start, high)).fetchone()[0]
                conn.execute(f"DELETE FROM {LOG} WHERE rid <= ?", (high,))
                work.watermark = high
            start = None if high is None else conn.execute(f"SELECT min(rowid) FROM {t} WHERE rowid > ?",
                                                           (high,)).fetchone()[0]
        pacer.done(time.perf_counter() - began)
        shown.show(f"rebuilding {work.table} (the application keeps writing): {copied:,}/{total:,} rows copied")
        if start is None:
            break
        if copied > CATCH_UP_FACTOR * total + pacer.size:
            why = (f"after copying {copied:,} rows, {CATCH_UP_FACTOR} times the {total:,} the table had when it "
                   "began: the application adds rows faster than the copy takes them")
        elif deadline is not None and time.monotonic() > deadline:
            why = (f"after {bound:g} s (TABLEMIGRATE_ONLINE_REBUILD_SECONDS), {copied:,} rows copied: the "
                   "copy did not catch up with the application in time")
        else:
            continue
        shown.clear()
        left = conn.execute(f"SELECT count(*) FROM {t} WHERE rowid >= ?", (start,)).fetchone()[0]
        raise MigrationFailed(f"rebuild of {work.table} (online) gave up {why} ({left:,} rows to go); the table "
                              "is as the application left it, every write kept: run again when it writes less, "
                              "or set TABLEMIGRATE_ONLINE_REBUILD_ROWS = None to rebuild in one transaction")
    shown.clear()


def _check_foreign_keys(conn: sqlite3.Connection, work: Online) -> None:
    """The keys of the rows, read outside any write transaction (WAL: the application keeps writing):
    the copy has no foreign keys while it is filled, but its key columns and keys are the live table's,
    copied as they are (`_keys_unchanged`), so the live table is checked. What the application writes
    meanwhile its own enforcement checks."""
    bad = conn.execute(f"PRAGMA foreign_key_check({quote(work.table)})").fetchmany(5)
    if bad:
        shown = ", ".join(f"row {v[1]} -> {v[2]}" for v in bad)
        raise sqlite3.IntegrityError(f"rebuild of {work.table} would leave foreign key violations: {shown}")


def _swap(conn: sqlite3.Connection, work: Online) -> None:
    """Inside the final transaction: the last changes, the proof, the new table in place
    (`rebuild.swap`, with the old table renamed aside for `clean_leftovers` to drop in chunks)."""
    table = work.table
    if _live_sql(conn, table) != work.live_sql:  # the application changed it (a column added, say)
        raise sqlite3.IntegrityError(f"the definition of {table} was changed during the rebuild")
    _same_rowids(conn, work)
    old = _private("old", table)

    def last_changes(_rows: int) -> int:
        if work.watermark is not None:  # what came after the last chunk, and the last changes
            _copy(conn, work, f"rowid > ? OR {_logged('')}", (work.watermark,))
        else:
            _copy(conn, work, "1")
        for (name,) in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'trigger' AND name LIKE ? "
                                    "ESCAPE '\\'", (_private("trigger", table).replace("_", "\\_") + "%",)).fetchall():
            conn.execute(f"DROP TRIGGER {quote(name)}")
        conn.execute(f"DROP TABLE {LOG}")
        return conn.execute(f"SELECT count(*) FROM {quote(work.tmp)}").fetchone()[0]

    def settle() -> None:
        # One edit of sqlite_schema: the new table gets its real definition (its foreign keys), the old one
        # loses its keys (its rows must not hold the application's parent deletes), the old indexes private
        # names, the new ones their real names.
        edits = [("table", table, table, sqltext.pretty_create_table(work.op.create, table)),
                 ("table", old, old, sqltext.pretty_create_table(work.old_without_keys, old))]
        for n, (name, sql) in enumerate(conn.execute(
                "SELECT name, sql FROM main.sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = ?",
                (old,)).fetchall()):
            edits.append(("index", name, f"{old}_{n}", ddl.rename_index(sql, f"{old}_{n}", old)))
        for private, sql in work.indexes.items():
            real = ddl.read_index(sql).name  # type: ignore[union-attr]
            edits.append(("index", private, real, ddl.rename_index(sql, real, table, qualified=True)))
        if not rebuild.edit_schema(conn, edits):
            raise sqlite3.DatabaseError("SQLite does not let this connection write sqlite_schema")

    rebuild.swap(conn, table, work.tmp, last_changes, aside=old, settle=settle,
                 counted=lambda o: not o[1].startswith(PREFIX) and not (o[0] == "index" and o[1] in work.drops))


def run(conn: sqlite3.Connection, work: Online, begin: Callable[[], None],
        finish: Callable[[], bool]) -> bool:
    """Apply the module online. `begin()` opens a write transaction (BEGIN IMMEDIATE, with the caller's
    busy handling); `finish()`, inside the final transaction, re-checks that the module is still needed
    (False: nothing done) and records it. Returns whether it was applied. On failure everything the
    setup made is dropped and the live table is as the application left it."""
    clean_leftovers(conn, begin)  # of a run killed mid-copy (`run` drops them before its backup too)
    try:
        with write_transaction(conn, begin):
            _run_checks(conn, work)  # before a row is copied
            _setup(conn, work)
        with _unsynced(conn):
            _chunks(conn, work, begin, conf.online_rebuild_seconds())
        _check_foreign_keys(conn, work)
        begin()
        _run_checks(conn, work)  # again: the application wrote during the copy; the lock is held to the swap
        if not finish():
            conn.execute("ROLLBACK")
            clean_leftovers(conn, begin)
            return False
        _swap(conn, work)
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        left = _drop_what_failed(conn, begin)
        if isinstance(exc, sqlite3.Error):
            raise MigrationFailed(f"rebuild of {work.table} (online) failed: {type(exc).__name__}: {exc}; "
                                  f"the table is as the application left it{left}") from exc
        if isinstance(exc, MigrationFailed) and left:
            raise type(exc)(f"{exc}{left}") from exc
        raise
    try:
        with _unsynced(conn):
            clean_leftovers(conn, begin)  # the old table, in chunks
    except (sqlite3.Error, DatabaseLocked) as exc:  # the module is applied and recorded: it stays so
        logger.warning("rebuild of %s (online) applied, but dropping the old table failed (%s: %s): %s remain "
                       "until the next run or revert drops them", work.table, type(exc).__name__, exc,
                       _left_names(conn))
    return True


def _run_checks(conn: sqlite3.Connection, work: Online) -> None:
    """The module's checks, in the open transaction; one that refuses fails the rebuild."""
    for check in work.checks:
        try:
            check.apply(conn)
        except Exception as exc:
            raise MigrationFailed(f"{check!r}: {type(exc).__name__}: {exc}") from exc


def _left_names(conn: sqlite3.Connection) -> str:
    return ", ".join(name for _kind, name in leftovers(conn))


def _drop_what_failed(conn: sqlite3.Connection, begin: Callable[[], None]) -> str:
    """After a failure: drop what the rebuild made. '' when done, else what the error line adds: what
    remains, which the next `run` or `revert` drops (`clean_leftovers`) before anything else."""
    try:
        clean_leftovers(conn, begin)
        return ""
    except (sqlite3.Error, DatabaseLocked) as exc:
        return (f", but dropping what the rebuild made failed too ({type(exc).__name__}: {exc}): "
                f"{_left_names(conn)} remain until the next run or revert drops them")


@contextlib.contextmanager
def _unsynced(conn: sqlite3.Connection) -> Iterator[None]:
    """`synchronous = NORMAL` while the chunks commit (WAL mode: a commit then waits for no fsync; the
    checkpoints still sync). A power loss can only take back the last chunks of a copy nobody reads yet,
    or of the old table's deletion: the next run drops the leftovers. The swap commits as the
    connection was set up."""
    level = conn.execute("PRAGMA synchronous").fetchone()[0]
    conn.execute("PRAGMA synchronous = NORMAL" if level > 1 else f"PRAGMA synchronous = {int(level)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA synchronous = {int(level)}")


_LEFTOVER = re.compile(rf"{PREFIX}(?:(?:new|old)_[0-9a-f]{{8}}|log|trigger_[0-9a-f]{{8}}_(?:[iud]|k[iu]))")


def leftovers(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(type, name) of what an online rebuild left, triggers first: exactly the names it gives (a
    project's own `TableMigrate_Online_Audit` is not one)."""
    rows = conn.execute("SELECT type, name FROM main.sqlite_master WHERE name LIKE ? ESCAPE '\\' AND type IN "
                        "('trigger', 'table') ORDER BY type = 'table'", (PREFIX.replace("_", "\\_") + "%",))
    return [(kind, name) for kind, name in rows if _LEFTOVER.fullmatch(name)]


def clean_leftovers(conn: sqlite3.Connection, begin: Callable[[], None] | None = None) -> list[str]:
    """Drop what an online rebuild left (its triggers first, so the application stops logging; then its
    tables, emptied in chunks so no transaction holds the lock long). Returns the names dropped."""
    if begin is None:
        def begin() -> None:
            conn.execute("BEGIN IMMEDIATE")
    found = leftovers(conn)
    if not found:
        return []
    with write_transaction(conn, begin):
        for kind, name in found:
            if kind == "trigger":
                conn.execute(f"DROP TRIGGER {quote(name)}")
    for kind, name in found:
        if kind == "table":
            _drop_in_chunks(conn, name, begin)
    logger.info("dropped what an online rebuild left: %s", ", ".join(n for _k, n in found))
    return [n for _k, n in found]


def _drop_in_chunks(conn: sqlite3.Connection, table: str, begin: Callable[[], None]) -> None:
    """Empty `table` in short transactions, then drop it: a DROP of a big table walks every page under
    the write lock (0.2 s at 300 MB; 2.8 s where SQLite zeroes freed pages, `secure_delete`, which is
    kept as the database has it)."""
    q = quote(table)
    pacer = Pacer()
    while True:
        with write_transaction(conn, begin):
            began = time.perf_counter()
            gone = conn.execute(f"DELETE FROM {q} WHERE rowid IN (SELECT rowid FROM {q} LIMIT {int(pacer.size)})"
                                ).rowcount
            if gone <= 0:
                conn.execute(f"DROP TABLE {q}")
        if gone <= 0:
            return
        pacer.done(time.perf_counter() - began)
