"""Data-dependent checks: what the pending migrations would do to the rows the database holds now.

Generate-time flags (`destructive` in a module) say what a migration *can* lose; these checks count
what it *would* lose or trip over on this database, before anything is changed:

- **violations**: rows a new constraint rejects (NULL into NOT NULL, duplicates under UNIQUE or a new
  primary key, rows failing a CHECK, a NOT NULL column added without a value). Applying would fail, so
  `run` refuses outright, whatever the flags.
- **losses**: values that would be dropped or changed (a dropped table or column that holds data, a
  rebuild that does not copy a column, a copy expression or type change that alters stored values).
  Applying needs confirmation.
- **nothing to lose**: a migration every step of which the check can read, and whose every table it
  could lose rows from (one it drops, drops a column of, rebuilds, fills or writes) is certainly empty
  when it runs: live and empty (nothing writes it earlier in the run), or created earlier in the same
  run with nothing written into it since. Its module's `destructive` flags (what it *can* lose) then
  need no confirmation on this database (`Assessment.lose_nothing`).

Every query is read-only against the live database (type-conversion probes use a TEMP table). A step
whose table or column does not exist yet (created by an earlier pending migration) is not checked for
violations here; the constraints themselves still stop the migration at apply time, and the database is
restored. Dropping such a table is a loss when earlier steps of the run may have written rows into it.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

from tablemigrate.history.loader import Migration
from tablemigrate.operations import FillColumn, RebuildTable
from tablemigrate.sqlite import ddl, sqltext
from tablemigrate.sqlite.introspect import introspect_table, shadow_tables
from tablemigrate.sqlite.schema import Table, affinity
from tablemigrate.sqlite.sqltext import quote

from .rehearse import Effects, StatementKey, rehearse

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


@dataclass
class _RunState:
    """What earlier pending steps of the whole run did, which the live database has not seen yet."""

    # Tables whose rows earlier steps write (hand-written INSERT/UPDATE/DELETE, a fill; "*": a Python
    # step, which may write anything). Their live rows say nothing certain about what a later step meets.
    changed: set[str] = field(default_factory=set)
    read_from: set[str] = field(default_factory=set)  # tables earlier statements read
    table_origin: dict[str, str] = field(default_factory=dict)  # current name lower -> live name
    column_names: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> {live col: current}
    shadows: set[str] = field(default_factory=set)  # virtual tables' shadow tables in the live database
    # Tables this run creates (current lower names; a live table of the same name was dropped first):
    # their rows are only what the run writes. `fresh`: those no step has written into since.
    created: set[str] = field(default_factory=set)
    fresh: set[str] = field(default_factory=set)
    # ... and those only a step the check cannot read (Python, a data step) may have written into since:
    # whether they hold rows is known only when the migration runs, which checks it (StillEmpty).
    unknown: set[str] = field(default_factory=set)
    # Something outside these migrations writes first (the run's Django migrations, data steps included):
    # a live table that is empty now is proved empty again when its migration runs (StillEmpty).
    others_write_first: bool = False


class _Checker:
    def __init__(self, conn: sqlite3.Connection, migration: Migration, state: _RunState):
        self.conn = conn
        self.migration = migration
        self.findings: list[Finding] = []
        self.loses_nothing = True  # until a step may lose rows, or cannot be read
        # Live tables counted empty, named as they are when the migration starts (its transaction checks
        # them again: the application may write one in between). At the start: live name -> current.
        self.counted: list[str] = []
        self._names_at_start = {live.lower(): current for current, live in state.table_origin.items()}
        self._created_at_start = set(state.created)
        self.state = state
        self.changed = state.changed
        self.read_from = state.read_from
        self.table_origin = state.table_origin
        self.column_names = state.column_names

    def source(self, table: str) -> _Source | None:
        """The live table `table` stands for at this point of the run; None for one the run created."""
        if table.lower() in self.state.created:
            return None
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
        for tables in (self.state.created, self.state.fresh):
            if old.lower() in tables:
                tables.discard(old.lower())
                tables.add(new.lower())
        if old.lower() in self.column_names:
            self.column_names[new.lower()] = self.column_names.pop(old.lower())

    def rename_column(self, table: str, old: str, new: str) -> None:
        current = self.column_names.setdefault(table.lower(), {})
        live = next((k for k, v in current.items() if v.lower() == old.lower()), old.lower())
        current[live] = new

    def add(self, kind: str, message: str) -> None:
        self.findings.append(Finding(self.migration.name, kind, message))

    def empty(self, table: str) -> bool:
        """Whether `table` certainly holds no row at this point of the run."""
        key = table.lower()
        if key in self.state.created:
            if key in self.state.fresh:
                return True
            if key in self.state.unknown and key in self._created_at_start:
                self.counted.append(table)  # only steps the check cannot read wrote since: proved when it runs
                return True
            return False
        if self._rows_changed(table, by_python=False):
            return False
        src = self.source(table)
        if src is None or _count(self.conn, f"SELECT EXISTS (SELECT 1 FROM {src.sql})"):
            return False
        # Empty now. The run's Django migrations or a Python step before it may write rows into it: the
        # migration's transaction proves it still empty (StillEmpty), as it does for any table counted here.
        live = self.table_origin.get(key, table)
        self.counted.append(self._names_at_start.get(live.lower(), live))
        return True

    def may_lose(self, tables: list[str]) -> None:
        """A step that can lose rows of `tables`: unless they are all empty, the migration may lose some."""
        if self.loses_nothing and not all(self.empty(t) for t in tables):
            self.loses_nothing = False

    def python(self) -> None:
        """A step the check cannot read (Python): it may write, or lose, anything."""
        self.unreadable()
        self.changed.add("*")

    def unreadable(self) -> None:
        """A step the check could not follow: what it loses is unknown, and so are the rows it writes."""
        self.loses_nothing = False
        self.state.unknown |= self.state.fresh
        self.state.fresh.clear()

    # RebuildTable ------------------------------------------------------------------------------

    def rebuild(self, step: RebuildTable) -> None:
        conn, table = self.conn, step.table
        self.may_lose([table])
        src = self.source(table)
        if src is None:
            return
        rows = _count(conn, f"SELECT count(*) FROM {src.sql}")
        if rows == 0:
            return
        target = _target_table(step.create, table)
        # Run as RebuildTable runs them: a double-quoted name that is not there is an error, not text.
        copy = {c.lower(): (c, sqltext.without_string_fallback(e)) for c, e in step.copy.items()}
        if not self._rows_changed(table):  # a violation refuses outright: only on rows known for sure
            self._violations(table, src, rows, target, copy)
        self._losses(table, src, copy, target, {c.lower(): e for c, e in step.copy.items()})

    def _violations(self, table: str, src: _Source, rows: int, target: Table,
                    copy: dict[str, tuple[str, str]]) -> None:
        conn = self.conn
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

    def _losses(self, table: str, src: _Source, copy: dict[str, tuple[str, str]], target: Table,
                shown: dict[str, str]) -> None:
        """Every live column must reach the new table unchanged; anything else is a possible loss,
        counted: a same-named column whose expression is not the column itself (a constant, a fill, a
        conversion: rows whose value would differ), and a column no expression copies as it is."""
        verbatim = {sqltext.normalize(e): k for k, (_c, e) in copy.items()}
        for key, (name, ctype) in src.columns.items():
            exact = verbatim.get(sqltext.normalize(quote(name)))
            if key in copy and exact != key:
                expr = copy[key][1]
                # Exactly: not under the column's collation or affinity, which would take 'Alice' for
                # lower('Alice') (NOCASE) or '007' for CAST('007' AS INTEGER).
                n = _count(self.conn, f"SELECT count(*) FROM {src.sql} WHERE NOT ((({expr}) COLLATE BINARY) IS "
                                      f"({quote(name)} COLLATE BINARY) AND typeof({expr}) = typeof({quote(name)}))")
                if n:
                    self.add("loss", f"{_rows(n, 'value')} of {table}.{name} would change to {shown[key]}"
                                     + self._estimate(table))
            elif exact is None:
                n = _count(self.conn, f"SELECT count(*) FROM {src.sql} WHERE {quote(name)} IS NOT NULL")
                if n:
                    self.add("loss", f"{_rows(n, 'value')} in {table}.{name} would be dropped (column not copied)"
                                     + self._estimate(table))
            if exact is not None and exact in target.columns:
                self._type_change(table, src, name, ctype, target.columns[exact].type, target.strict)

    def fill(self, step: FillColumn) -> None:
        """A column set to its default in every row (or every NULL): values it holds now are replaced.
        Only its own table's rows change; later steps are still checked against everything else."""
        self.may_lose([step.table])
        src = self.source(step.table)
        key = step.column.lower()
        if src is not None and key in src.columns and not step.only_null:
            name = src.columns[key][0]
            n = _count(self.conn, f"SELECT count(*) FROM {src.sql} WHERE {quote(name)} IS NOT NULL")
            if n:
                self.add("loss", f"{_rows(n, 'value')} in {step.table}.{name} would be replaced by {step.describe()}"
                                 + self._estimate(step.table))
        self.changed.add(step.table.lower())
        self.state.fresh.discard(step.table.lower())  # its value may come from Python (a callable default)

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

    def _estimate(self, table: str) -> str:
        """Losses are still counted on a table earlier steps write (never skipped: confirming them is
        what keeps data); the count is then of the rows as they are now."""
        return " (counted before earlier steps of this run change its rows)" if self._rows_changed(table) else ""

    def _rows_changed(self, table: str, by_python: bool = True) -> bool:
        """Whether an earlier step of the run writes `table`'s rows (`by_python`: or may, being Python)."""
        return ("*" in self.changed and by_python) or table.lower() in self.changed or \
            self.table_origin.get(table.lower(), table).lower() in self.changed

    def statement(self, sql: str, effects: Effects) -> None:
        """A plain-SQL statement, by what SQLite reported it does on the schema copy (`effects`):
        quoting, `main.` and the statement's shape are SQLite's business, not ours."""
        state = self.state
        made = {t.lower() for t in effects.created_tables}
        self.may_lose([t for t in effects.dropped_tables if t.lower() not in state.shadows]
                      + [t for t, _column in effects.dropped_columns]
                      + [t for t in effects.written if t.lower() not in made])
        for table in effects.dropped_tables:
            copied = (" (an earlier statement copies from it: confirm the copy keeps what you need)"
                      if table.lower() in self.read_from else "")
            if table.lower() in state.created:  # made by this run: it holds what the run wrote into it
                if not self.empty(table):
                    self.add("loss", f"dropping {table} deletes the rows earlier steps of this run write into it"
                                     + copied)
                state.created.discard(table.lower())
                state.fresh.discard(table.lower())
                continue
            src = self.source(table)
            if src is None or table.lower() in state.shadows:  # shadows go with their virtual table
                continue
            n = _count(self.conn, f"SELECT count(*) FROM {src.sql}")
            if n or (self._rows_changed(table) and not self.empty(table)):
                # Whether an earlier INSERT ... SELECT kept those rows (all of them? every column?) is
                # known only by running it: a drop of rows is always a loss to confirm.
                rows = _rows(n) if n else "the rows earlier steps of this run write into it"
                self.add("loss", f"dropping {table} deletes {rows}{copied}" + (self._estimate(table) if n else ""))
        for table, column in effects.dropped_columns:
            src = self.source(table)
            if src is None or column.lower() not in src.columns:
                continue
            n = _count(self.conn, f"SELECT count(*) FROM {src.sql} WHERE {quote(column)} IS NOT NULL")
            if n:
                self.add("loss", f"{_rows(n, 'value')} in {table}.{column} would be dropped" + self._estimate(table))
        for old, new in effects.renamed_tables:
            self.rename_table(old, new)
        for table, old, new in effects.renamed_columns:
            self.rename_column(table, old, new)
        state.created |= made
        state.fresh |= made
        # Rows written by hand (INSERT/UPDATE/DELETE, triggers included) are no longer the live rows.
        self.changed.update(t.lower() for t in effects.written)
        state.fresh.difference_update(t.lower() for t in effects.written)
        state.unknown.difference_update(t.lower() for t in effects.written)
        self.read_from.update(t.lower() for t in effects.read)
        index = ddl.read_index(sql)
        if index is not None and index.unique:
            self._unique_index(index)

    def _unique_index(self, index: ddl.IndexText) -> None:
        if index.terms is None:
            raise ValueError("a unique index without a readable list of terms")
        table = index.table
        columns = [" ".join(t.text for t in term) for term in index.terms]
        where = " ".join(t.text for t in index.where) or None
        src = self.source(table)
        if src is None or self._rows_changed(table):
            return
        self._duplicates(src.sql, columns, where, f"{table} ({', '.join(columns)}) under a new unique index")


@dataclass
class Assessment:
    findings: list[Finding]
    lose_nothing: set[str]  # migrations that certainly lose no row on this database (module docstring)
    # ... and, for each, the live tables that must still be empty when it starts (counted empty here)
    still_empty: dict[str, list[str]] = field(default_factory=dict)


def check(conn: sqlite3.Connection, migrations: list[Migration], direction: str = "up",
          effects: dict[StatementKey, Effects] | None = None) -> list[Finding]:
    """Findings for `migrations` (applied in order, `direction`) against the rows `conn` holds now.
    `effects`: what the rehearsal on the schema copy saw each statement do (rehearsed here if None)."""
    return assess(conn, migrations, direction, effects).findings


def assess(conn: sqlite3.Connection, migrations: list[Migration], direction: str = "up",
           effects: dict[StatementKey, Effects] | None = None, others_write_first: bool = False) -> Assessment:
    """The findings, and which migrations certainly lose nothing here. `others_write_first`: something
    else writes to the database before these migrations run (the run's Django migrations)."""
    if effects is None:
        effects = rehearse(conn, migrations, direction)
    findings: list[Finding] = []
    lose_nothing: set[str] = set()
    still_empty: dict[str, list[str]] = {}
    # Tables whose rows an earlier pending step changes are not checked for violations (an UPDATE may
    # fix the NULLs a NOT NULL rebuild meets; the constraints still stop the migration at apply time, and
    # the database is restored), but their losses are always counted, on the rows as they are now.
    state = _RunState(shadows=shadow_tables(conn), others_write_first=others_write_first)
    for m in migrations:
        checker = _Checker(conn, m, state)
        for number, step in enumerate(m.steps(direction), 1):
            try:
                if isinstance(step, RebuildTable):
                    checker.rebuild(step)
                elif isinstance(step, FillColumn):
                    checker.fill(step)
                elif isinstance(step, str):
                    for index, sql in enumerate(sqltext.split_statements(step)):
                        seen = effects.get((m.name, number, index))
                        if seen is None:  # not rehearsed as split here: what it does is not known
                            checker.unreadable()
                        checker.statement(sql, seen or Effects())
                else:
                    checker.python()
            except sqlite3.OperationalError as exc:  # an object an earlier pending migration creates
                checker.unreadable()
                logger.debug("data check skipped a step of %s: %s", m.name, exc)
            except (StopIteration, IndexError, ValueError):  # SQL shaped unlike what we recognise
                checker.unreadable()
                logger.debug("data check could not read a step of %s", m.name)
        findings.extend(checker.findings)
        if checker.loses_nothing:
            lose_nothing.add(m.name)
            still_empty[m.name] = list(dict.fromkeys(checker.counted))
    return Assessment(findings, lose_nothing, still_empty)
