"""Data-dependent checks: what the pending migrations would do to the rows the database holds now.

Generate-time flags (`destructive` in a module) say what a migration *can* lose; these checks count
what it *would* lose or trip over on this database, before anything is changed:

- **violations**: rows a new constraint rejects (NULL into NOT NULL, duplicates under UNIQUE or a new
  primary key, rows failing a CHECK, a NOT NULL column added without a value). Applying would fail, so
  `run` refuses outright, whatever the flags.
- **losses**: values that would be dropped or changed (a dropped table or column that holds data, a
  rebuild that does not copy a column, a copy expression or type change that alters stored values).
  Applying needs confirmation.

Every query is read-only against the live database (type-conversion probes use a TEMP table). A step
whose table or column does not exist yet (created by an earlier pending migration) is not checked here;
the constraints themselves still stop the migration at apply time, and the database is restored.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from . import sqltext
from .introspect import introspect_table
from .loader import Migration
from .operations import RebuildTable
from .plan import affinity
from .schema import Table
from .sqltext import quote

logger = logging.getLogger("tablemigrate")


@dataclass(frozen=True)
class Finding:
    migration: str
    kind: str  # "violation" | "loss"
    message: str

    def __str__(self) -> str:
        return f"{self.migration}: {self.message}"


def _count(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> int:
    return conn.execute(sql, params).fetchone()[0]


def _rows(n: int, what: str = "row") -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _live_columns(conn: sqlite3.Connection, table: str) -> dict[str, tuple[str, str]] | None:
    """lower name -> (name, declared type) of a live table's stored columns; None if it does not exist."""
    rows = conn.execute(f"PRAGMA table_xinfo({quote(table)})").fetchall()
    return {r[1].lower(): (r[1], r[2] or "") for r in rows if r[6] in (0, 1)} or None


@dataclass
class _Source:
    """A table as the migration's earlier renames have made it, read from the live table: `sql` is a
    FROM-clause item; `columns` maps lower name -> (name under the renames, declared type)."""

    sql: str
    columns: dict[str, tuple[str, str]]


def _target_table(create: str, name: str) -> Table:
    mem = sqlite3.connect(":memory:")
    try:
        mem.execute(create)
        return introspect_table(mem, name, create, [])
    finally:
        mem.close()


_STRICT_TYPES = {"INT": ("integer",), "INTEGER": ("integer",), "REAL": ("real", "integer"),
                 "TEXT": ("text",), "BLOB": ("blob",)}


def _collation(table: Table, key: str) -> str:
    column = table.columns.get(key)
    return quote(column.collation) if column is not None and column.collation else "BINARY"


class _Checker:
    def __init__(self, conn: sqlite3.Connection, migration: Migration, changed: set[str]):
        self.conn = conn
        self.migration = migration
        self.changed = changed  # tables whose rows earlier pending steps change: not checked (see check())
        self.findings: list[Finding] = []
        self.copied_from: set[str] = set()  # tables an INSERT ... SELECT read earlier in this migration
        # Renames done by earlier statements of this migration, which the live database has not seen:
        self.table_origin: dict[str, str] = {}  # current name lower -> live name
        self.column_names: dict[str, dict[str, str]] = {}  # current table lower -> {live col lower: current}

    def source(self, table: str) -> _Source | None:
        live_name = self.table_origin.get(table.lower(), table)
        live = _live_columns(self.conn, live_name)
        if live is None:
            return None
        current = self.column_names.get(table.lower(), {})
        triples = [(name, current.get(key, name), ctype) for key, (name, ctype) in live.items()]
        columns = {new.lower(): (new, ctype) for _live, new, ctype in triples}
        if live_name == table and all(a == b for a, b, _t in triples):
            return _Source(quote(table), columns)
        select = ", ".join(f"{quote(a)} AS {quote(b)}" for a, b, _t in triples)
        return _Source(f"(SELECT {select} FROM {quote(live_name)})", columns)

    def rename_table(self, old: str, new: str) -> None:
        self.table_origin[new.lower()] = self.table_origin.pop(old.lower(), old)
        if old.lower() in self.column_names:
            self.column_names[new.lower()] = self.column_names.pop(old.lower())

    def rename_column(self, table: str, old: str, new: str) -> None:
        current = self.column_names.setdefault(table.lower(), {})
        live = next((k for k, v in current.items() if v.lower() == old.lower()), old.lower())
        current[live] = new

    def add(self, kind: str, message: str) -> None:
        self.findings.append(Finding(self.migration.name, kind, message))

    # RebuildTable ------------------------------------------------------------------------------

    def rebuild(self, step: RebuildTable) -> None:
        conn, table = self.conn, step.table
        src = self.source(table)
        if src is None or self._rows_changed(table):
            return
        rows = _count(conn, f"SELECT count(*) FROM {src.sql}")
        if rows == 0:
            return
        target = _target_table(step.create, table)
        copy = {c.lower(): (c, e) for c, e in step.copy.items()}
        live = self._live_table(table, src)
        # Columns copied unchanged from a live column of the same name: what the live table already
        # enforces on them (NOT NULL, UNIQUE, the key, a CHECK) needs no scan of a million rows.
        same = {k for k, (_c, e) in copy.items() if live is not None and k in live.columns
                and sqltext.normalize(e) == sqltext.normalize(quote(live.columns[k].name))}
        # New rows as the copy would produce them; columns left to their defaults are not evaluated.
        # New rows compare the way the new table will: each value under its new column's collation.
        new_rows = "SELECT " + ", ".join(
            f"({e}) COLLATE {_collation(target, k)} AS {quote(c)}" for k, (c, e) in copy.items()) + f" FROM {src.sql}"
        must_fill = [col for key, col in target.columns.items() if key in copy and col.notnull and not col.generated
                     and not (key in same and live is not None and live.columns[key].notnull)]
        if must_fill:  # one scan for every column that becomes NOT NULL
            counts = conn.execute("SELECT " + ", ".join(f"total({quote(c.name)} IS NULL)" for c in must_fill)
                                  + f" FROM ({new_rows})").fetchone()
            for col, n in zip(must_fill, counts):
                if n:
                    self.add("violation", f"{_rows(int(n))} of {table} would hold NULL in {col.name}, "
                                          "which becomes NOT NULL")
        for key, col in target.columns.items():
            if key not in copy and not col.generated and col.notnull and col.default is None \
                    and target.primary_key != (key,):  # a rowid key fills itself
                self.add("violation", f"{table} has {_rows(rows)} and the new NOT NULL column {col.name} "
                                      "gets no value")
        self._unique_groups(table, new_rows, copy, target, live, same)
        for check in target.checks:
            if live is not None and check in live.checks and not (set(live.columns) - same) and all(
                    live.columns[k].collation == target.columns[k].collation
                    and affinity(live.columns[k].type) == affinity(target.columns[k].type)
                    for k in same if k in target.columns):
                continue  # the same CHECK over the same columns, compared and stored the same way
            try:
                n = _count(conn, f"SELECT count(*) FROM ({new_rows}) WHERE NOT ({check.expr})")
            except sqlite3.OperationalError:  # the CHECK reads a column that takes its default
                continue
            if n:
                self.add("violation", f"{_rows(n)} of {table} would fail CHECK ({check.expr})")
        live = src.columns
        for key, (name, _type) in live.items():
            if not any(sqltext.mentions(e, name) for _c, e in copy.values()):
                n = _count(conn, f"SELECT count(*) FROM {src.sql} WHERE {quote(name)} IS NOT NULL")
                if n:
                    self.add("loss", f"{_rows(n, 'value')} in {table}.{name} would be dropped (column not copied)")
        for key, (_cname, expr) in copy.items():
            sources = [v for v in live.values() if sqltext.mentions(expr, v[0])]
            if len(sources) != 1:
                continue
            sname, stype = sources[0]
            if sqltext.normalize(expr) != sqltext.normalize(quote(sname)):
                n = _count(conn, f"SELECT count(*) FROM {src.sql} WHERE ({expr}) IS NOT {quote(sname)}")
                if n:
                    self.add("loss", f"{_rows(n, 'value')} of {table}.{sname} would change to {expr}")
            elif key in target.columns:
                self._type_change(table, src, sname, stype, target.columns[key].type, target.strict)

    def _live_table(self, table: str, src: _Source) -> Table | None:
        """The live table's structure, when the copy reads it under its own names (no renames)."""
        if src.sql != quote(table):
            return None
        row = self.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND lower(name) = lower(?)",
                                (table,)).fetchone()
        return introspect_table(self.conn, row[0], row[1], []) if row else None

    def _unique_groups(self, table: str, new_rows: str, copy: dict, target: Table, live: Table | None,
                       same: set[str]) -> None:
        groups = [(u.columns, "UNIQUE") for u in target.uniques]
        if target.primary_key:
            groups.append((tuple(quote(k) for k in target.primary_key), "PRIMARY KEY"))
        enforced = set()
        if live is not None:
            enforced = {frozenset(sqltext.unquote(c).lower() for c in u.columns) for u in live.uniques}
            enforced.add(frozenset(live.primary_key))
        for columns, what in groups:
            keys = [sqltext.unquote(c).lower() for c in columns]
            if not all(k in copy and k in target.columns for k in keys):
                continue
            if live is not None and frozenset(keys) in enforced and set(keys) <= same and all(
                    live.columns[k].collation == target.columns[k].collation for k in keys):
                continue  # the live table already guarantees it
            # Compared the way the new table compares: its column's collation, not the old one's.
            collated = [f"{quote(k)} COLLATE {target.columns[k].collation or 'BINARY'}" for k in keys]
            self._duplicates(f"({new_rows})", collated, None, f"{table} ({', '.join(columns)}) under {what}")

    def _duplicates(self, source: str, columns: tuple[str, ...] | list[str], where: str | None,
                    what: str) -> None:
        cols = ", ".join(columns)
        conditions = [f"{c} IS NOT NULL" for c in columns] + ([f"({where})"] if where else [])
        try:
            n = _count(self.conn, f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE "
                                  f"{' AND '.join(conditions)} GROUP BY {cols} HAVING count(*) > 1)")
        except sqlite3.OperationalError:
            return
        if n:
            self.add("violation", f"{_rows(n, 'duplicated value')} in {what}")

    def _type_change(self, table: str, src: _Source, column: str, old_type: str, new_type: str,
                     strict: bool) -> None:
        """Stored values that SQLite's type affinity would convert (e.g. '007' -> 7) or that a STRICT
        table would reject: probed by SQLite itself on a TEMP table, never on the database."""
        if affinity(old_type) == affinity(new_type) and not strict:
            return
        conn = self.conn
        probe = "temp.tablemigrate_probe"
        conn.execute(f"DROP TABLE IF EXISTS {probe}")
        conn.execute(f"CREATE TABLE {probe} (original, converted {new_type})")
        try:
            conn.execute(f"INSERT INTO {probe} SELECT {quote(column)}, {quote(column)} FROM {src.sql} "
                         f"WHERE {quote(column)} IS NOT NULL")
            # A STRICT table applies the same conversion, then rejects what is still the wrong type.
            allowed = _STRICT_TYPES.get(new_type.upper()) if strict else None
            if allowed:
                marks = ", ".join("?" * len(allowed))
                n = _count(conn, f"SELECT count(*) FROM {probe} WHERE typeof(converted) NOT IN ({marks})", allowed)
                if n:
                    self.add("violation", f"{_rows(n, 'value')} in {table}.{column} cannot be stored as "
                                          f"{new_type} in a STRICT table")
            n = _count(conn, f"SELECT count(*) FROM {probe} WHERE typeof(converted) != typeof(original) "
                             "AND CAST(converted AS TEXT) IS NOT CAST(original AS TEXT)")
            if n:
                self.add("loss", f"{_rows(n, 'value')} in {table}.{column} would be converted to {new_type} "
                                 "and read back differently (for example '007' becomes 7)")
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {probe}")

    # plain SQL ---------------------------------------------------------------------------------

    def _rows_changed(self, table: str) -> bool:
        return "*" in self.changed or table.lower() in self.changed or \
            self.table_origin.get(table.lower(), table).lower() in self.changed

    def statement(self, sql: str) -> None:
        tokens = sqltext.tokenize(sql)
        words = [t.keyword() for t in tokens[:6]]
        if words[:1] in (["insert"], ["replace"], ["update"], ["delete"], ["with"]):
            self._data_statement(tokens)
        elif words[:2] == ["drop", "table"]:
            table = sqltext.unquote(tokens[4 if words[2:4] == ["if", "exists"] else 2].text)
            src = self.source(table)
            if src is None or table.lower() in self.copied_from or self._rows_changed(table):
                return
            n = _count(self.conn, f"SELECT count(*) FROM {src.sql}")
            if n:
                self.add("loss", f"dropping {table} deletes {_rows(n)}")
        elif words[:2] == ["alter", "table"] and len(tokens) >= 6:
            self._alter(tokens)
        elif words[:2] == ["create", "unique"]:
            self._unique_index(tokens)

    def _data_statement(self, tokens: list[sqltext.Token]) -> None:
        """INSERT/UPDATE/DELETE written by hand: the rows they touch are no longer the live rows."""
        words = [t.keyword() for t in tokens]
        if words[0] == "with":  # a CTE: which table it writes is not worth guessing
            self.changed.add("*")
            return
        if words[0] == "insert" or words[0] == "replace":
            self.copied_from.update(sqltext.unquote(tokens[i + 1].text).lower()
                                    for i, w in enumerate(words[:-1]) if w == "from")
            at = words.index("into") + 1
        elif words[0] == "delete":
            at = words.index("from") + 1
        else:
            at = 1 + (2 if words[1] == "or" else 0)
        self.changed.add(sqltext.unquote(tokens[at].text).lower())

    def _alter(self, tokens: list[sqltext.Token]) -> None:
        table = sqltext.unquote(tokens[2].text)
        verb = tokens[3].keyword()
        args = [sqltext.unquote(t.text) for t in tokens[4:] if t.keyword() not in ("column", "to")]
        if verb == "rename" and tokens[4].keyword() == "to":
            self.rename_table(table, args[0])
        elif verb == "rename":
            self.rename_column(table, args[0], args[1])
        elif verb == "drop":
            src = self.source(table)
            if src is None or self._rows_changed(table):
                return
            n = _count(self.conn, f"SELECT count(*) FROM {src.sql} WHERE {quote(args[0])} IS NOT NULL")
            if n:
                self.add("loss", f"{_rows(n, 'value')} in {table}.{args[0]} would be dropped")

    def _unique_index(self, tokens: list[sqltext.Token]) -> None:
        on = next(i for i, t in enumerate(tokens) if t.keyword() == "on")
        table = sqltext.unquote(tokens[on + 1].text)
        close = sqltext.matching_paren(tokens, on + 2)
        columns = []
        for part in sqltext.split_top_level(tokens[on + 3:close]):
            while part and part[-1].keyword() in ("asc", "desc"):
                part = part[:-1]
            columns.append(" ".join(t.text for t in part))
        rest = tokens[close + 1:]
        where = " ".join(t.text for t in rest[1:]) if rest and rest[0].keyword() == "where" else None
        src = self.source(table)
        if src is None or self._rows_changed(table):
            return
        self._duplicates(src.sql, columns, where, f"{table} ({', '.join(columns)}) under a new unique index")


def check(conn: sqlite3.Connection, migrations: list[Migration], direction: str = "up") -> list[Finding]:
    """Findings for `migrations` (applied in order, `direction`) against the rows `conn` holds now."""
    findings: list[Finding] = []
    # Tables whose rows an earlier pending step changes (hand-written INSERT/UPDATE/DELETE; a Python step
    # changes anything): their live rows say nothing about what a later step will meet, so they are not
    # checked; the constraints still stop a migration at apply time, and the database is restored.
    changed: set[str] = set()
    for m in migrations:
        checker = _Checker(conn, m, changed)
        for step in m.steps(direction):
            try:
                if isinstance(step, RebuildTable):
                    checker.rebuild(step)
                elif isinstance(step, str):
                    for sql in sqltext.split_statements(step):
                        checker.statement(sql)
                else:
                    changed.add("*")
            except sqlite3.OperationalError as exc:  # an object an earlier pending migration creates
                logger.debug("data check skipped a step of %s: %s", m.name, exc)
            except (StopIteration, IndexError, ValueError):  # SQL shaped unlike what we recognise
                logger.debug("data check could not read a step of %s", m.name)
        findings.extend(checker.findings)
    return findings
