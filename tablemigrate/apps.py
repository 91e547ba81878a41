from django.apps import AppConfig
from django.db.models.signals import pre_migrate


class TablemigrateConfig(AppConfig):
    name = "tablemigrate"
    verbose_name = "tablemigrate"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .migrationstate import install
        from .testing import apply_history_to_test_database

        pre_migrate.connect(apply_history_to_test_database, dispatch_uid="tablemigrate_test_database")
        install()  # owned models may inherit from other apps' models (migrationstate.py)
