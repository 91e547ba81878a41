"""`manage.py migrate` never half-applies (issue 23, item 3), end to end.

The fixture project tests/mixedsite, with the settings mixedsite.custom_user, has the project's own app
`accounts` (tablemigrate owns it; its `User` is AUTH_USER_MODEL) and a third-party-style app `social` whose
Django migrations point at it, as django-allauth's `account` app does: 0001 has a foreign key to
AUTH_USER_MODEL, 0002 (like allauth's 0006) is a data step that updates the user table without declaring a
dependency on it. Django's own `migrate` applied 0001 on an empty database and then failed in 0002 with "no
such table: accounts_user". tablemigrate's `migrate` is `tablemigrate run` on such a database; `--plan` and
`--check` read without writing; targeted forms stay Django's and refuse while tablemigrate's migrations are
pending. Every test works on a copy, through manage.py in subprocesses.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from tests.test_thirdparty_apps import _one_error_line, applied, dump, rows, site, site_env  # noqa: F401  (fixture)
from tests.test_thirdparty_apps import manage as mixed

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process

SETTINGS = "mixedsite.custom_user"

NICKNAMES = '''
from django.conf import settings
from django.db import migrations


def nicknames(apps, schema_editor):
    """A package's data step on the project's user model: it needs the owned column the model change adds."""
    User = apps.get_model(settings.AUTH_USER_MODEL)
    alias = schema_editor.connection.alias
    for user in User.objects.using(alias).filter(nickname=""):
        user.nickname = user.username.upper()
        user.save(update_fields=["nickname"])


class Migration(migrations.Migration):
    dependencies = [("social", "0002_lower_emails")]
    operations = [migrations.RunPython(nicknames, migrations.RunPython.noop)]
'''

SLOW = '''
import time

from django.db import migrations


def slow(apps, schema_editor):
    print("slow step started", flush=True)
    time.sleep(60)


class Migration(migrations.Migration):
    dependencies = [("social", "0002_lower_emails")]
    operations = [migrations.RunPython(slow, migrations.RunPython.noop)]
'''

NICKNAME_FIELD = 'class User(AbstractUser):\n    nickname = models.CharField(max_length=50, default="")\n'


manage = partial(mixed, DJANGO_SETTINGS_MODULE=SETTINGS)  # tests/helpers.py's, on mixedsite with these settings


def user_rows(site: Path) -> list[tuple]:
    return rows(site / "db.sqlite3", "SELECT u.username, u.email, e.email FROM accounts_user u "
                                     "JOIN social_emailaddress e ON e.user_id = u.id ORDER BY u.id")


def add_user(site: Path) -> None:
    manage(site, "shell", "-c", "from django.contrib.auth import get_user_model\nfrom social.models import "
                                "EmailAddress\nann = get_user_model().objects.create(username='ann', email='Ann@X.org')\n"
                                "EmailAddress.objects.create(user=ann, email='Ann@X.org')\n")


def change_the_user_model(site: Path) -> None:
    """The project adds a column to its user model; the package's next release reads it in a data step."""
    models = site / "accounts" / "models.py"
    models.write_text(models.read_text().replace("from django.contrib.auth.models import AbstractUser\n",
                                                 "from django.contrib.auth.models import AbstractUser\n"
                                                 "from django.db import models\n")
                      .replace("class User(AbstractUser):\n    pass\n", NICKNAME_FIELD))
    (site / "social" / "migrations" / "0003_nicknames.py").write_text(NICKNAMES)
    manage(site, "tablemigrate", "generate", "--noinput")


def test_migrate_on_an_empty_database_builds_a_working_database(site):
    manage(site, "tablemigrate", "generate", "--noinput")
    plan = manage(site, "migrate", "--plan").stdout.splitlines()  # what `run` would apply, in its order
    assert plan[0] == "Planned operations:" and plan[1] == "  django: contenttypes.0001_initial"
    modules = [i for i, line in enumerate(plan) if line.startswith("  tablemigrate: ")]
    assert len(modules) == 3 and plan[modules[-1] + 1:] == ["  django: social.0001_initial",
                                                            "  django: social.0002_lower_emails"]
    check = manage(site, "migrate", "--check", check=False)
    assert check.returncode == 1 and _one_error_line(check).startswith("CommandError: 19 migrations are not applied")
    refused = manage(site, "migrate", "social", check=False)  # Django's targeted form: it would break the same way
    assert refused.returncode == 2 and "plain `manage.py migrate` creates it" in _one_error_line(refused)
    assert not list(site.glob("db.sqlite3*"))  # none of them created the database file
    names = applied(manage(site, "migrate", "--noinput").stdout)
    module = next(n for n in names if n.endswith("_create_accounts_user"))
    assert names.index("auth.0012_alter_user_first_name_max_length") < names.index(module) \
        < names.index("social.0001_initial") < names.index("social.0002_lower_emails")
    add_user(site)
    assert user_rows(site) == [("ann", "Ann@X.org", "Ann@X.org")]
    assert manage(site, "migrate", "--check").returncode == 0
    assert manage(site, "migrate", "--plan").stdout.splitlines()[1:] == ["  No planned migration operations."]
    assert manage(site, "migrate", "--noinput").stdout.strip() == "No migrations to apply."


def test_migrate_one_model_change_behind_applies_the_module_before_the_package_step_that_needs_it(site):
    manage(site, "tablemigrate", "generate", "--noinput")
    manage(site, "migrate", "--noinput")
    add_user(site)
    change_the_user_model(site)
    db = site / "db.sqlite3"
    before = dump(db)
    assert manage(site, "migrate", "--check", check=False).returncode == 1  # the owned module is pending
    assert manage(site, "migrate", "--plan").stdout.splitlines()[1:] == [
        f"  tablemigrate: {max(p.stem for p in (site / 'tablemigrations').glob('2*.py'))}",
        "  django: social.0003_nicknames"]
    refused = manage(site, "migrate", "social", check=False)  # Django's: 0003 would meet no nickname column
    assert refused.returncode == 2 and _one_error_line(refused).startswith(
        "CommandError: `migrate` would apply Django migrations (social.0003_nicknames) while tablemigrate's "
        "migrations are pending")
    owned = manage(site, "migrate", "accounts", check=False)
    assert owned.returncode == 2 and "tablemigrate owns app accounts" in _one_error_line(owned)
    manage(site, "migrate", "social", "0002", "--fake")  # recording stays Django's (nothing to record here)
    assert dump(db) == before
    names = applied(manage(site, "migrate", "--noinput").stdout)
    assert len(names) == 2 and names[1] == "social.0003_nicknames"
    assert rows(db, "SELECT username, nickname FROM accounts_user") == [("ann", "ANN")]
    assert user_rows(site) == [("ann", "Ann@X.org", "Ann@X.org")]  # every row kept
    assert manage(site, "migrate", "--check").returncode == 0


def test_a_database_djangos_migrate_half_applied_is_completed_by_run(site):
    """Before tablemigrate had its `migrate`: Django's applied social.0001 and failed in 0002. `run` then
    applied the pending 0002 before the owned modules (it declares no dependency on accounts), failed the
    same way, and the only recovery was deleting the database."""
    (site / "djangos.py").write_text("from mixedsite.custom_user import *  # noqa\n"
                                     "INSTALLED_APPS = [a for a in INSTALLED_APPS if a != 'tablemigrate']\n")
    broken = manage(site, "migrate", "--noinput", check=False, DJANGO_SETTINGS_MODULE="djangos")
    assert broken.returncode == 1 and "no such table: accounts_user" in broken.stderr
    assert rows(site / "db.sqlite3", "SELECT name FROM django_migrations WHERE app = 'social'") == [("0001_initial",)]
    manage(site, "tablemigrate", "generate", "--noinput")
    names = applied(manage(site, "tablemigrate", "run", "--noinput").stdout)
    assert names[-1] == "social.0002_lower_emails" and sum(n.endswith("_create_accounts_user") for n in names) == 1
    add_user(site)
    assert user_rows(site) == [("ann", "Ann@X.org", "Ann@X.org")]


def test_sigterm_stops_migrate_as_it_stops_run(site):
    """`docker stop` during a release-phase `migrate`: exit 143, one line, the database as it was."""
    manage(site, "tablemigrate", "generate", "--noinput")
    manage(site, "tablemigrate", "run", "--noinput")
    add_user(site)
    (site / "social" / "migrations" / "0003_slow.py").write_text(SLOW)
    before = dump(site / "db.sqlite3")
    proc = subprocess.Popen([sys.executable, "manage.py", "migrate", "--noinput"], cwd=site, env=site_env(site, DJANGO_SETTINGS_MODULE=SETTINGS),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    while "slow step started" not in proc.stdout.readline():
        assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.splitlines()[-1].startswith("CommandError: interrupted by SIGTERM; Django migration social.0003_slow")
    assert dump(site / "db.sqlite3") == before


@pytest.mark.parametrize("history", ["0", "1"])
def test_the_test_runner_still_builds_the_test_database(site, history):
    manage(site, "tablemigrate", "generate", "--noinput")
    proc = manage(site, "test", "accounts", MIXEDSITE_TEST_MIGRATIONS=history)
    assert "Ran 1 test" in proc.stderr and "OK" in proc.stderr
    assert not list(site.glob("db.sqlite3*"))  # the real database was never touched


def test_the_pre_migrate_backstop_leaves_an_app_being_adopted_to_its_django_migrations(settings):
    """The backstop (for a `migrate` of another app that shadows tablemigrate's) refuses a forward plan
    while the owned tables are behind, but not while the owned app still has the Django migrations that
    made its tables (README, adopting a project: step 1 runs `migrate` before `baseline`)."""
    from django.core.management import CommandError
    from django.db.migrations import Migration

    from tablemigrate.testing import refuse_migrate

    step = (Migration("0002_more", "vendor"), False)  # a forward step of an app tablemigrate does not own
    with pytest.raises(CommandError, match=r"`migrate` would apply Django migrations \(vendor.0002_more\) while "
                                           "tablemigrate has no migrations yet"):
        refuse_migrate("default", [step], test=False)
    refuse_migrate("default", [step], test=True)  # the test database: the receiver builds it
    refuse_migrate("default", [(step[0], True)], test=False)  # backwards: nothing can meet a missing table
    settings.MIGRATION_MODULES = {"sampleapp": "tests"}  # sampleapp has Django migrations: adopting
    refuse_migrate("default", [step], test=False)
