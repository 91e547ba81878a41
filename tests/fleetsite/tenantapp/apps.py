"""The tenant app, with a post_migrate receiver that misbehaves on one tenant when the tests ask it to."""

import os

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


def misbehave(sender, using, **kwargs):
    """Fail (FLEETSITE_FAIL_POST_MIGRATE) or end the process (FLEETSITE_EXIT_POST_MIGRATE) after the
    migrations of a tenant whose file name contains one of the variable's comma-separated values."""
    name = os.path.basename(str(connections[using].settings_dict["NAME"]))

    def named(variable):
        return any(part and part in name for part in os.environ.get(variable, "").split(","))

    if named("FLEETSITE_FAIL_POST_MIGRATE"):
        raise RuntimeError(f"post_migrate receiver failed on {name}")
    if named("FLEETSITE_EXIT_POST_MIGRATE"):
        os._exit(17)


class TenantConfig(AppConfig):
    name = "tenantapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        post_migrate.connect(misbehave, sender=self)
