import pytest

from tablemigrate.errors import MigrationFileError
from tablemigrate.history.loader import load_migration, load_migrations
from tablemigrate.operations import RunPython


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    ("up = [\n  'SELECT 1',\n  oops(\n", r"0001_x.py:\d+: syntax error"),
    ("table = 't'\n", r"0001_x.py: defines no `up`"),
    ("up = 42\n", r"`up` must be a list"),
    ("up = ['SELECT 1', 3]\n", r"item 2 of `up` is a int"),
    ("up = []\ntable = 5\n", r"`table` must be a string"),
    ("up = []\ndestructive = [1]\n", r"`destructive` must be a list of strings"),
    ("x = 1\nup = [1 / 0]\n", r"0001_x.py:2: error while loading: ZeroDivisionError"),
])
def test_malformed_modules_get_one_clear_line_naming_file(tmp_path, text, message):
    with pytest.raises(MigrationFileError, match=message) as info:
        load_migration(write(tmp_path, "0001_x.py", text))
    assert "\n" not in str(info.value)


def test_hand_written_modules_load_like_generated_ones(tmp_path):
    write(tmp_path, "0002_data.py", "def up(db):\n    db.execute('UPDATE t SET x = 1')\n\ndown = None\n")
    write(tmp_path, "0001_sql.py", "'''Custom SQL.'''\nup = 'CREATE VIEW v AS SELECT 1'\ndown = ['DROP VIEW v']\n"
                                   "destructive = True\n")
    write(tmp_path, "_helper.py", "raise SystemExit")  # ignored: leading underscore
    first, second = load_migrations(tmp_path)
    assert (first.name, first.up, first.down, first.destructive, first.doc) == (
        "0001_sql", ["CREATE VIEW v AS SELECT 1"], ["DROP VIEW v"], ["marked destructive"], "Custom SQL.")
    assert isinstance(second.up[0], RunPython) and second.down is None
    with pytest.raises(MigrationFileError, match="cannot be reverted"):
        second.steps("down")
    assert len(first.checksum) == 64 and first.checksum != second.checksum


def test_missing_directory_is_an_empty_history(tmp_path):
    assert load_migrations(tmp_path / "nope") == []
