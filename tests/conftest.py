"""Shared fixtures (the test database block lifted, `full_comparison`, `project`) and the guard of the
`subprocess` marker: a test that starts a process without the marker fails (docs/testing.md)."""

import subprocess

import pytest

_POPEN_INIT = subprocess.Popen.__init__


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """While a test not marked `subprocess` runs (its fixtures' setup and teardown included), starting a
    process fails it: the fast tier (`-m "not slow and not subprocess"`) stays free of them, and the
    marker cannot go missing from a test that needs it."""
    if item.get_closest_marker("subprocess"):
        yield
        return

    def refuse(self, args, *more, **options):
        raise AssertionError(f"{item.nodeid} starts a process ({args!r}) but is not marked `subprocess`: "
                             "add @pytest.mark.subprocess (docs/testing.md)")

    subprocess.Popen.__init__ = refuse
    try:
        yield
    finally:
        subprocess.Popen.__init__ = _POPEN_INIT


@pytest.fixture(autouse=True)
def _allow_private_databases(django_db_blocker):
    """tablemigrate opens private SQLite databases (A, B, live test files) through Django's wrapper;
    pytest-django blocks every Django connection by default, so the tests lift the block."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def full_comparison():
    """`generate` comparing the whole schemas even where `schema.sql`'s markers would let it compare the
    changed tables only (partial.py): for tests of database A and its cache."""
    import functools

    from tablemigrate.generate.pipeline import generate

    return functools.partial(generate, markers=False)


@pytest.fixture
def project(tmp_path):
    """A database file, tmp_path/app.sqlite3, opened as tablemigrate opens it, and an empty modules
    directory, tmp_path/tablemigrations: (Target, directory). A test file that starts from a history
    extends it with a fixture of the same name that writes (and runs) its first modules."""
    from tablemigrate.history.status import Target
    from tablemigrate.project.build import private_database, raw

    migrations = tmp_path / "tablemigrations"
    migrations.mkdir()
    with private_database(str(tmp_path / "app.sqlite3")) as db:
        yield Target("default", raw(db), tmp_path / "app.sqlite3"), migrations
