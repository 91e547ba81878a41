"""CREATE TABLE and CREATE INDEX statements read and edited by their tokens.

This module is the one reader of their clauses. `sqltext` knows how SQL text is shaped (tokens,
parentheses, the parts of `CREATE TABLE name (body)`); this module knows what the clauses mean: a
table's columns and constraints (`read_table`), an index's name, table, key terms and WHERE
(`read_index`), the table a statement makes or indexes (`statement_table`), and the edits the rebuilds
make to such texts (`rename_index`, `without_foreign_keys`). Introspection, the data check, `schema.sql`
and the online rebuild all read through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import sqltext
from .schema import Check, Unique
from .sqltext import Token, quote

COLUMN_CONSTRAINT_WORDS = frozenset({
    "constraint", "primary", "not", "null", "unique", "check", "default", "collate",
    "references", "generated", "as",
})


def same_name(a: str, b: str) -> bool:
    """SQLite's comparison of identifiers: case-insensitive for ASCII letters only."""
    return a.encode().lower() == b.encode().lower()


def is_name(token: Token) -> bool:
    return token.kind in ("word", "ident", "string")


# --- CREATE TABLE ------------------------------------------------------------------------------------------

@dataclass
class TableText:
    """What a CREATE TABLE text says that no PRAGMA reports: columns' collations, generated expressions
    and definitions as written (lower-case keys), UNIQUE and CHECK constraints, whether each foreign key
    (by its lower-case columns) is DEFERRABLE INITIALLY DEFERRED and which are written on their column,
    AUTOINCREMENT, STRICT, WITHOUT ROWID."""

    collations: dict[str, str] = field(default_factory=dict)
    generated: dict[str, str] = field(default_factory=dict)
    definitions: dict[str, str] = field(default_factory=dict)
    uniques: set[Unique] = field(default_factory=set)
    checks: set[Check] = field(default_factory=set)
    deferred_fks: dict[tuple[str, ...], bool] = field(default_factory=dict)
    inline_fks: set[tuple[str, ...]] = field(default_factory=set)
    autoincrement: bool = False
    strict: bool = False
    without_rowid: bool = False


def _paren_items(tokens: list[Token], open_index: int) -> tuple[tuple[str, ...], int]:
    """Normalised comma-separated items inside the parentheses opening at open_index."""
    close = sqltext.matching_paren(tokens, open_index)
    items = tuple(sqltext.normalize(part) for part in sqltext.split_top_level(tokens[open_index + 1:close]))
    return items, close


def _fk_deferred(tokens: list[Token]) -> bool:
    words = [t.keyword() for t in tokens]
    for i, w in enumerate(words):
        if w == "deferrable" and (i == 0 or words[i - 1] != "not"):
            return words[i + 1:i + 3] == ["initially", "deferred"]
    return False


def _read_column(part: list[Token], sql: str, parsed: TableText) -> None:
    name = part[0].name()
    key = name.lower()
    parsed.definitions[key] = sqltext.source_text(sql, part)
    i = 1
    while i < len(part) and part[i].keyword() not in COLUMN_CONSTRAINT_WORDS:
        i += 1  # declared type
    constraint_name: str | None = None
    while i < len(part):
        word = part[i].keyword()
        if word == "constraint":
            constraint_name = part[i + 1].name()
            i += 2
            continue
        if word == "primary":
            j = i + 2
            while j < len(part) and part[j].keyword() not in COLUMN_CONSTRAINT_WORDS:
                if part[j].keyword() == "autoincrement":
                    parsed.autoincrement = True
                j += 1
            i = j
        elif word == "unique":
            parsed.uniques.add(Unique((sqltext.normalize([part[0]]),), constraint_name))
            i += 1
        elif word == "check":
            close = sqltext.matching_paren(part, i + 1)
            expr = sqltext.normalize(part[i + 2:close])
            parsed.checks.add(Check(expr, constraint_name, column=key))
            i = close + 1
        elif word == "collate":
            parsed.collations[key] = part[i + 1].name().lower()
            i += 2
        elif word in ("generated", "as"):
            while part[i].text != "(":
                i += 1
            close = sqltext.matching_paren(part, i)
            parsed.generated[key] = sqltext.normalize(part[i + 1:close])
            i = close + 1
        elif word == "references":
            j = i + 1
            while j < len(part) and part[j].keyword() not in COLUMN_CONSTRAINT_WORDS - {"not"}:
                j += 1
            parsed.deferred_fks[(key,)] = _fk_deferred(part[i:j])
            parsed.inline_fks.add((key,))
            i = j
        elif word == "default" and i + 1 < len(part) and part[i + 1].text == "(":
            i = sqltext.matching_paren(part, i + 1) + 1
        else:
            i += 1
        if word not in ("constraint",):
            constraint_name = None


def _read_table_constraint(part: list[Token], parsed: TableText) -> None:
    name: str | None = None
    i = 0
    if part[0].keyword() == "constraint":
        name = part[1].name()
        i = 2
    word = part[i].keyword()
    if word == "unique":
        cols, _ = _paren_items(part, i + 1)
        parsed.uniques.add(Unique(cols, name))
    elif word == "check":
        close = sqltext.matching_paren(part, i + 1)
        parsed.checks.add(Check(sqltext.normalize(part[i + 2:close]), name))
    elif word == "foreign":
        cols, close = _paren_items(part, i + 2)
        key = tuple(sqltext.unquote(c).lower() for c in cols)
        parsed.deferred_fks[key] = _fk_deferred(part[close + 1:])
    elif word == "primary":
        parsed.autoincrement = parsed.autoincrement or any(t.keyword() == "autoincrement" for t in part)


def is_table_constraint(part: list[Token]) -> bool:
    """Whether one top-level part of a CREATE TABLE body is a table constraint (else a column)."""
    return part[0].keyword() in ("constraint", "primary", "unique", "check", "foreign")


def read_table(sql: str) -> TableText:
    """Read a CREATE TABLE text (ValueError, IndexError: not one this reader understands)."""
    parsed = TableText()
    _, body, options, _ = sqltext.create_statement_parts(sql)
    for part in sqltext.split_top_level(body):
        if is_table_constraint(part):
            _read_table_constraint(part, parsed)
        else:
            _read_column(part, sql, parsed)
    words = [t.keyword() for t in options]
    parsed.strict = "strict" in words
    parsed.without_rowid = "rowid" in words
    return parsed


def references_end(part: list[Token], at: int) -> int:
    """The index just past a REFERENCES clause that starts at `at` (SQLite's foreign-key-clause): the
    table, its columns, then ON DELETE|UPDATE actions, MATCH name, [NOT] DEFERRABLE [INITIALLY ...]."""
    words = [t.keyword() for t in part]

    def word(i: int) -> str:
        return words[i] if i < len(words) else ""

    i = at + 2  # REFERENCES name
    if i < len(part) and part[i].text == "(":
        i = sqltext.matching_paren(part, i) + 1
    while True:
        if word(i) == "on" and word(i + 1) in ("delete", "update"):
            i += 2
            i += 2 if word(i) in ("set", "no") else 1  # SET NULL | SET DEFAULT | NO ACTION | CASCADE | RESTRICT
        elif word(i) == "match":
            i += 2
        elif word(i) == "deferrable" or (word(i) == "not" and word(i + 1) == "deferrable"):
            i += 1 if word(i) == "deferrable" else 2
            if word(i) == "initially":
                i += 2
        else:
            return i


def without_foreign_keys(create: str) -> str:
    """`create` without its foreign keys (a column's REFERENCES clause with its CONSTRAINT name, a table's
    FOREIGN KEY constraint), its other tokens joined by single spaces. ValueError when it is not a
    CREATE TABLE ... ( ... ) text. Whether SQLite reads what is left as the same table otherwise is the
    caller's to prove."""
    _head, body, _options, _index = sqltext.create_statement_parts(create)
    tokens = sqltext.tokenize(create)
    cut: set[int] = set()  # token positions (by offset) to leave out
    at = {t.pos: i for i, t in enumerate(tokens)}
    for part in sqltext.split_top_level(body):
        words = [t.keyword() for t in part]
        named = 2 if words[:1] == ["constraint"] else 0
        if words[named:named + 1] == ["foreign"]:
            cut.update(t.pos for t in part)
            cut.add(tokens[at[part[0].pos] - 1].pos)  # the comma before it (a table constraint is never first)
            continue
        for i, word in enumerate(words):
            if word != "references":
                continue
            start = i - 2 if i >= 2 and words[i - 2] == "constraint" else i
            cut.update(t.pos for t in part[start:references_end(part, i)])
    return " ".join(t.text for t in tokens if t.pos not in cut)


# --- CREATE INDEX ------------------------------------------------------------------------------------------

@dataclass
class IndexText:
    """A `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [schema.]name ON table (terms) [WHERE ...]` text, by its
    tokens: `name_at`/`table_at` are the positions of the (last part of the) names; `terms` the key terms
    as written, an ASC/DESC after each left out (None when the text has no readable list of them);
    `where` the partial index's condition (a closing `;` left out)."""

    sql: str
    tokens: list[Token]
    unique: bool
    if_not_exists: bool
    name_at: int
    name_qualified: bool
    table_at: int
    table_qualified: bool
    terms: list[list[Token]] | None
    where: list[Token]

    @property
    def name(self) -> str:
        return self.tokens[self.name_at].name()

    @property
    def table(self) -> str:
        return self.tokens[self.table_at].name()

    @property
    def plain(self) -> bool:
        """Neither name is schema-qualified: the text can be moved to another index and table."""
        return not self.name_qualified and not self.table_qualified

    def term_texts(self) -> list[str] | None:
        """The key terms as written (spacing and comments inside kept)."""
        return None if self.terms is None else [sqltext.source_text(self.sql, t) for t in self.terms]

    def qualifiers(self) -> list[tuple[int, int]]:
        """(first, last) token positions of each qualifier of a column: `t.` of `t.x`, `main.t.` of
        `main.t.x`, in any of SQLite's four quotings ("t", [t], `t`, 't') and any case. SQLite allows them
        only in a partial index's WHERE (never in an indexed expression), where the only table is the
        indexed one; a qualifier naming another table is not one of these (SQLite would have refused the
        index)."""
        tokens, found = self.tokens, []
        for i in range(self.table_at + 1, len(tokens) - 2):
            if not (is_name(tokens[i]) and tokens[i + 1].text == "." and is_name(tokens[i + 2])):
                continue
            if i + 3 < len(tokens) and tokens[i + 3].text == ".":
                continue  # `main` of `main.t.x`: its table comes next
            if not same_name(tokens[i].name(), self.table):
                continue
            first = i - 2 if i >= 2 and tokens[i - 1].text == "." and is_name(tokens[i - 2]) else i
            found.append((first, i + 1))
        return found


def _name_end(tokens: list[Token], i: int) -> tuple[int, bool] | None:
    """The position of the last part of the (maybe schema-qualified) name at `i`, and whether it is
    qualified."""
    if i >= len(tokens):
        return None
    if i + 2 < len(tokens) and tokens[i + 1].text == ".":
        return i + 2, True
    return i, False


def read_index(sql: str) -> IndexText | None:
    """Read a CREATE INDEX text; None for any other statement, or one this reader does not understand
    (ValueError: text the tokenizer cannot read)."""
    tokens = sqltext.tokenize(sql)
    words = [t.keyword() for t in tokens[:3]]
    if words[:2] == ["create", "index"]:
        i, unique = 2, False
    elif words == ["create", "unique", "index"]:
        i, unique = 3, True
    else:
        return None
    if_not_exists = False
    while i < len(tokens) and tokens[i].keyword() in ("if", "not", "exists"):
        if_not_exists = True
        i += 1
    name = _name_end(tokens, i)
    if name is None or name[0] + 1 >= len(tokens) or tokens[name[0] + 1].keyword() != "on":
        return None
    table = _name_end(tokens, name[0] + 2)
    if table is None:
        return None
    terms: list[list[Token]] | None = None
    where: list[Token] = []
    open_at = table[0] + 1
    if open_at < len(tokens) and tokens[open_at].text == "(":
        try:
            close = sqltext.matching_paren(tokens, open_at)
        except ValueError:
            close = None
        if close is not None:
            terms = []
            for term in sqltext.split_top_level(tokens[open_at + 1:close]):
                if term and term[-1].keyword() in ("asc", "desc"):
                    term = term[:-1]
                if not term:
                    terms = None
                    break
                terms.append(term)
            rest = tokens[close + 1:]
            if rest and rest[-1].text == ";":
                rest = rest[:-1]
            if rest and rest[0].keyword() == "where":
                where = rest[1:]
    return IndexText(sql, tokens, unique, if_not_exists, name[0], name[1], table[0], table[1], terms, where)


def rename_index(sql: str, name: str, table: str, *, qualified: bool = False) -> str:
    """`sql` (a CREATE INDEX whose names are not schema-qualified; else ValueError) naming the index
    `name` on `table`, by tokens: the index's name and its table's are replaced, and the qualifiers of
    the columns in a partial index's WHERE (`t.x`) are left out (`x`: the same column, as the indexed
    table is the only one there), which would otherwise still name the old table; `qualified`: they are
    kept, for a text whose table keeps its name."""
    index = read_index(sql)
    if index is None or not index.plain:
        raise ValueError(f"not a CREATE INDEX statement this reader can rename: {sql[:60]!r}")
    tokens = index.tokens
    edits = [(tokens[at].pos, tokens[at].pos + len(tokens[at].text), quote(new))
             for at, new in ((index.name_at, name), (index.table_at, table))]
    if not qualified:
        edits += [(tokens[first].pos, tokens[last].pos + 1, "") for first, last in index.qualifiers()]
    out, at = [], 0
    for start, end, text in sorted(edits):
        out += [sql[at:start], text]
        at = end
    return "".join(out) + sql[at:]


# --- either ------------------------------------------------------------------------------------------------

def statement_table(statement: str) -> str | None:
    """The table one of Django's DDL statements creates or indexes (`CREATE TABLE t`, `CREATE [UNIQUE]
    INDEX i ON t`), read with the tokenizer; None for any other statement."""
    try:
        tokens = sqltext.tokenize(statement)
    except ValueError:
        return None
    if [t.keyword() for t in tokens[:2]] == ["create", "table"]:
        try:
            _head, _body, _options, at = sqltext.create_statement_parts(statement)
        except (ValueError, IndexError):
            return None
        return tokens[at].name()
    index = read_index(statement)  # (the same text: tokenized above)
    if index is None or index.table_qualified:
        return None
    return index.table
