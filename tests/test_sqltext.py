import pytest

from tablemigrate.sqlite import sqltext


def test_normalize_ignores_whitespace_quoting_case_and_comments():
    a = 'CREATE INDEX "ix" ON "T" ("a" DESC)  WHERE "active" -- note'
    b = "create index ix on t (A desc) where [active]"
    assert sqltext.normalize(a) == sqltext.normalize(b)


def test_normalize_keeps_literals():
    assert sqltext.normalize("x = 'Abc'") != sqltext.normalize("x = 'abc'")


def test_split_statements_handles_triggers_and_semicolons_in_literals():
    sql = "INSERT INTO t VALUES ('a;b'); CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END; SELECT 3"
    assert sqltext.split_statements(sql) == [
        "INSERT INTO t VALUES ('a;b');",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;",
        "SELECT 3",
    ]


def test_quote_escapes_and_refuses_nul():
    assert sqltext.quote('we"ird name') == '"we""ird name"'
    with pytest.raises(ValueError):
        sqltext.quote("a\x00b")


def test_rename_identifiers_skips_string_literals():
    norm = sqltext.normalize("\"a\" = 'a'")
    assert sqltext.rename_identifiers(norm, {"a": "b"}) == "b = 'a'"


def test_pretty_create_table_keeps_text_and_can_rename():
    sql = 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "n" varchar(10) CHECK ("n" <> \'\')) STRICT'
    pretty = sqltext.pretty_create_table(sql, "new__t")
    assert pretty.splitlines()[0] == 'CREATE TABLE "new__t" ('
    assert '    "n" varchar(10) CHECK ("n" <> \'\')' in pretty
    assert pretty.endswith(") STRICT")


def test_without_string_fallback_changes_only_double_quoted_names():
    from tablemigrate.sqlite.sqltext import without_string_fallback as strict

    assert strict('SELECT "a", "we""ird", "b`q" FROM "t"') == 'SELECT `a`, `we"ird`, `b``q` FROM `t`'
    # Double quotes inside strings, comments and other identifier quotes are not names.
    kept = """SELECT 'say "hi"', [x"y], `p"q` -- "c"\n/* "d" */ FROM t"""
    assert strict(kept) == kept
    assert strict("SELECT 'it''s', \"v\"") == "SELECT 'it''s', `v`"
    assert strict("no quotes at all") == "no quotes at all"


def test_a_cleared_authorizer_allows_every_statement_again():
    """Python 3.10 accepts `set_authorizer(None)` and then denies everything (`tox -e py310-django42` found
    it through baseline's data steps, whose scratch connection Django's schema editor used next)."""
    import sqlite3

    from tablemigrate.sqlite.sqltext import clear_authorizer

    conn = sqlite3.connect(":memory:")
    conn.set_authorizer(lambda *_args: sqlite3.SQLITE_OK)
    clear_authorizer(conn)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("CREATE TABLE t (x)")
