"""Review probes: data modules (`RunPythonWithModels`). Expected to FAIL on main where a defect is shown."""

from __future__ import annotations

import pytest

from tablemigrate.errors import TablemigrateError
from tablemigrate.run import runner

from .helpers import module
from .test_data_modules import CREATE, _seen, project  # noqa: F401 (fixtures)

#: A data step that changes the schema through Django's schema editor: replays of the history (database A,
#: the rehearsal, drift, the test database) never run it, so every real database would differ from A.
SCHEMA_CHANGE = """
from django.db import models
from tablemigrate.operations import RunPythonWithModels


def forwards(apps, schema_editor):
    Author = apps.get_model('sampleapp', 'Author')
    field = models.IntegerField(null=True)
    field.set_attributes_from_name('sneaky')
    schema_editor.add_field(Author, field)


up = [RunPythonWithModels(forwards)]
"""


def test_a_data_step_that_changes_the_schema_is_refused(project):
    target, d = project
    module(d, "0001_create", CREATE)
    runner.run(target, d, take_backup=False)
    module(d, "0002_data", SCHEMA_CHANGE)
    with pytest.raises(TablemigrateError):
        runner.run(target, d, take_backup=False)  # on main: applied, exit 0
    columns = [c[1] for c in target.conn.execute("PRAGMA table_info(sampleapp_author)")]
    assert "sneaky" not in columns


#: The table is made under an old name and renamed to the model's table by a later module.
OLD_NAME = """
up = ['CREATE TABLE "old_author" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(100) NOT NULL)',
      "INSERT INTO old_author (name) VALUES ('ann'), ('bob')"]
down = ['DROP TABLE "old_author"']
"""

READ_AUTHORS = """
from tablemigrate.operations import RunPythonWithModels
from tests import test_review_data_modules as seen


def forwards(apps, schema_editor):
    Author = apps.get_model('sampleapp', 'Author')
    seen.NAMES.extend(Author.objects.order_by('pk').values_list('name', flat=True))


up = [RunPythonWithModels(forwards)]
"""

RENAME = """
up = ['ALTER TABLE "old_author" RENAME TO "sampleapp_author"']
down = ['ALTER TABLE "sampleapp_author" RENAME TO "old_author"']
"""

NAMES: list[str] = []


def test_the_historical_model_of_a_table_a_later_module_renames_reads_its_old_table(project):
    """Django's RunPython gets the model as it was at that migration (its old db_table); here the model is
    left out because its current table does not exist yet, so `apps.get_model` raises LookupError."""
    target, d = project
    NAMES.clear()
    module(d, "0001_old", OLD_NAME)
    module(d, "0002_read", READ_AUTHORS)
    module(d, "0003_rename", RENAME)
    runner.run(target, d, take_backup=False)
    assert NAMES == ["ann", "bob"]
