"""run / revert / show safety, through the library on a real database file."""

import contextlib
import hashlib
import os
import sqlite3
import stat

import pytest

from tablemigrate.backups.backup import automatic_backups, verify
from tablemigrate.errors import BackupError, ConfigurationError, HistoryMismatch, MigrationFailed, NotConfirmed
from tablemigrate.history.status import status
from tablemigrate.run import runner
from tablemigrate.run.drift import drift
from tablemigrate.run.dryrun import dry_run

from .helpers import module


@pytest.fixture
def project(project):
    """The shared project (tests/conftest.py) with one module, not yet run: table t, rows 'a' and 'b'."""
    module(project[1], "0001_create", "table = 't'\nup = ['CREATE TABLE t (id integer PRIMARY KEY, v text)', "
           "\"INSERT INTO t (v) VALUES ('a'), ('b')\"]\ndown = ['DROP TABLE t']\n")
    return project


def app_commits(path, value):
    """The application, on its own connection, commits one row."""
    other = sqlite3.connect(path)
    other.execute("INSERT INTO t (v) VALUES (?)", (value,))
    other.commit()
    other.close()


@contextlib.contextmanager
def app_commits_before(target, value, migration=None):
    """While the block runs, the application commits a row into t just before each migration's
    transaction begins (`migration`: only that one's)."""
    from tablemigrate import signals

    def app_writes(sender, name, **kw):
        if migration is None or name == migration:
            app_commits(target.path, value)

    signals.pre_migration.connect(app_writes, weak=False)
    try:
        yield
    finally:
        signals.pre_migration.disconnect(app_writes)


def dump(target):
    return list(target.conn.iterdump())


def file_hash(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_applies_records_and_is_idempotent(project):
    target, d = project
    assert [m.name for m in runner.run(target, d)] == ["0001_create"]
    assert runner.run(target, d) == []
    (row,) = target.conn.execute("SELECT name, table_name, length(checksum) FROM tablemigrate_history")
    assert row == ("0001_create", "t", 64)


def test_third_statement_failing_restores_everything(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)']\n")
    module(d, "0003_bad", "up = ['ALTER TABLE t ADD COLUMN w int', \"UPDATE t SET w = 1\", "
           "'INSERT INTO t (id) VALUES (1)']\n")  # PK clash: fails at run time, not at validation
    before = dump(target)
    with pytest.raises(MigrationFailed, match=r"0003_bad \(up\) failed at step 3 \[INSERT INTO t .*restored from backup"):
        runner.run(target, d)
    assert dump(target) == before  # schema and rows, including 0002 which had committed
    assert len(automatic_backups(target.backups_dir, target.path)) == 2


def test_python_migration_raising_after_writes_restores(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)']\n")
    module(d, "0003_data", "def up(db):\n    db.execute(\"UPDATE t SET v = 'x'\")\n    raise ValueError('bad data')\n")
    before = dump(target)
    with pytest.raises(MigrationFailed, match=r"migration 0003_data \(up\) failed at step 1 RunPython\('up'\): "
                                              r"ValueError: bad data; the database was restored from backup"):
        runner.run(target, d)
    assert dump(target) == before  # the rows 0003 wrote and the table 0002 created are gone
    assert len(automatic_backups(target.backups_dir, target.path)) == 2


def test_validation_catches_sql_errors_before_anything_runs(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_typo", "up = ['ALTER TABLE nosuch ADD COLUMN x int']\n")
    before = file_hash(target.path)
    backups = automatic_backups(target.backups_dir, target.path)
    with pytest.raises(MigrationFailed, match="validation failed, nothing was changed.*no such table: nosuch"):
        runner.run(target, d)
    assert file_hash(target.path) == before and automatic_backups(target.backups_dir, target.path) == backups


def test_edited_or_missing_applied_module_is_refused(project):
    target, d = project
    runner.run(target, d)
    path = d / "0001_create.py"
    path.write_text(path.read_text() + "# edited\n")
    with pytest.raises(HistoryMismatch, match="0001_create was edited after it was applied"):
        runner.run(target, d)
    path.unlink()
    with pytest.raises(HistoryMismatch, match="missing"):
        runner.run(target, d)


def test_seven_runs_keep_five_verified_owner_only_backups(project):
    target, d = project
    for i in range(7):
        module(d, f"000{i + 2}_n", f"up = ['CREATE TABLE n{i} (x)']\n")
        runner.run(target, d, keep=5)
    kept = automatic_backups(target.backups_dir, target.path)
    assert len(kept) == 5
    for path in kept:
        verify(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    kept[0].write_bytes(kept[0].read_bytes()[:4096] + b"\x00garbage" * 100)
    with pytest.raises(BackupError):
        verify(kept[0])
    (target.path.parent / "not-a-db.sqlite3").write_text("hello")
    with pytest.raises(BackupError, match="not an SQLite database"):
        verify(target.path.parent / "not-a-db.sqlite3")


def test_dry_run_leaves_the_database_byte_for_byte_unchanged(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_more", "up = [\"INSERT INTO t (v) VALUES ('c')\", 'DELETE FROM t WHERE id = 1']\n")
    before = file_hash(target.path)
    (rehearsal,) = dry_run(target, d)
    assert rehearsal.rows_before["t"] == 2 and rehearsal.rows_after["t"] == 2
    assert file_hash(target.path) == before


def test_destructive_migrations_need_confirmation(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_drop", "destructive = ['drops table t']\nup = ['DROP TABLE t']\n")
    with pytest.raises(NotConfirmed, match="0002_drop: drops table t"):
        runner.run(target, d)
    with pytest.raises(NotConfirmed):
        runner.run(target, d, confirm=lambda text: False)
    assert target.conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    assert runner.run(target, d, confirm=lambda text: "drops table t" in text)


def test_revert_runs_down_and_refuses_without_down(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_col", "up = ['ALTER TABLE t ADD COLUMN w int']\ndown = ['ALTER TABLE t DROP COLUMN w']\n")
    module(d, "0003_oneway", "up = ['CREATE TABLE z (x)']\n")
    runner.run(target, d)
    with pytest.raises(ConfigurationError, match="0003_oneway has no `down`"):
        runner.revert(target, d)
    (d / "0003_oneway.py").write_text("up = ['CREATE TABLE z (x)']\ndown = ['DROP TABLE z']\n")
    # editing an applied module is refused, even to add a down
    with pytest.raises(HistoryMismatch):
        runner.revert(target, d)


def test_revert_to_name(project):
    target, d = project
    module(d, "0002_col", "up = ['ALTER TABLE t ADD COLUMN w int']\ndown = ['ALTER TABLE t DROP COLUMN w']\n")
    runner.run(target, d)
    reverted = runner.revert(target, d, to="0001_create")
    assert [m.name for m in reverted] == ["0002_col"]
    assert [r[1] for r in target.conn.execute("PRAGMA table_info(t)")] == ["id", "v"]
    assert status(target.conn, d).pending[0].stem == "0002_col"


def test_drift_is_reported(project):
    target, d = project
    runner.run(target, d)
    assert drift(target, d) == []
    target.conn.execute("ALTER TABLE t ADD COLUMN hotfix int")
    assert drift(target, d) == ["t"]


def test_signals_are_sent_around_the_run_and_each_migration(project):
    from tablemigrate import signals

    seen = []

    def receiver(which, **kw):
        seen.append((which, kw.get("name"), kw.get("direction"), kw.get("error")))

    handlers = {}
    for name in ("pre_run", "post_run", "pre_migration", "post_migration"):
        sig = getattr(signals, name)
        handlers[name] = (lambda n: lambda sender, **kw: receiver(n, **kw))(name)
        sig.connect(handlers[name], weak=False)
    try:
        target, d = project
        runner.run(target, d)
    finally:
        for name, h in handlers.items():
            getattr(signals, name).disconnect(h)
    assert [s[0] for s in seen] == ["pre_run", "pre_migration", "post_migration", "post_run"]
    assert seen[2][1:] == ("0001_create", "up", None)


def test_data_migration_that_reads_rows_is_not_run_during_validation(project):
    target, d = project
    module(d, "0002_data", "def up(db):\n    (n,) = db.execute('SELECT max(id) FROM t').fetchone()\n"
           "    db.execute(\"UPDATE t SET v = 'last' WHERE id = ?\", (n + 0,))\n")
    runner.run(target, d)
    assert target.conn.execute("SELECT v FROM t ORDER BY id").fetchall() == [("a",), ("last",)]


def test_rows_that_violate_a_migration_refuse_it_before_anything_changes(project):
    from tablemigrate.errors import DataCheckFailed

    target, d = project
    runner.run(target, d)
    target.conn.execute("INSERT INTO t (v) VALUES ('a')")  # a duplicate of row 1
    module(d, "0002_unique", "up = ['CREATE UNIQUE INDEX t_v ON t (v)']\n")
    before, backups = file_hash(target.path), automatic_backups(target.backups_dir, target.path)
    with pytest.raises(DataCheckFailed, match=r"0002_unique: 1 duplicated value in t \(v\) under a new unique index"):
        runner.run(target, d, allow_destructive=True)  # no flag can make the rows fit
    assert file_hash(target.path) == before and automatic_backups(target.backups_dir, target.path) == backups
    target.conn.execute("DELETE FROM t WHERE id = 3")
    assert [m.name for m in runner.run(target, d)] == ["0002_unique"]


def test_data_loss_found_in_rows_needs_confirmation_and_is_listed_with_counts(project):
    target, d = project
    module(d, "0002_col", "up = ['ALTER TABLE t ADD COLUMN w int', 'UPDATE t SET w = id']\n"
           "down = ['ALTER TABLE t DROP COLUMN w']\n")  # down is not flagged: only the rows say it loses data
    runner.run(target, d)
    with pytest.raises(NotConfirmed, match=r"2 values in t.w would be dropped \(for example: 1, 2\) \(found in the database\)"):
        runner.revert(target, d)
    assert [m.name for m in runner.revert(target, d, allow_destructive=True)] == ["0002_col"]


def test_the_runner_lock_is_not_held_while_a_human_decides(project):
    from tablemigrate.sqlite.lock import run_lock

    target, d = project
    runner.run(target, d)
    module(d, "0002_drop", "destructive = ['drops table t']\nup = ['DROP TABLE t']\n")
    free = []

    def answer(text):
        with run_lock(target.path, timeout=0):  # raises LockTimeout if the run still held it
            free.append(True)
        return True

    assert [m.name for m in runner.run(target, d, confirm=answer)] == ["0002_drop"]
    assert free == [True]


def test_a_migration_appearing_while_a_human_decides_stops_the_run(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_drop", "destructive = ['drops table t']\nup = ['DROP TABLE t']\n")

    def answer(text):
        module(d, "0003_more", "up = ['CREATE TABLE more (x)']\n")
        return True

    with pytest.raises(ConfigurationError, match="changed while waiting for confirmation"):
        runner.run(target, d, confirm=answer)
    assert target.conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2


def test_first_migration_failing_needs_no_restore(project, monkeypatch):
    from tablemigrate.backups import backup

    target, d = project
    runner.run(target, d)
    module(d, "0002_bad", "up = ['ALTER TABLE t ADD COLUMN w int', 'INSERT INTO t (id) VALUES (1)']\n")
    monkeypatch.setattr(backup, "restore", lambda *a: pytest.fail("restored although nothing had committed"))
    before = dump(target)
    with pytest.raises(MigrationFailed, match="rolled back, the database is unchanged \\(backup: "):
        runner.run(target, d)
    assert dump(target) == before


def test_restore_never_discards_rows_other_connections_wrote_during_the_run(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)']\ndown = ['DROP TABLE u']\n")
    module(d, "0003_bad", "up = ['ALTER TABLE t ADD COLUMN w int', 'INSERT INTO t (id) VALUES (1)']\n")
    # the application commits a row between two migrations
    with app_commits_before(target, "from the app", "0003_bad"), pytest.raises(
            MigrationFailed, match="was NOT restored.*0002_ok \\(applied earlier in this run\\) stay applied"):
        runner.run(target, d)
    assert target.conn.execute("SELECT v FROM t WHERE v = 'from the app'").fetchall() == [("from the app",)]
    assert [a.name for a in status(target.conn, d).applied] == ["0001_create", "0002_ok"]
    assert drift(target, d) == []  # the history agrees with the schema
    (d / "0003_bad.py").unlink()
    assert runner.run(target, d) == []


def test_a_commit_landing_while_the_backup_is_copied_is_never_restored_away(project, monkeypatch):

    from tablemigrate.backups import backup

    target, d = project
    runner.run(target, d)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)']\ndown = ['DROP TABLE u']\n")
    module(d, "0003_bad", "up = ['ALTER TABLE t ADD COLUMN w int', 'INSERT INTO t (id) VALUES (1)']\n")
    real = backup.take_backup

    def backup_during_which_the_app_writes(conn, dest):
        app_commits(target.path, 'during backup')
        return real(conn, dest)

    monkeypatch.setattr(backup, "take_backup", backup_during_which_the_app_writes)
    with pytest.raises(MigrationFailed, match="was NOT restored"):
        runner.run(target, d)
    assert target.conn.execute("SELECT count(*) FROM t WHERE v = 'during backup'").fetchone() == (1,)


def test_pruning_keeps_other_databases_backups(project):
    target, d = project
    target.backups_dir.mkdir(parents=True)
    theirs = [target.backups_dir / f"app-archive-2020010{i}T000000_000000Z.sqlite3" for i in range(1, 8)]
    for path in theirs:
        path.write_bytes(b"")
    for i in range(7):
        module(d, f"000{i + 2}_n", f"up = ['CREATE TABLE n{i} (x)']\n")
        runner.run(target, d, keep=5)
    assert all(p.exists() for p in theirs)
    assert len(automatic_backups(target.backups_dir, target.path)) == 5


def test_failed_runs_prune_too(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_bad", "up = ['INSERT INTO t (id) VALUES (1)']\n")
    for _ in range(4):
        with pytest.raises(MigrationFailed):
            runner.run(target, d, keep=2)
    assert len(automatic_backups(target.backups_dir, target.path)) == 2


def test_a_backup_that_fails_its_check_is_never_used(project, monkeypatch):
    from tablemigrate.backups import backup

    target, d = project
    runner.run(target, d)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)']\n")
    module(d, "0003_bad", "up = ['INSERT INTO t (id) VALUES (1)']\n")
    real_take = backup.take_backup

    def take_then_corrupt(conn, dest):  # the disk damages the backup after it was written
        path = real_take(conn, dest)
        path.write_bytes(path.read_bytes()[:4096] + b"\x13" * 4096)
        return path

    monkeypatch.setattr(backup, "take_backup", take_then_corrupt)
    with pytest.raises(MigrationFailed, match="0003_bad .* the backup cannot be restored .* 0002_ok .* stay applied"):
        runner.run(target, d)
    assert [a.name for a in status(target.conn, d).applied] == ["0001_create", "0002_ok"]
    assert target.conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_a_backup_failing_its_check_when_taken_stops_the_run_before_anything(project, monkeypatch):
    from tablemigrate.backups import backup

    target, d = project
    runner.run(target, d)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)']\n")
    monkeypatch.setattr(backup, "verify", lambda path: (_ for _ in ()).throw(BackupError(f"{path}: damaged")))
    with pytest.raises(BackupError, match="damaged"):
        runner.run(target, d)
    assert status(target.conn, d).pending[0].stem == "0002_ok"


def test_a_database_locked_past_the_busy_timeout_exits_3_unchanged(project):
    import sqlite3

    from tablemigrate.errors import DatabaseLocked

    target, d = project
    runner.run(target, d)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)']\n")
    target.conn.execute("PRAGMA busy_timeout = 100")
    app = sqlite3.connect(target.path, isolation_level=None)
    app.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseLocked, match="locked by another connection") as info:
            runner.run(target, d, take_backup=False)
        assert info.value.exit_code == 3
    finally:
        app.execute("ROLLBACK")
        app.close()
    assert status(target.conn, d).pending[0].stem == "0002_ok"


def test_virtual_tables_and_their_shadow_tables_do_not_break_validation_or_the_diff(project):
    from tablemigrate.sqlite.introspect import introspect

    target, d = project
    module(d, "0002_fts", "up = [\"CREATE VIRTUAL TABLE search USING fts5(body)\"]\n")
    runner.run(target, d)
    module(d, "0003_more", "up = ['CREATE TABLE more (x)']\n")
    assert [m.name for m in runner.run(target, d)] == ["0003_more"]
    assert sorted(introspect(target.conn).tables) == ["more", "t"]


def test_drift_and_replays_skip_data_steps(project):
    target, d = project
    module(d, "0002_data", "def up(db):\n    (n,) = db.execute('SELECT max(id) FROM t').fetchone()\n"
           "    db.execute('UPDATE t SET v = ? WHERE id = ?', ('last', n + 0))\n")
    runner.run(target, d)
    assert drift(target, d) == []  # replaying 0002 on an empty schema would fail on None + 0


def test_dry_run_reports_each_statement_and_every_tables_rows(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_more", "up = [\"INSERT INTO t (v) VALUES ('c')\", 'CREATE TABLE u (x)']\n")
    (r,) = dry_run(target, d)
    assert [sql for sql, _s in r.statements] == ["INSERT INTO t (v) VALUES ('c')", "CREATE TABLE u (x)"]
    assert (r.rows_before, r.rows_after) == ({"t": 2}, {"t": 3, "u": 0})


def test_a_commit_right_after_the_failed_migration_is_never_restored_away(project):
    """The application commits in the moment after the failing migration rolled back (here: from a
    post_migration receiver), before the decision to restore."""
    from tablemigrate import signals

    target, d = project
    runner.run(target, d)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)']\n")
    module(d, "0003_bad", "up = ['INSERT INTO t (id) VALUES (1)']\n")

    def app_writes(sender, name, error=None, **kw):
        if name == "0003_bad" and error is not None:
            app_commits(target.path, 'customer order')

    signals.post_migration.connect(app_writes, weak=False)
    try:
        with pytest.raises(MigrationFailed, match="was NOT restored"):
            runner.run(target, d)
    finally:
        signals.post_migration.disconnect(app_writes)
    assert target.conn.execute("SELECT count(*) FROM t WHERE v = 'customer order'").fetchone() == (1,)


def test_a_table_counted_empty_that_gets_rows_before_its_migration_runs_is_not_dropped(project):
    """The flag of a drop of an empty table is not asked about; the migration's own transaction checks
    that the table is still empty (the application may write it after the data check counted none)."""
    target, d = project
    runner.run(target, d)
    target.conn.execute("DELETE FROM t")
    module(d, "0002_drop", "destructive = ['drops table t']\nup = ['DROP TABLE t']\n")
    with app_commits_before(target, "written late"), pytest.raises(
            MigrationFailed, match="t was empty when the data check ran and has rows now"):
        runner.run(target, d)
    assert target.conn.execute("SELECT v FROM t").fetchall() == [("written late",)]
    with pytest.raises(NotConfirmed, match="dropping t deletes 1 row"):
        runner.run(target, d)  # and now it asks
    target.conn.execute("DELETE FROM t")
    assert [m.name for m in runner.run(target, d)] == ["0002_drop"]  # nobody writes: no confirmation
    module(d, "0003_again", "up = ['CREATE TABLE t (v)']\ndown = ['DROP TABLE t']\ndown_destructive = ['drops t']\n")
    runner.run(target, d)
    with app_commits_before(target, "allowed"):  # --allow-destructive: losses are accepted, not checked again
        assert [m.name for m in runner.revert(target, d, allow_destructive=True)] == ["0003_again"]


def test_a_table_that_gets_rows_while_a_human_decides_is_asked_about_not_dropped(project):
    target, d = project
    module(d, "0002_e", "up = ['CREATE TABLE e (v)']\n")
    runner.run(target, d)
    module(d, "0003_drop_t", "destructive = ['drops table t']\nup = ['DROP TABLE t']\n")
    module(d, "0004_drop_e", "destructive = ['drops table e']\nup = ['DROP TABLE e']\n")
    asked = []

    def answer(text):  # the question is about t only (e is empty); meanwhile the application writes e
        asked.append(text)
        other = sqlite3.connect(target.path)
        other.execute("INSERT INTO e VALUES ('written while deciding')")
        other.commit()
        other.close()
        return True

    with pytest.raises(NotConfirmed, match=r"\(0004_drop_e: drops table e; 0004_drop_e: dropping e deletes 1 row"):
        runner.run(target, d, confirm=answer)
    assert len(asked) == 1 and "0003_drop_t" in asked[0] and "0004_drop_e" not in asked[0]
    assert [a.name for a in status(target.conn, d).applied] == ["0001_create", "0002_e"]
