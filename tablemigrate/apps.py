from django.apps import AppConfig


class TablemigrateConfig(AppConfig):
    name = "tablemigrate"
    verbose_name = "tablemigrate"
    default_auto_field = "django.db.models.BigAutoField"
