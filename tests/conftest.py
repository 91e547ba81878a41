import pytest


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

    from tablemigrate.generate import generate

    return functools.partial(generate, markers=False)
