"""SQLite SQL at the token level: tokenizing, normalising for comparison, quoting, splitting.

One place knows how SQLite text is shaped. Everything that compares SQL (introspection, the diff) or
edits it (renaming a table inside a CREATE statement) goes through these functions, so whitespace,
comments, quoting style and identifier case never count as a difference.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import sys
from pathlib import Path

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|$))
  | (?P<blob>[xX]'[0-9a-fA-F]*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<ident>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[^\W\d]\w*(?:\$\w*)*)
  | (?P<param>[?][0-9]*|[:@$][^\W\d]\w*)
  | (?P<op>\|\||<<|>>|<=|>=|==|!=|<>|->>|->|[-+*/%&|~<>=(),.;])
    """,
    re.VERBOSE | re.DOTALL,
)

_BARE_IDENT = re.compile(r"[a-z_][a-z0-9_]*\Z")


class Token:
    """One token: `kind` (ws, comment, blob, string, ident (quoted), number, word, param, op), its `text`,
    and `pos`, its offset in the source text, which equality leaves out. Read-only by convention: a
    plain class with slots, because a frozen dataclass's construction was most of the time a 200-table
    schema took to tokenize."""

    __slots__ = ("kind", "text", "pos")

    def __init__(self, kind: str, text: str, pos: int = -1):
        self.kind = kind
        self.text = text
        self.pos = pos

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and self.kind == other.kind and self.text == other.text

    def __hash__(self) -> int:
        return hash((self.kind, self.text))

    def __repr__(self) -> str:
        return f"Token(kind={self.kind!r}, text={self.text!r}, pos={self.pos!r})"

    def keyword(self) -> str:
        """Lower-cased text of a bare word, '' for anything else."""
        return self.text.lower() if self.kind == "word" else ""

    def name(self) -> str:
        """The identifier this token spells (quotes removed), case kept."""
        return unquote(self.text) if self.kind in ("ident", "word", "string") else self.text


def tokenize(sql: str, *, keep_space: bool = False) -> list[Token]:
    """Split SQL into tokens. Unknown characters raise ValueError (never silently dropped)."""
    return list(_tokenize(sql, keep_space))


@functools.lru_cache(maxsize=8192)
def _tokenize(sql: str, keep_space: bool) -> tuple[Token, ...]:
    # The same CREATE texts are read many times by one `generate` (databases A and B, the proof).
    tokens: list[Token] = []
    pos = 0
    for m in _TOKEN_RE.finditer(sql):
        if m.start() != pos:
            raise ValueError(f"cannot tokenize SQL at offset {pos}: {sql[pos:pos + 20]!r}")
        kind = m.lastgroup or "op"
        if keep_space or (kind != "ws" and kind != "comment"):
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    if pos != len(sql):
        raise ValueError(f"cannot tokenize SQL at offset {pos}: {sql[pos:pos + 20]!r}")
    return tuple(tokens)


def user_objects(column: str = "name") -> str:
    """SQL condition: `column` names a user object, not one of SQLite's own. SQLite reserves exactly the
    prefix `sqlite_` (any case); `LIKE 'sqlite_%'` would also match `SQLiteCache` or `sqliteuniq_email`,
    because `_` is LIKE's single-character wildcard."""
    return f"lower(substr({column}, 1, 7)) <> 'sqlite_'"


def clear_authorizer(conn: sqlite3.Connection) -> None:
    """Remove `conn`'s authorizer. Python 3.10 accepts `set_authorizer(None)` but then denies every
    statement ("not authorized"): there the authorizer allows everything instead."""
    if sys.version_info >= (3, 11):
        conn.set_authorizer(None)
    else:
        conn.set_authorizer(lambda *_args: sqlite3.SQLITE_OK)


def readonly_uri(path: str | os.PathLike[str]) -> str:
    """An SQLite URI opening the file at `path` read-only. The path is percent-encoded (`#`, `?`, `%` and
    spaces in a directory name would otherwise end the path or start the query: a different file)."""
    return Path(os.path.abspath(os.fspath(path))).as_uri() + "?mode=ro"


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] in "\"`'[":
        close = "]" if text[0] == "[" else text[0]
        inner = text[1:-1]
        return inner if close == "]" else inner.replace(close * 2, close)
    return text


def quote(name: str) -> str:
    """Quote an identifier for SQLite, always (keywords, spaces, quotes and unicode included)."""
    if "\x00" in name:
        raise ValueError("identifier contains a NUL character")
    return '"' + name.replace('"', '""') + '"'


# What can hold a double quote without being a double-quoted name: string literals, comments, the
# other identifier quotes (group 1, kept); then a double-quoted name (group 2, its text).
_DOUBLE_QUOTED = re.compile(r"""('(?:[^']|'')*'|--[^\n]*|/\*.*?(?:\*/|$)|`(?:[^`]|``)*`|\[[^\]]*\])|"((?:[^"]|"")*)["]""",
                            re.DOTALL)


def without_string_fallback(sql: str) -> str:
    """`sql` with every double-quoted identifier written in backticks instead. SQLite reads a
    double-quoted name that matches no column as a string literal (the "double-quoted string literal"
    misfeature of lang_keywords.html); a backtick-quoted name is always an identifier, so the same
    statement meeting a missing column fails with "no such column" instead of storing the name as text.
    Only the quoting style changes: names, case and everything else are kept."""
    if '"' not in sql:
        return sql
    return _DOUBLE_QUOTED.sub(
        lambda m: m.group(1) if m.group(1) is not None
        else "`" + m.group(2).replace('""', '"').replace("`", "``") + "`", sql)


def identifiers(sql: str) -> list[str]:
    """Every quoted identifier in `sql`, unquoted (bare words are keywords as often as names)."""
    return [unquote(t.text) for t in tokenize(sql) if t.kind == "ident"]


def compact_type(declared: str) -> str:
    """A normalised declared type as people write it: `varchar ( 100 )` -> `varchar(100)`,
    `decimal ( 10 , 2 )` -> `decimal(10, 2)`."""
    text = re.sub(r"\s*\(\s*", "(", declared)
    text = re.sub(r"\s*\)", ")", text)
    return re.sub(r"\s*,\s*", ", ", text)


def literal(value: object) -> str:
    """Render a Python value as an SQLite literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "X'" + bytes(value).hex() + "'"
    return "'" + str(value).replace("'", "''") + "'"


def norm_token(tok: Token) -> str:
    if tok.kind in ("ident", "word"):
        name = unquote(tok.text).lower() if tok.kind == "ident" else tok.text.lower()
        return name if _BARE_IDENT.match(name) else quote(name)
    if tok.kind == "blob":
        return tok.text.lower()
    return tok.text


def normalize(sql_or_tokens: str | list[Token]) -> str:
    """Canonical text for comparison: no whitespace or comments, identifiers unquoted and lower-cased,
    keywords lower-cased, literals untouched."""
    tokens = tokenize(sql_or_tokens) if isinstance(sql_or_tokens, str) else sql_or_tokens
    return " ".join(norm_token(t) for t in tokens)


def rename_identifiers(norm_sql: str, mapping: dict[str, str]) -> str:
    """Rename identifiers (keys lower-case) inside normalised SQL; string literals are left alone."""
    if not mapping:
        return norm_sql
    out = []
    for tok in tokenize(norm_sql):
        if tok.kind in ("ident", "word"):
            key = unquote(tok.text).lower() if tok.kind == "ident" else tok.text.lower()
            if key in mapping:
                tok = Token("ident", quote(mapping[key]))
        out.append(norm_token(tok))
    return " ".join(out)


def rename_references(sql: str, mapping: dict[str, str]) -> str:
    """`sql` with the table named after each REFERENCES renamed (keys lower-case), every other
    character kept as written."""
    if not mapping:
        return sql
    out: list[str] = []
    after_references = False
    for tok in tokenize(sql, keep_space=True):
        if after_references and tok.kind in ("ident", "word"):
            new = mapping.get(unquote(tok.text).lower())
            out.append(quote(new) if new is not None else tok.text)
            after_references = False
            continue
        if tok.kind not in ("ws", "comment"):
            after_references = tok.keyword() == "references"
        out.append(tok.text)
    return "".join(out)


def mentions(sql: str, name: str) -> bool:
    """True when `sql` contains identifier `name` (any quoting, any case) outside string literals."""
    target = name.lower()
    for tok in tokenize(sql):
        if tok.kind in ("ident", "word") and unquote(tok.text).lower() == target:
            return True
    return False


def matching_paren(tokens: list[Token], start: int) -> int:
    """Index of the ')' closing the '(' at tokens[start]."""
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i].text == "(":
            depth += 1
        elif tokens[i].text == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced parentheses")


def split_top_level(tokens: list[Token], sep: str = ",") -> list[list[Token]]:
    """Split a token list at separators that are not inside parentheses."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        if depth == 0 and tok.kind == "op" and tok.text == sep:
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


def create_statement_parts(sql: str) -> tuple[list[Token], list[Token], list[Token], int]:
    """For `CREATE TABLE name (body) options`: (head tokens, body tokens, option tokens, name index)."""
    tokens = tokenize(sql)
    i = 0
    while i < len(tokens) and tokens[i].keyword() != "table":
        i += 1
    i += 1
    if i + 2 < len(tokens) and [t.keyword() for t in tokens[i:i + 3]] == ["if", "not", "exists"]:
        i += 3
    name_index = i
    if i + 2 < len(tokens) and tokens[i + 1].text == ".":  # schema-qualified
        name_index = i + 2
    open_index = name_index + 1
    if open_index >= len(tokens) or tokens[open_index].text != "(":
        raise ValueError("not a CREATE TABLE ... ( ... ) statement")
    close_index = matching_paren(tokens, open_index)
    return tokens[:open_index], tokens[open_index + 1:close_index], tokens[close_index + 1:], name_index


def source_text(sql: str, tokens: list[Token]) -> str:
    """The original text spanned by tokens taken from `sql` (spacing and comments inside kept)."""
    if not tokens:
        return ""
    return sql[tokens[0].pos:tokens[-1].pos + len(tokens[-1].text)]


def pretty_create_table(sql: str, name: str | None = None) -> str:
    """CREATE TABLE text with one column or constraint per line, optionally under another name."""
    head, body, options, name_index = create_statement_parts(sql)
    table = quote(name) if name is not None else head[name_index].text
    lines = ",\n".join("    " + source_text(sql, part) for part in split_top_level(body))
    tail = (" " + source_text(sql, options)) if options else ""
    return f"{source_text(sql, head[:name_index])} {table} (\n{lines}\n){tail}"


def split_statements(sql: str) -> list[str]:
    """Split text into complete statements (trigger bodies and ';' inside literals and comments
    handled: a piece ends at a ';' only where SQLite's own `complete_statement` says it does)."""
    statements: list[str] = []
    start = pos = 0
    while (end := sql.find(";", pos)) >= 0:
        pos = end + 1
        piece = sql[start:pos]
        if sqlite3.complete_statement(piece):
            if piece.strip().rstrip(";").strip():
                statements.append(piece.strip())
            start = pos
    rest = sql[start:].strip()
    if rest:
        statements.append(rest)
    return statements
