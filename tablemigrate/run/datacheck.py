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
  need no confirmation on this database (`Assessment.lose_nothing`). So does one whose steps on a live
  table with rows are counted to lose nothing there: a rebuild whose every value reaches the new table
  unchanged (no column dropped that holds a value, no copy or type that changes one: `integer` to
  `decimal` never does), a fill of NULLs where the column holds none. Those counts are made again in the
  migration's transaction before its first step (`Recheck`), as the empty tables are.

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
from tablemigrate.project.build import connect
from tablemigrate.sqlite import ddl, sqltext
from tablemigrate.sqlite.introspect import introspect_table, shadow_tables
from tablemigrate.sqlite.schema import Table, affinity, stores_alike
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


SAMPLES = 3  # values a finding shows


def _samples(conn: sqlite3.Connection, sql: str, change: bool = False) -> str:
    """' (for example: ...)': the first SAMPLES rows of `sql`: one value, a row, or (`change`: rows of
    two columns) old -> new."""
    try:
        rows = conn.execute(f"SELECT * FROM ({sql}) LIMIT {SAMPLES}").fetchall()
    except sqlite3.Error:  # a sample is a help, never a reason to fail the check
        return ""
    shown = [" -> ".join(map(_shown, r)) if change else _shown(r[0]) if len(r) == 1
             else "(" + ", ".join(map(_shown, r)) + ")" for r in rows]
    return f" (for example: {', '.join(shown)})" if shown else ""


def _shown(value: object) -> str:
    text = "NULL" if value is None else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Recheck:
    """What the data check counted as zero on a live table, counted again in the migration's transaction
    (the write lock held) before its first step: rows of `table` where `where` holds (any row when None),
    or values of `column` that type `new_type` would store differently. Any found: the migration is
    refused (preflight.StillEmpty), the application wrote them since the check."""

    table: str
    where: str | None = None
    column: str | None = None
    new_type: str | None = None
    strict: bool = False

    def found(self, conn: sqlite3.Connection) -> bool:
        if self.column is not None and self.new_type is not None:
            return bool(_converted(conn, quote(self.table), self.column, self.new_type, self.strict)[0])
        where = f" WHERE {self.where}" if self.where else ""
        return bool(_count(conn, f"SELECT EXISTS (SELECT 1 FROM {quote(self.table)}{where})"))


_PROBE = "temp.tablemigrate_probe"


def _converted(conn: sqlite3.Connection, source: str, column: str, new_type: str,
               strict: bool) -> tuple[int, int, str]:
    """(values read back differently, values a STRICT table rejects, samples of the first) when the
    values of `column` in `source` are stored as `new_type`: SQLite's own conversion on a TEMP table."""
    conn.execute(f"DROP TABLE IF EXISTS {_PROBE}")
    conn.execute(f"CREATE TABLE {_PROBE} (original, converted {new_type})")
    try:
        conn.execute(f"INSERT INTO {_PROBE} SELECT {quote(column)}, {quote(column)} FROM {source} "
                     f"WHERE {quote(column)} IS NOT NULL")
        # A STRICT table applies the same conversion, then rejects what is still the wrong type.
        allowed = _STRICT_TYPES.get(new_type.upper()) if strict else None
        rejected = 0
        if allowed:
            marks = ", ".join("?" * len(allowed))
            rejected = _count(conn, f"SELECT count(*) FROM {_PROBE} WHERE typeof(converted) NOT IN ({marks})", allowed)
        changed = f"FROM {_PROBE} WHERE typeof(converted) != typeof(original) AND CAST(converted AS TEXT) " \
                  "IS NOT CAST(original AS TEXT)"
        n = _count(conn, f"SELECT count(*) {changed}")
        return n, rejected, _samples(conn, f"SELECT original, converted {changed}", change=True) if n else ""
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {_PROBE}")


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
    mem = connect()
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
        # ... and the counts of zero on live tables with rows that made a step lose nothing (Recheck).
        self.proved: list[Recheck] = []
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

    def counted_live(self, table: str) -> _Source | None:
        """The live table `table`, when what a step does to its rows can be counted now and counted again
        when the migration starts: under its own name and columns, its rows written by no earlier step."""
        if self._rows_changed(table):
            return None
        src = self.source(table)
        return src if src is not None and src.sql == quote(table) else None

    def rebuild(self, step: RebuildTable) -> None:
        """A rebuild copies every row or fails: it loses only the values the counts find (a column not
        copied, a copy expression or type that changes a value). Counted as none on a live table (not
        only an empty one), it loses nothing: those counts are made again when it runs (Recheck)."""
        conn, table = self.conn, step.table
        counted = self.counted_live(table)
        src = self.source(table)
        if src is None:
            self.may_lose([table])
            return
        rows = _count(conn, f"SELECT count(*) FROM {src.sql}")
        if rows == 0:
            self.may_lose([table])  # empty: proved empty again when it runs
            return
        target = _target_table(step.create, table)
        # Run as RebuildTable runs them: a double-quoted name that is not there is an error, not text.
        # A column the copy fills per row (`fill`) takes values Python computes as the row is copied:
        # not known here, so not evaluated; its NOT NULL, UNIQUE and CHECK rules hold them when it runs
        # (a value they refuse fails the migration, which is rolled back: nothing is lost).
        filled = {c.lower() for c in step.fill}
        exprs = {c: e for c, e in step.copy.items() if c.lower() not in filled}
        if filled:
            logger.debug("data check: %s.%s computed per row when the rebuild runs, checked then", table,
                         ", ".join(sorted(step.fill)))
        copy = {c.lower(): (c, sqltext.without_string_fallback(e)) for c, e in exprs.items()}
        found = len(self.findings)
        if not self._rows_changed(table):  # a violation refuses outright: only on rows known for sure
            self._violations(table, src, rows, target, copy, filled)
        rechecks = self._losses(table, src, copy, target, {c.lower(): e for c, e in exprs.items()})
        if counted is None or len(self.findings) > found:
            self.may_lose([table])
        else:
            self.proved += rechecks

    def _violations(self, table: str, src: _Source, rows: int, target: Table,
                    copy: dict[str, tuple[str, str]], filled: set[str]) -> None:
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
                                          "which becomes NOT NULL" + self._row_samples(
                                              src, f"({copy[col.name.lower()][1]}) IS NULL"))
        for key, col in target.columns.items():
            if key not in copy and key not in filled and not col.generated and col.notnull and col.default is None \
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
                self.add("violation", f"{_rows(n)} of {table} would fail CHECK ({check.expr})"
                         + _samples(conn, f"SELECT * FROM ({new_rows}) WHERE NOT ({check.expr})"))

    def _losses(self, table: str, src: _Source, copy: dict[str, tuple[str, str]], target: Table,
                shown: dict[str, str]) -> list[Recheck]:
        """Every live column must reach the new table unchanged; anything else is a possible loss,
        counted: a same-named column whose expression is not the column itself (a constant, a fill, a
        conversion: rows whose value would differ), and a column no expression copies as it is. Returns
        each count as a Recheck (meaningful where `src` is the live table itself)."""
        verbatim = {sqltext.normalize(e): k for k, (_c, e) in copy.items()}
        rechecks = []
        for key, (name, ctype) in src.columns.items():
            exact = verbatim.get(sqltext.normalize(quote(name)))
            if key in copy and exact != key:
                expr = copy[key][1]
                # Exactly: not under the column's collation or affinity, which would take 'Alice' for
                # lower('Alice') (NOCASE) or '007' for CAST('007' AS INTEGER).
                where = (f"NOT ((({expr}) COLLATE BINARY) IS ({quote(name)} COLLATE BINARY) "
                         f"AND typeof({expr}) = typeof({quote(name)}))")
                n = _count(self.conn, f"SELECT count(*) FROM {src.sql} WHERE {where}")
                if n:
                    samples = _samples(self.conn, f"SELECT {quote(name)}, ({expr}) FROM {src.sql} WHERE {where}",
                                       change=True)
                    self.add("loss", f"{_rows(n, 'value')} of {table}.{name} would change to {shown[key]}"
                                     + samples + self._estimate(table))
                rechecks.append(Recheck(table, where))
            elif exact is None:
                where = f"{quote(name)} IS NOT NULL"
                n = _count(self.conn, f"SELECT count(*) FROM {src.sql} WHERE {where}")
                if n:
                    samples = _samples(self.conn, f"SELECT {quote(name)} FROM {src.sql} WHERE {where}")
                    self.add("loss", f"{_rows(n, 'value')} in {table}.{name} would be dropped (column not copied)"
                                     + samples + self._estimate(table))
                rechecks.append(Recheck(table, where))
            if exact is not None and exact in target.columns:
                recheck = self._type_change(table, src, name, ctype, target.columns[exact].type, target.strict)
                rechecks += [recheck] if recheck else []
        return rechecks

    def fill(self, step: FillColumn) -> None:
        """A column set to its default in every row (or every NULL): values it holds now are replaced.
        Only its own table's rows change; later steps are still checked against everything else. A fill
        of the NULLs of a live column that holds none (counted now, and again when it runs) changes no row."""
        key = step.column.lower()
        counted = self.counted_live(step.table)
        if step.only_null and counted is not None and key in counted.columns:
            name = counted.columns[key][0]
            where = f"{quote(name)} IS NULL"
            n = _count(self.conn, f"SELECT count(*) FROM {counted.sql} WHERE {where}")
            if not n:
                self.proved.append(Recheck(step.table, where))
                return
            self.add("loss", f"{_rows(n)} of {step.table} {'holds' if n == 1 else 'hold'} NULL in {name}, which becomes "
                             f"{step.describe()}"
                             + self._row_samples(counted, where))
        self.may_lose([step.table])
        src = self.source(step.table)
        if src is not None and key in src.columns and not step.only_null:
            name = src.columns[key][0]
            where = f"{quote(name)} IS NOT NULL"
            n = _count(self.conn, f"SELECT count(*) FROM {src.sql} WHERE {where}")
            if n:
                self.add("loss", f"{_rows(n, 'value')} in {step.table}.{name} would be replaced by {step.describe()}"
                                 + _samples(self.conn, f"SELECT {quote(name)} FROM {src.sql} WHERE {where}")
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
            samples = _samples(self.conn, f"SELECT {cols} FROM {source} WHERE {' AND '.join(conditions)} "
                                          f"GROUP BY {cols} HAVING count(*) > 1")
            self.add("violation", f"{_rows(n, 'duplicated value')} in {what}{samples}")

    def _row_samples(self, src: _Source, where: str) -> str:
        """' (for example rowid 3, 7)': the rows of `src` where `where` holds, by rowid (a view of renamed
        columns, or a WITHOUT ROWID table, has none: no sample)."""
        if src.sql != quote(sqltext.unquote(src.sql)):
            return ""
        found = _samples(self.conn, f"SELECT rowid FROM {src.sql} WHERE {where}")
        return found.replace("for example: ", "for example rowid ")

    def _type_change(self, table: str, src: _Source, column: str, old_type: str, new_type: str,
                     strict: bool) -> Recheck | None:
        """Stored values that SQLite's type affinity would convert (e.g. '007' -> 7) or that a STRICT
        table would reject: probed by SQLite itself on a TEMP table, never on the database. A type that
        stores every value alike (`stores_alike`: integer -> decimal) converts none. Returns what to count
        again when the migration runs (None when nothing can convert)."""
        if stores_alike(old_type, new_type) and not strict:
            return None
        n, rejected, samples = _converted(self.conn, src.sql, column, new_type, strict)
        if rejected:
            self.add("violation", f"{_rows(rejected, 'value')} in {table}.{column} cannot be stored as "
                                  f"{new_type} in a STRICT table")
        if n:
            self.add("loss", f"{_rows(n, 'value')} in {table}.{column} would be converted to {new_type} "
                             f"and read back differently{samples}")
        return Recheck(table, column=column, new_type=new_type, strict=strict)

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
                self.add("loss", f"dropping {table} deletes {rows}{copied}"
                                 + (self._estimate(table) if n else ""))
        for table, column in effects.dropped_columns:
            src = self.source(table)
            if src is None or column.lower() not in src.columns:
                continue
            where = f"{quote(column)} IS NOT NULL"
            n = _count(self.conn, f"SELECT count(*) FROM {src.sql} WHERE {where}")
            if n:
                self.add("loss", f"{_rows(n, 'value')} in {table}.{column} would be dropped"
                                 + _samples(self.conn, f"SELECT {quote(column)} FROM {src.sql} WHERE {where}")
                                 + self._estimate(table))
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
    # ... and the counts of zero on live tables with rows that must still be zero then
    still_lossless: dict[str, list[Recheck]] = field(default_factory=dict)


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
    still_lossless: dict[str, list[Recheck]] = {}
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
            still_lossless[m.name] = list(dict.fromkeys(checker.proved))
    return Assessment(findings, lose_nothing, still_empty, still_lossless)
