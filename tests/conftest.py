import pytest


@pytest.fixture(autouse=True)
def _allow_private_databases(django_db_blocker):
    """tablemigrate opens private SQLite databases (A, B, live test files) through Django's wrapper;
    pytest-django blocks every Django connection by default, so the tests lift the block."""
    with django_db_blocker.unblock():
        yield
