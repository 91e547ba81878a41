import sqlite3

from tablemigrate.sqlite.introspect import introspect


def schema_of(*statements):
    conn = sqlite3.connect(":memory:")
    for s in statements:
        conn.execute(s)
    return introspect(conn)


def test_add_column_history_equals_fresh_create():
    fresh = schema_of('CREATE TABLE t (id integer PRIMARY KEY, a text, b integer NOT NULL DEFAULT 3 CHECK (b > 0))')
    altered = schema_of("CREATE TABLE t (id integer PRIMARY KEY, a text)",
                        "ALTER TABLE t ADD COLUMN b integer NOT NULL DEFAULT 3 CHECK (b > 0)")
    assert fresh == altered
    assert fresh.fingerprint() == altered.fingerprint()


def test_column_order_does_not_count():
    assert schema_of("CREATE TABLE t (a int, b text)") == schema_of('CREATE TABLE "T" ("b" TEXT, "A" INT)')


def test_what_no_pragma_shows_is_still_compared():
    base = "CREATE TABLE p (id integer PRIMARY KEY)"
    variants = [
        "CREATE TABLE t (id integer PRIMARY KEY, n text COLLATE NOCASE)",
        "CREATE TABLE t (id integer PRIMARY KEY, n text CHECK (n <> ''))",
        "CREATE TABLE t (id integer PRIMARY KEY, n text, CONSTRAINT c CHECK (length(n) < 5))",
        "CREATE TABLE t (id integer PRIMARY KEY AUTOINCREMENT, n text)",
        "CREATE TABLE t (id integer PRIMARY KEY, n text GENERATED ALWAYS AS (id * 2) VIRTUAL)",
        "CREATE TABLE t (id integer PRIMARY KEY, n integer REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TABLE t (id integer PRIMARY KEY, n integer REFERENCES p (id) ON DELETE CASCADE)",
        "CREATE TABLE t (id integer PRIMARY KEY, n text UNIQUE)",
        "CREATE TABLE t (id integer PRIMARY KEY, n text) STRICT",
        "CREATE TABLE t (id integer PRIMARY KEY, n text) WITHOUT ROWID",
    ]
    plain = schema_of(base, "CREATE TABLE t (id integer PRIMARY KEY, n text)")
    seen = [plain]
    for v in variants:
        s = schema_of(base, v)
        assert all(s != other for other in seen), v
        seen.append(s)


def test_partial_and_expression_indexes_are_compared_by_definition():
    base = "CREATE TABLE t (id integer PRIMARY KEY, a int, b text)"
    one = schema_of(base, 'CREATE INDEX "ix" ON t (a) WHERE a > 1')
    same = schema_of(base, "create index ix on T ( A )   where A>1")
    other = schema_of(base, "CREATE INDEX ix ON t (a) WHERE a > 2")
    expr = schema_of(base, "CREATE INDEX ix ON t (lower(b))")
    assert one == same and one != other and one != expr


def test_internal_and_history_tables_are_left_out():
    s = schema_of("CREATE TABLE t (id integer PRIMARY KEY AUTOINCREMENT)", "INSERT INTO t DEFAULT VALUES",
                  "CREATE TABLE tablemigrate_history (name text)")
    assert list(s.tables) == ["t"]


def test_triggers_and_views_are_read():
    s = schema_of("CREATE TABLE t (id integer PRIMARY KEY)", "CREATE VIEW v AS SELECT id FROM t",
                  "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END")
    assert list(s.views) == ["v"] and s.triggers["tr"].table == "t"
