"""Operation objects that a migration's `up`/`down` may hold beside plain SQL strings.

`RebuildTable` is SQLite's 12-step table rebuild in one transaction: it makes and fills the new table,
and `rebuild.swap` (which the online rebuild uses too) reads the table's dependents (indexes, triggers,
views and other tables' triggers that mention it, the AUTOINCREMENT high-water mark) from the live
database at run time, so objects made by hand survive too, and puts the new table in place.
The applier has already turned foreign keys off and opened the transaction.

A rebuild never turns a missing name into data: its copy expressions run with every double-quoted
name in backticks (which SQLite never reads as a string), after a check that the live table has every
column they name; and it compares the database's schema objects before and after, so a rebuild that
would lose one fails and rolls back.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tablemigrate.project.build import connect, owning_wrapper, unconnected_wrapper
from tablemigrate.sqlite.rebuild import kept_rowid, layout_on
from tablemigrate.sqlite.schema import affinity
from tablemigrate.sqlite.sqltext import quote

from . import progress
from .errors import MissingSource
from .sqlite import ddl, rebuild, sqltext

logger = logging.getLogger("tablemigrate")

#: Rows per chunk when a rebuild's copy is shown on a terminal (one statement otherwise).
PROGRESS_CHUNK = 50_000


class Operation:
    """Base class: something that applies itself to a connection inside an open transaction."""

    #: True for a check: it only reads, and raises when the database is not as the module needs it. The
    #: online rebuild (run/online.py) runs such a step in its first transaction and again at the swap.
    check_only = False

    def sql_preview(self) -> list[str]:
        """The SQL this operation will run, as far as it is known before run time."""
        raise NotImplementedError

    def apply(self, conn: sqlite3.Connection) -> None:
        raise NotImplementedError

    def deconstruct(self) -> tuple[list[Any], dict[str, Any]]:
        """The arguments that make this operation again: (positional, keyword).

        A module writes the operation as `ClassName(*positional, **keyword)` (writer.py), as Django's
        writer writes its operations from `deconstruct()`."""
        raise TypeError(f"{self!r} cannot be written into a module")

    def comment(self) -> str:
        """A few words the writer puts beside the operation ('' for none)."""
        return ""

    def replaced(self, **changes: Any) -> Operation:
        """The same operation again, with the arguments named in `changes` replaced.

        The one way an operation is copied or altered. It is made from `deconstruct()`, as a module makes
        it, so a copy keeps every argument the module would (a copy from a few attributes once lost
        `check=True`); an operation that cannot be written into a module cannot be copied (TypeError), nor
        can an argument its constructor does not take be changed."""
        args, kwargs = self.deconstruct()
        bound = inspect.signature(type(self)).bind(*args, **kwargs)
        unknown = set(changes) - set(inspect.signature(type(self)).parameters)
        if unknown:
            raise TypeError(f"{type(self).__name__} takes no argument {', '.join(sorted(unknown))}")
        bound.arguments.update(changes)
        return type(self)(*bound.args, **bound.kwargs)


class RebuildTable(Operation):
    """Rebuild `table` with the definition `create`, copying rows.

    `copy` maps each target column to an SQL expression over the current table. Target columns not in
    `copy` take their default (or NULL); generated columns are computed by SQLite.

    `fill` maps a new column to an unbound Django field: the copy gives each row the value Django gives
    existing rows (`FillColumn(..., per_row=True)`), computed for that row as the row is copied, by
    `FILL_FUNCTION` (a function of the connection, there for the rebuild only). A NOT NULL column in a
    unique constraint thus never holds a stand-in that its CHECK, or any other rule, could refuse.
    """

    #: The SQL function the copy calls, with the column's name, for each row of a column in `fill`.
    FILL_FUNCTION = "tablemigrate_fill_value"

    def __init__(self, table: str, create: str, copy: dict[str, str], *, fill: dict[str, Any] | None = None):
        self.table = table
        self.create = create
        self.fill = dict(fill or {})
        self.copy = {**copy, **{c: f"{self.FILL_FUNCTION}({sqltext.literal(c)})" for c in self.fill}}

    def __repr__(self) -> str:
        return f"RebuildTable({self.table!r})"

    def deconstruct(self) -> tuple[list[Any], dict[str, Any]]:
        copy = {c: e for c, e in self.copy.items() if c not in self.fill}
        return [self.table], {"create": self.create, "copy": copy, **({"fill": self.fill} if self.fill else {})}

    def fills(self) -> list[FillColumn]:
        """The columns the copy computes for each row, as the fills they replace."""
        return [FillColumn(self.table, c, f, per_row=True) for c, f in self.fill.items()]

    def _temp_name(self, conn: sqlite3.Connection | None = None) -> str:
        """`new__<table>`, or a numbered variant when a table of that name exists (never dropped)."""
        name, n = "new__" + self.table, 0
        while conn is not None and conn.execute(
                "SELECT 1 FROM sqlite_master WHERE lower(name) = lower(?)", (name,)).fetchone():
            n += 1
            name = f"new__{self.table}_{n}"
        return name

    def _copy_sql(self, target: str, where: str = "", whole_rows: bool = False, rowid: str | None = None,
                  as_written: bool = False) -> str:
        # OR ABORT overrides a conflict clause of the new table: `UNIQUE ON CONFLICT REPLACE` would delete
        # colliding rows (and the row count would not show it), `NOT NULL ON CONFLICT REPLACE` rewrite NULLs.
        if whole_rows:
            return f"INSERT OR ABORT INTO {quote(target)} SELECT * FROM {quote(self.table)}"
        cols, select = self.copy_lists(rowid, as_written)
        return f"INSERT OR ABORT INTO {quote(target)} ({cols}) SELECT {select} FROM {quote(self.table)}{where}"

    def copy_lists(self, rowid: str | None = None, as_written: bool = False) -> tuple[str, str]:
        """The copy's (target column list, select list).

        With `rowid` (the name of the hidden rowid in both tables, `kept_rowid`), each row's rowid comes
        first in both, so the row keeps it. `as_written`: the expressions as the module writes them (a
        preview), not as they run."""
        cols = ", ".join(quote(c) for c in self.copy)
        select = ", ".join(self.copy.values()) if as_written else self._select_list()
        return (f"{rowid}, {cols}", f"{rowid}, {select}") if rowid else (cols, select)

    def _select_list(self) -> str:
        """The copy expressions as they run: a name that is not there is an error, never a string
        (`"note"` naming a column the table no longer has would otherwise copy the text 'note')."""
        return ", ".join(sqltext.without_string_fallback(e) for e in self.copy.values())

    def check_sources(self, conn: sqlite3.Connection) -> None:
        """Check, before a single row is copied, that the live table has every name the copy uses.

        SQLite must resolve every name the copy expressions use against the live table. Raises
        MissingSource naming the columns it lacks."""
        if not self.copy:
            return
        try:
            conn.execute(f"SELECT {self._select_list()} FROM {quote(self.table)} LIMIT 0").fetchall()
        except sqlite3.OperationalError as exc:
            live = {r[1].lower() for r in conn.execute(f"PRAGMA table_xinfo({quote(self.table)})")}
            missing = sorted({n for e in self.copy.values() for n in sqltext.identifiers(e)
                              if n.lower() not in live and n.lower() != self.table.lower()})
            what = ", ".join(missing) if missing else str(exc)
            raise MissingSource(f"the copy into {self.table} reads {what}, which {self.table} does not have "
                                f"when this migration runs ({exc}); regenerate the migration") from None

    def _copies_whole_rows(self, conn: sqlite3.Connection | None, target: str | None) -> bool:
        """Whether the copy is every column, unchanged, into a table with the same columns in the same
        order, so `INSERT INTO new SELECT * FROM old` means the same rows as the explicit column list.
        That form lets SQLite use its transfer optimisation (the one VACUUM uses): it copies each record
        as stored instead of decoding and re-encoding it when the two definitions are compatible, and
        falls back to an ordinary insert when they are not. Tables with generated columns keep the list.

        Without a connection (the preview), only the migration's side is known."""
        names = list(self.copy)
        if any(expr != quote(name) for name, expr in self.copy.items()):
            return False
        if conn is None:
            return True
        declared = []
        for table in (self.table, target or self.table):
            columns = conn.execute(f"PRAGMA table_xinfo({quote(table)})").fetchall()
            if [c[1] for c in columns] != names or any(c[6] for c in columns):
                return False
            declared.append([c[2].upper() for c in columns])
        # The transfer takes two columns of one affinity as compatible, but a STRICT table checks the type
        # itself: `ANY` -> `BLOB` would carry an INT into a BLOB column that an INSERT refuses.
        return declared[0] == declared[1] or not _strict(conn, target or self.table)

    def _copy_rows(self, conn: sqlite3.Connection, tmp: str, total: int) -> int:
        """One INSERT ... SELECT; on a terminal, for a big rowid table, the same in rowid ranges so the
        display can count rows (same transaction, same rows: the caller checks the count)."""
        shown = progress.current()
        names = {r[1].lower() for r in conn.execute(f"PRAGMA table_xinfo({quote(self.table)})")}
        # A hidden rowid is copied by name, never left to SQLite: an INSERT numbers rows afresh, and so
        # does the transfer of `SELECT *` when the new table has no index (or SQLite falls back).
        rowid = kept_rowid(layout_on(conn, self.table), layout_on(conn, tmp))
        if not shown.enabled or total <= PROGRESS_CHUNK or names & {"rowid", "_rowid_", "oid"}:
            whole = rowid is None and self._copies_whole_rows(conn, tmp)
            return conn.execute(self._copy_sql(tmp, whole_rows=whole, rowid=rowid)).rowcount
        t = quote(self.table)
        try:
            start = conn.execute(f"SELECT min(rowid) FROM {t}").fetchone()[0]
        except sqlite3.OperationalError:  # WITHOUT ROWID
            return conn.execute(self._copy_sql(tmp)).rowcount
        # Chunks follow the rows (keyset), not the id range, so sparse rowids cost nothing extra.
        upper = f"SELECT max(rowid) FROM (SELECT rowid FROM {t} WHERE rowid >= ? ORDER BY rowid LIMIT {int(PROGRESS_CHUNK)})"
        following = f"SELECT min(rowid) FROM {t} WHERE rowid > ?"
        sql = self._copy_sql(tmp, " WHERE rowid >= ? AND rowid <= ?", rowid=rowid)
        copied = 0
        while start is not None:
            high = conn.execute(upper, (start,)).fetchone()[0]
            copied += conn.execute(sql, (start, high)).rowcount
            start = conn.execute(following, (high,)).fetchone()[0]
            shown.show(f"rebuilding {self.table}: {copied:,}/{total:,} rows copied")
        shown.clear()
        return copied

    def sql_preview(self) -> list[str]:
        tmp = self._temp_name()
        return [
            sqltext.pretty_create_table(self.create, tmp),
            *[f"-- {f.column}: {f.describe()}, stored as Django stores a {type(f.field).__name__}, computed "
              f"by {self.FILL_FUNCTION}({sqltext.literal(f.column)})" for f in self.fills()],
            *self._copy_preview(tmp),
            f"DROP TABLE {quote(self.table)}",
            f"ALTER TABLE {quote(tmp)} RENAME TO {quote(self.table)}",
            f"-- then: recreate the indexes, triggers and views of {quote(self.table)} found at run time, "
            "restore its sqlite_sequence value and check foreign keys",
        ]

    def _copy_preview(self, tmp: str) -> list[str]:
        new = rebuild.layout(self.create, self.table, connect)
        rowid = kept_rowid(new, new)
        if rowid:
            return [f"-- when {quote(self.table)} has no INTEGER PRIMARY KEY either, each row keeps its rowid "
                    "(else without it):", self._copy_sql(tmp, rowid=rowid, as_written=True)]
        if not self._copies_whole_rows(None, None):  # double-quoted as the module writes them (it runs them in
            return [self._copy_sql(tmp, as_written=True)]  # backticks: no name is ever taken as a string)
        return [f"-- when {quote(self.table)} has exactly these columns in this order (else the column list):",
                self._copy_sql(tmp, whole_rows=True)]

    def apply(self, conn: sqlite3.Connection) -> None:
        with self.filling(conn):
            self._apply(conn)

    @contextlib.contextmanager
    def filling(self, conn: sqlite3.Connection) -> Iterator[None]:
        """`FILL_FUNCTION` on `conn` while the copy runs (when `fill` names a column)."""
        if not self.fill:
            yield
            return
        each = {f.column.lower(): f.each_row(conn) for f in self.fills()}
        # not deterministic: SQLite calls it for every row
        conn.create_function(self.FILL_FUNCTION, 1, lambda column: each[str(column).lower()]())
        try:
            yield
        finally:
            conn.create_function(self.FILL_FUNCTION, 1, None)

    def _apply(self, conn: sqlite3.Connection) -> None:
        table, tmp = self.table, self._temp_name(conn)
        self.check_sources(conn)
        started, copied = time.perf_counter(), []

        def fill(rows: int) -> int:  # the copy, in this transaction
            conn.execute(sqltext.pretty_create_table(self.create, tmp))
            copied.append(self._copy_rows(conn, tmp, rows) if self.copy else 0)
            return copied[0]

        rebuild.swap(conn, table, tmp, fill)
        logger.debug("rebuilt table %s: %d rows copied (%.0f ms)", table, copied[0],
                     (time.perf_counter() - started) * 1000)


class AlterTableInPlace(RebuildTable):
    """Give `table` the definition `create` by rewriting its stored CREATE text, without a copy.

    For a change that moves no stored record: a declared type of the same affinity (`varchar(30)` →
    `varchar(60)`, integer → bigint), NOT NULL, a CHECK or a foreign key dropped or added. SQLite's
    procedure for such changes (lang_altertable.html, "making other kinds of table schema changes"):
    `writable_schema`, an UPDATE of `sqlite_schema`, a `schema_version` bump, in the migration's
    transaction. It takes milliseconds at any size, or one read of the table when the definition adds a
    rule: a NOT NULL or CHECK rule added is proved on every row with `PRAGMA quick_check(table)` (which
    checks exactly those, not the indexes), an added foreign key by the applier's `foreign_key_check`; a
    row that breaks one fails the migration. Whether a rule is added is read from the two definitions when
    it runs (NOT NULL and foreign keys as SQLite reports them, CHECKs from the text); `check=True` (what
    `generate` writes) forces the proof.

    At run time it checks what makes that safe, as SQLite reports it for the live definition and the new
    one on a scratch database with the live table's explicit indexes (`_reading`): the stored layout
    (columns in order, the rowid, the hidden indexes), each column's affinity (in a STRICT table its
    declared type), DEFAULT, collation and generated expression, STRICT, AUTOINCREMENT, and the keys of
    every explicit index. Where anything differs, or SQLite refuses (a connection in defensive mode does
    not write the schema), it runs the rebuild instead, with the same `copy`. After the rewrite, the live
    table's columns and every index's keys are compared with what the scratch copy reported (O(1))."""

    def __init__(self, table: str, create: str, copy: dict[str, str], *, check: bool = False,
                 fill: dict[str, Any] | None = None):
        super().__init__(table, create, copy, fill=fill)
        self.check = check  # prove the rows satisfy the definition (NOT NULL, CHECK), whatever it adds

    def __repr__(self) -> str:
        return f"AlterTableInPlace({self.table!r})"

    def deconstruct(self) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = super().deconstruct()
        return args, {**kwargs, "check": True} if self.check else kwargs

    def sql_preview(self) -> list[str]:
        return [f"-- {quote(self.table)} is given this definition in place (no row is copied; where SQLite "
                "refuses, it is rebuilt):", sqltext.pretty_create_table(self.create, self.table)]

    def apply(self, conn: sqlite3.Connection) -> None:
        self.moved_rows = not self._in_place(conn)
        if self.moved_rows:
            super().apply(conn)

    def kept_every_row_and_key(self) -> bool:
        """After `apply`: True when no row was copied and no rule was added.

        Then no foreign key can be broken that was not broken before (the applier's O(rows)
        `foreign_key_check` has nothing to find)."""
        return getattr(self, "moved_rows", True) is False and not getattr(self, "added_rules", True)

    def _in_place(self, conn: sqlite3.Connection) -> bool:
        row = conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'table' AND lower(name) = "
                           "lower(?)", (self.table,)).fetchone()
        if row is None:
            return False
        name, live = row
        text = sqltext.pretty_create_table(self.create, name)
        indexes = [sql for (sql,) in conn.execute(
            "SELECT sql FROM main.sqlite_master WHERE type = 'index' AND lower(tbl_name) = lower(?) "
            "AND sql IS NOT NULL ORDER BY rowid", (name,))]
        before, after = _reading(live, name, indexes), _reading(text, name, indexes)
        if before is None or after is None or before.stored != after.stored:
            return False  # the new text would read the stored records or an index differently
        self.added_rules = self.check or after.adds_rules_to(before)  # what the module says, or finds
        indexed = _index_infos(conn, name)
        if not rebuild.edit_schema(conn, [("table", name, name, text)]):
            return False  # defensive mode, an authorizer: SQLite does not allow it here
        # from here on a failure fails the migration, which rolls the edit back
        # O(1) proof that SQLite reads the live table as the scratch copy did: the same columns, and every
        # index (explicit and hidden) keyed exactly as before.
        if (_columns(conn, name) != after.columns or _index_infos(conn, name) != indexed):
            raise sqlite3.IntegrityError(f"{name} does not read as its new definition does on its own; "
                                         "nothing was changed")
        if self.added_rules:  # every row against the new NOT NULL and CHECK rules (foreign keys: the applier)
            found = conn.execute(f"PRAGMA main.quick_check({quote(name)})").fetchmany(4)
            if found != [("ok",)]:
                raise sqlite3.IntegrityError(f"rows of {name} do not satisfy its new definition: "
                                             + "; ".join(str(r[0]) for r in found[:3]))
        logger.debug("changed the definition of %s in place", name)
        return True


@dataclass(frozen=True)
class _Reading:
    """What SQLite makes of one definition of a table, with the live table's explicit indexes built on
    it (on a scratch database): `stored`, everything the stored records and index entries are read by,
    which must be the same on both sides of an in-place rewrite; and the rules rows must satisfy, which
    may differ (what is added is proved on the rows)."""

    stored: tuple
    columns: list[tuple]  # PRAGMA table_xinfo
    not_null: tuple[bool, ...]
    foreign_keys: frozenset[tuple]
    checks: frozenset

    def adds_rules_to(self, before: _Reading) -> bool:
        """Whether this definition has a NOT NULL, foreign key or CHECK that `before` does not have."""
        return (any(now and not then for now, then in zip(self.not_null, before.not_null))
                or not self.foreign_keys <= before.foreign_keys or not self.checks <= before.checks)


def _reading(create: str, name: str, indexes: list[str]) -> _Reading | None:
    """`create` and the CREATE INDEX texts `indexes` on a scratch database, as SQLite reports them: the
    stored layout (`rebuild.layout_on`); each column's affinity (SQLite's rules on its declared type; in a STRICT
    table the declared type itself), its DEFAULT as written (a record written before the column was added
    is short, and SQLite reads the missing value from the schema's DEFAULT), its collation (asked of
    SQLite through an index on every column: what comparisons, CHECKs, generated values and every index,
    partial and expression ones included, use) and its generated expression; STRICT and AUTOINCREMENT;
    and the keys of every explicit index. None when SQLite does not accept the text or an index on it."""
    q = quote(name)
    scratch = connect()
    try:
        scratch.execute(create)
        for sql in indexes:
            scratch.execute(sql)
        layout = layout_on(scratch, name)
        columns = _columns(scratch, name)
        explicit = _index_infos(scratch, name)
        probe = quote("tablemigrate collation probe " + name)
        scratch.execute(f"CREATE INDEX {probe} ON {q} ({', '.join(quote(c[1]) for c in columns)})")
        collations = tuple(r[4].lower() for r in scratch.execute(f"PRAGMA index_xinfo({probe})") if r[5])
        parsed = ddl.read_table(create)
        try:
            strict = bool(scratch.execute(f"SELECT strict FROM pragma_table_list({sqltext.literal(name)})")
                          .fetchone()[0])
        except sqlite3.OperationalError:  # SQLite before 3.37 has no STRICT tables to read
            strict = parsed.strict
        autoincrement = scratch.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone()
        types = tuple((c[2].upper() if strict else affinity(c[2]), c[4], c[6]) for c in columns)
        stored = (layout, types, collations, strict, autoincrement is not None,
                  sorted(parsed.generated.items()), explicit)
        keys: dict[int, list[tuple]] = {}
        for fk in scratch.execute(f"PRAGMA foreign_key_list({q})"):  # names in any case name the same
            keys.setdefault(fk[0], []).append((fk[2].lower(), fk[3].lower(), (fk[4] or "").lower(), *fk[5:]))
        return _Reading(stored, columns, tuple(bool(c[3]) for c in columns),
                        frozenset(tuple(rows) for rows in keys.values()), frozenset(parsed.checks))
    except (sqlite3.Error, ValueError, IndexError):  # SQLite refuses it, or the parser cannot read it
        return None
    finally:
        scratch.close()


def _strict(conn: sqlite3.Connection, name: str) -> bool:
    """Whether table `name` is STRICT (SQLite before 3.37 has no STRICT tables)."""
    try:
        row = conn.execute(f"SELECT strict FROM pragma_table_list({sqltext.literal(name)})").fetchone()
    except sqlite3.OperationalError:
        return False
    return bool(row and row[0])


def _columns(conn: sqlite3.Connection, name: str) -> list[tuple]:
    return conn.execute(f"PRAGMA main.table_xinfo({quote(name)})").fetchall()


def _index_infos(conn: sqlite3.Connection, name: str) -> list[tuple]:
    """Every index of table `name` (explicit and hidden) with its keys as SQLite reports them: columns,
    sort orders, collations."""
    return sorted((index.lower(), unique, origin, partial,
                   conn.execute(f"PRAGMA main.index_xinfo({quote(index)})").fetchall())
                  for _seq, index, unique, origin, partial in conn.execute(f"PRAGMA main.index_list({quote(name)})"))


class RunPython(Operation):
    """Call `function(db)` with the raw sqlite3 connection, inside the migration's transaction."""

    #: How the function is called, as `show` says it.
    called = "(db)"

    def __init__(self, function: Callable[..., Any]):  # (db); a subclass says how it calls it
        self.function = function

    def __repr__(self) -> str:
        return f"{type(self).__name__}({getattr(self.function, '__name__', self.function)!r})"

    def sql_preview(self) -> list[str]:
        name = getattr(self.function, "__qualname__", repr(self.function))
        return [f"-- Python: {name}{self.called}"]

    def apply(self, conn: sqlite3.Connection) -> None:
        self.function(conn)


class RunPythonWithModels(RunPython):
    """A data step as Django's `RunPython` runs its code: `code(apps, schema_editor)`.

    It runs inside the module's transaction, where `apps` are historical models of the project's models as the tables are at this
    point of the history (a field a later module adds is not there; tablemigrate.project.historical.
    models_as_tables) and `schema_editor` is Django's, on the Django connection of the database, whose
    writes (the models' managers, `save()`, `bulk_update()`) go into the module's transaction. The
    reverse is a second one in `down`; a module without `down` cannot be reverted. A Python step: never
    run by replays, so it must not change the schema. `generate --empty` writes a module with one."""

    called = "(apps, schema_editor), with the models as the tables are when it runs"

    def __init__(self, code: Callable[[Any, Any], Any]):
        super().__init__(code)

    def apply(self, conn: sqlite3.Connection) -> None:
        from .project import historical

        historical.run_function(conn, self.function)


class FillColumn(Operation):
    """Set `column` in every existing row of `table` to the value Django gives existing rows.

    Only where it IS NULL with `only_null`. The value is the one Django's AddField/AlterField gives:
    `field`'s effective default, computed when the migration runs (a callable default is called then,
    `auto_now`/`auto_now_add` take the time then) and converted for SQLite by Django's own code for that
    field type. Evaluated once per application, as Django's schema editor does, so every row gets the one
    value; with `per_row` (the planner sets it where the column is in a UNIQUE constraint, unique index or
    primary key, where one value for every row could only fail), evaluated anew for each row. Nothing to
    undo: `down` drops or rebuilds the column anyway.

    `field` is an unbound Django field (the module writes it as Django's migration serializer does, e.g.
    `models.DateTimeField(auto_now_add=True, null=True)`); constants never need this operation."""

    def __init__(self, table: str, column: str, field: Any, *, only_null: bool = False, per_row: bool = False):
        self.table = table
        self.column = column
        self.field = field
        self.only_null = only_null
        self.per_row = per_row

    def __repr__(self) -> str:
        return f"FillColumn({self.table!r}, {self.column!r})"

    def deconstruct(self) -> tuple[list[Any], dict[str, Any]]:
        keyword = {"only_null": True} if self.only_null else {}
        if self.per_row:
            keyword["per_row"] = True
        return [self.table, self.column, self.field], keyword

    def comment(self) -> str:
        return self.describe()

    def _update_sql(self, value: str) -> str:
        where = f" WHERE {quote(self.column)} IS NULL" if self.only_null else ""
        return f"UPDATE {quote(self.table)} SET {quote(self.column)} = {value}{where}"

    def describe(self) -> str:
        """What the value is, in words (summaries and previews)."""
        f = self.field
        kind = type(f).__name__
        if f.has_default() and callable(f.default):
            target = f.default
            name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
            each = " for each row" if self.per_row else ""
            return f"{kind} default {name}() called{each} when the migration runs"
        if f.has_default():
            return f"{kind} default {f.default!r}"
        flag = "auto_now_add" if getattr(f, "auto_now_add", False) else "auto_now"
        return f"{kind} {flag}: the time when the migration runs"

    def sql_preview(self) -> list[str]:
        return [f"-- {self.column}: {self.describe()}, stored as Django stores a {type(self.field).__name__}",
                self._update_sql("?")]

    def literal(self, conn: sqlite3.Connection) -> str:
        """The value as an SQL literal, by Django's schema editor.

        Computed by `effective_default` and `quote_value`, with the settings (time zone) of the Django
        connection that owns `conn` when there is one."""
        return self._literals(conn)()

    def _literals(self, conn: sqlite3.Connection) -> Callable[[], str]:
        """`literal`, computed anew at each call, by one schema editor."""
        # (a plain sqlite3 connection: Django's defaults for an SQLite database)
        wrapper = owning_wrapper(conn) or unconnected_wrapper()
        editor = wrapper.SchemaEditorClass(wrapper, collect_sql=True)
        if self.field.name is None:
            self.field.set_attributes_from_name(self.column)
        if self.field.is_relation and isinstance(self.field.remote_field.model, str):
            from django.apps import apps  # the related model as the project defines it now

            self.field.remote_field.model = apps.get_model(self.field.remote_field.model)
        return lambda: editor.quote_value(editor.effective_default(self.field))

    def apply(self, conn: sqlite3.Connection) -> None:
        where = f" WHERE {quote(self.column)} IS NULL" if self.only_null else ""
        if conn.execute(f"SELECT 1 FROM {quote(self.table)}{where} LIMIT 1").fetchone() is None:
            return  # no row to fill (database A, a new table): the default is not computed at all
        if not self.per_row:
            conn.execute(self._update_sql(self.literal(conn)))
            return
        # One UPDATE calling a function of this connection once per row it sets (any table: no rowid
        # needed).
        name = "tablemigrate_fill_value"
        conn.create_function(name, 0, self.each_row(conn))  # not deterministic: SQLite calls it for every row
        try:
            conn.execute(self._update_sql(f"{name}()"))
        finally:
            conn.create_function(name, 0, None)

    def each_row(self, conn: sqlite3.Connection) -> Callable[[], Any]:
        """A function that computes the value anew at each call, as SQLite stores it.

        What SQLite makes of the literal, so each row gets exactly what the one-value UPDATE would have
        stored; a function of `conn` gives it to each row (an UPDATE, or a rebuild's copy)."""
        literals = self._literals(conn)
        return lambda: conn.execute(f"SELECT {literals()}").fetchone()[0]


class DjangoDataStep(RunPython):
    """A data step of the project's own Django migrations, carried by `baseline`.

    Carried by tablemigrate.generate.datasteps: operation `operation` (its index in the migration's
    `operations`, 0-based; a list of indexes for one inside a `SeparateDatabaseAndState`'s
    `database_operations`) of Django migration `migration` of app `app_label`, as archived in `<migrations
    dir>/django/<app_label>/<migration>.py`, whose SHA-256 is `checksum`. Run as Django runs it:
    `RunPython` gets `(apps, schema_editor)` with the historical models of that migration; `reverse=True`
    runs its reverse (`down`). `what`: the operation in words, for people. A Python step: never run by
    replays."""

    def __init__(self, app_label: str, migration: str, operation: int | list[int], *, checksum: str,
                 reverse: bool = False, what: str = ""):
        self.app_label = app_label
        self.migration = migration
        self.operation = operation
        self.checksum = checksum
        self.reverse = reverse
        self.what = what

    @property
    def path(self) -> list[int]:
        return [self.operation] if isinstance(self.operation, int) else list(self.operation)

    def __repr__(self) -> str:
        where = ".".join(str(i + 1) for i in self.path)
        return (f"DjangoDataStep({self.app_label}.{self.migration} operation {where}"
                f"{', reverse' if self.reverse else ''})")

    def deconstruct(self) -> tuple[list[Any], dict[str, Any]]:
        keyword: dict[str, Any] = {"checksum": self.checksum}
        if self.reverse:
            keyword["reverse"] = True
        if self.what:
            keyword["what"] = self.what
        return [self.app_label, self.migration, self.operation], keyword

    def sql_preview(self) -> list[str]:
        return [f"-- Python: {self!r}{': ' + self.what if self.what else ''}"]

    def apply(self, conn: sqlite3.Connection) -> None:
        from .project import historical  # lazy: every reader of the history loads this; few run a data step

        historical.run(conn, self.app_label, self.migration, self.path, self.checksum, self.reverse)
