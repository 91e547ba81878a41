"""`tenantapp` lives on the `tenant` alias (every tenant's database), everything else on `default`."""


def _alias(app_label):
    return "tenant" if app_label == "tenantapp" else "default"


class TenantRouter:
    def db_for_read(self, model, **hints):
        return _alias(model._meta.app_label)

    def db_for_write(self, model, **hints):
        return _alias(model._meta.app_label)

    def allow_relation(self, obj1, obj2, **hints):
        return _alias(obj1._meta.app_label) == _alias(obj2._meta.app_label)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == _alias(app_label)
