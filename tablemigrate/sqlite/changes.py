"""Typed per-table schema changes: what the diff finds, each knowing its reverse and its own words.

`diff.py` describes how a table changes as a tuple of these; `plan.py` only decides how SQLite makes
them (native `ALTER TABLE`, or the rebuild) and in which order; rename detection reads them (a dropped
and an added column of the same definition); a module's summary is their `describe()` lines. `down` is
planned from the reversed changes, so both directions come from one diff. Values in, values out.

Names inside a change are as the table spells them; a change of an altered table applies to the table
under its new name, its reverse to the table under its old name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from . import sqltext
from .schema import Check, Column, ForeignKey, Index, Table, Unique, affinity, stores_alike

Constraint = Union[Unique, Check, ForeignKey]


def display_type(declared: str) -> str:
    """A normalised declared type as people write it: `varchar(100)`, `decimal(10, 2)`."""
    return sqltext.compact_type(declared) or "(no type)"


@dataclass(frozen=True)
class Change:
    """One change to one table. Subclasses say what they are, undo and cost."""

    def reverse(self) -> Change:
        raise NotImplementedError

    def describe(self) -> str:
        """One summary line, or '' for a change that is part of another one (a column's own CHECK)."""
        raise NotImplementedError

    def destructive(self, table: str) -> list[str]:
        """What this change loses by itself, for the module's `destructive` list."""
        return []


@dataclass(frozen=True)
class CreateTable(Change):
    table: Table

    def reverse(self) -> DropTable:
        return DropTable(self.table)

    def describe(self) -> str:
        return f"create table {self.table.name}"


@dataclass(frozen=True)
class DropTable(Change):
    table: Table

    def reverse(self) -> CreateTable:
        return CreateTable(self.table)

    def describe(self) -> str:
        return f"drop table {self.table.name}"

    def destructive(self, table: str) -> list[str]:
        return [f"drops table {self.table.name} and all its rows"]


@dataclass(frozen=True)
class RenameTable(Change):
    old: str
    new: str

    def reverse(self) -> RenameTable:
        return RenameTable(self.new, self.old)

    def describe(self) -> str:
        return f"rename table {self.old} to {self.new}"


@dataclass(frozen=True)
class AddColumn(Change):
    column: Column

    def reverse(self) -> DropColumn:
        return DropColumn(self.column)

    def describe(self) -> str:
        return f"add column {self.column.name}"


@dataclass(frozen=True)
class DropColumn(Change):
    column: Column

    def reverse(self) -> AddColumn:
        return AddColumn(self.column)

    def describe(self) -> str:
        return f"drop column {self.column.name}"

    def destructive(self, table: str) -> list[str]:
        return [f"drops column {table}.{self.column.name} and the values in it"]


@dataclass(frozen=True)
class RenameColumn(Change):
    old: str
    new: str

    def reverse(self) -> RenameColumn:
        return RenameColumn(self.new, self.old)

    def describe(self) -> str:
        return f"rename column {self.old} to {self.new}"


@dataclass(frozen=True)
class AlterColumn(Change):
    """A column that stays (perhaps renamed) with another definition: `old` as it is, `new` as it becomes."""

    old: Column
    new: Column

    def reverse(self) -> AlterColumn:
        return AlterColumn(self.new, self.old)

    def describe(self) -> str:
        return f"alter column {self.new.name}: {self.difference()}"

    def difference(self) -> str:
        """What changed, in a few words (`varchar(100) → varchar(150), NOT NULL added`)."""
        old, new = self.old, self.new
        parts = []
        if old.type != new.type:
            parts.append(f"{display_type(old.type)} → {display_type(new.type)}")
        if old.notnull != new.notnull:
            parts.append("NOT NULL added" if new.notnull else "NOT NULL dropped")
        if old.default != new.default:
            parts.append(f"default {old.default or 'none'} → {new.default or 'none'}")
        if old.collation != new.collation:
            parts.append(f"collation {old.collation or 'none'} → {new.collation or 'none'}")
        if bool(old.pk) != bool(new.pk) or (old.pk and old.pk != new.pk):
            parts.append("primary key added" if new.pk and not old.pk else
                         "primary key dropped" if old.pk and not new.pk else "primary key order changed")
        if (old.generated, old.generated_kind) != (new.generated, new.generated_kind):
            parts.append(f"generated {old.generated_kind or 'no'} ({old.generated or '-'}) → "
                         f"{new.generated_kind or 'no'} ({new.generated or '-'})")
        return ", ".join(parts) or "definition"

    def destructive(self, table: str) -> list[str]:
        if stores_alike(self.old.type, self.new.type):  # a widening such as integer → decimal: no value changes
            return []
        if affinity(self.new.type) in ("INTEGER", "REAL", "NUMERIC"):
            return [f"changes the type of {table}.{self.new.name} from {self.old.type or 'none'} to "
                    f"{self.new.type}: values that do not convert are stored as they are or lose precision"]
        return []


@dataclass(frozen=True)
class AddIndex(Change):
    index: Index

    def reverse(self) -> DropIndex:
        return DropIndex(self.index)

    def describe(self) -> str:
        return f"add index {self.index.name}"


@dataclass(frozen=True)
class DropIndex(Change):
    index: Index

    def reverse(self) -> AddIndex:
        return AddIndex(self.index)

    def describe(self) -> str:
        return f"drop index {self.index.name}"


def _constraint_words(constraint: Constraint) -> str:
    if isinstance(constraint, ForeignKey):
        refs = f"({', '.join(constraint.ref_columns)})" if constraint.ref_columns else ""
        return f"foreign key ({', '.join(constraint.columns)}) → {constraint.ref_table}{refs}"
    named = f" {constraint.name}" if constraint.name else ""
    if isinstance(constraint, Unique):
        return f"unique{named} ({', '.join(constraint.columns)})"
    return f"check{named} ({constraint.expr})"


@dataclass(frozen=True)
class AddConstraint(Change):
    """A table's UNIQUE, CHECK or FOREIGN KEY constraint. `column`: the added column whose own definition
    carries it (a column-level CHECK or REFERENCES), so `ADD COLUMN` makes it with the column."""

    constraint: Constraint
    column: str | None = None

    def reverse(self) -> DropConstraint:
        return DropConstraint(self.constraint, self.column)

    def describe(self) -> str:
        return "" if self.column else f"add {_constraint_words(self.constraint)}"


@dataclass(frozen=True)
class DropConstraint(Change):
    """The reverse of AddConstraint; `column`: the dropped column whose definition carries it."""

    constraint: Constraint
    column: str | None = None

    def reverse(self) -> AddConstraint:
        return AddConstraint(self.constraint, self.column)

    def describe(self) -> str:
        return "" if self.column else f"drop {_constraint_words(self.constraint)}"


@dataclass(frozen=True)
class AlterTable(Change):
    """A fact of the table itself: its primary key, AUTOINCREMENT, STRICT or WITHOUT ROWID."""

    attribute: str  # 'primary key' | 'autoincrement' | 'strict' | 'without rowid'
    old: bool | tuple[str, ...]  # a tuple of column names for the primary key
    new: bool | tuple[str, ...]

    def reverse(self) -> AlterTable:
        return AlterTable(self.attribute, self.new, self.old)

    def describe(self) -> str:
        if isinstance(self.old, tuple) and isinstance(self.new, tuple):
            return f"primary key ({', '.join(self.old)}) → ({', '.join(self.new)})"
        return f"{self.attribute} {'added' if self.new else 'dropped'}"


def reverse_all(changes: tuple[Change, ...]) -> tuple[Change, ...]:
    """The changes that undo `changes`."""
    return tuple(c.reverse() for c in reversed(changes))


def summary(changes: tuple[Change, ...]) -> list[str]:
    return [line for line in (c.describe() for c in changes) if line]


def of_type(changes: tuple[Change, ...], kind: type) -> list:
    return [c for c in changes if isinstance(c, kind)]
