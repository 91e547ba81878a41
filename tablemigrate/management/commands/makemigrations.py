"""`manage.py makemigrations` where tablemigrate owns apps (issue 25).

Django's `get_commands()` lets the app listed first in INSTALLED_APPS win a command name and django.core's
own commands lose to any app's (see `migrate.py` beside this one), so this `makemigrations` replaces
Django's wherever tablemigrate is listed. An app label that the settings give to tablemigrate
(TABLEMIGRATE_APPS, or without it the project's own apps) is refused with one line
that says what makes its migrations (`manage.py tablemigrate generate`), exit 2, nothing written:
Django's would either write Django migrations for it (two owners of the same tables, W003) or, for an
app with a `startapp`-made empty migrations package, which tablemigrate maps to None in MIGRATION_MODULES,
fail with a traceback about that setting. Everything else is Django's `makemigrations`: no app label
(Django's autodetector skips the apps without Django migrations), the labels of other apps, and an app
left out of TABLEMIGRATE_APPS that has no Django migrations yet (its first ones are being made).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.makemigrations import Command as DjangoMakemigrations

from tablemigrate.errors import TablemigrateError


class Command(DjangoMakemigrations):
    help = (DjangoMakemigrations.help + " The apps tablemigrate owns get theirs from `manage.py tablemigrate "
            "generate`.")

    def handle(self, *app_labels: str, **options: Any) -> None:
        from tablemigrate.project.ownership import ownership

        try:
            own = ownership()
        except TablemigrateError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from None
        owned = sorted({label for label in app_labels if own.owns(label) and _chosen(label)})
        if owned:
            one = len(owned) == 1
            raise CommandError(f"tablemigrate owns {'app' if one else 'apps'} {', '.join(owned)}: run `manage.py "
                               f"tablemigrate generate` to make {'its' if one else 'their'} migrations (`generate "
                               "--check` in CI), not `makemigrations`; nothing was written", returncode=2)
        return super().handle(*app_labels, **options)


def _chosen(label: str) -> bool:
    """Whether the settings give the app to tablemigrate: TABLEMIGRATE_APPS lists it or, without that setting,
    it is one of the project's own apps. An app it owns only for having no Django migrations yet (left out
    of TABLEMIGRATE_APPS) is one whose first Django migrations `makemigrations` is there to write."""
    from django.apps import apps
    from django.conf import settings

    from tablemigrate.project.ownership import in_project

    configured = getattr(settings, "TABLEMIGRATE_APPS", None)
    return label in configured if configured is not None else in_project(apps.get_app_config(label))
