"""Settings, with their defaults. Every setting is optional.

TABLEMIGRATE_MIGRATIONS_DIR  directory of migration modules (default: <BASE_DIR>/tablemigrations); or a dict
                             {alias: directory}, one history per database alias (an alias not in it
                             has no tablemigrate history)
TABLEMIGRATE_FLEET           database files migrated as copies of an alias's database: {alias: a glob
                             (relative to BASE_DIR), a callable or its dotted path returning paths}
                             (see tablemigrate.fleet.members)
TABLEMIGRATE_BACKUP_DIR      automatic backups (default: <directory of the database>/backups)
                             (for a database in a LiteFS mount: required, outside it; the runner
                             lock goes there too: tablemigrate.sqlite.litefs)
TABLEMIGRATE_KEEP_BACKUPS    automatic backups kept after a run (default: 5)
TABLEMIGRATE_BUSY_TIMEOUT    seconds to wait for SQLite's write lock (default: 30)
TABLEMIGRATE_POST_MIGRATE    send Django's pre_migrate and post_migrate on every `run` (nothing pending
                             included) and post_migrate after a `revert`, as `migrate` does (content
                             types, permissions) (default: True; False: only the pre_migrate Django's
                             migrations need when a run applies some)
TABLEMIGRATE_TEST_MIGRATIONS build the test database by running the history instead of from the
                             models (default: False; see tablemigrate.testing)
TABLEMIGRATE_ONLINE_REBUILD_ROWS  in WAL mode, rebuild tables of at least this many rows in short
                             transactions while the application keeps writing (default: 50000; None:
                             never; see tablemigrate.run.online)
TABLEMIGRATE_ONLINE_REBUILD_SECONDS  how long such a copy may take before it gives up, keeping every
                             write and dropping what it made (default: None, no time bound; a copy that
                             cannot catch up with the application's appends gives up anyway, after
                             copying three times the rows the table had: online.CATCH_UP_FACTOR)
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import connections

from .errors import ConfigurationError


def migrations_dir(alias: str = "default") -> Path:
    """The directory of `alias`'s migration modules.

    TABLEMIGRATE_MIGRATIONS_DIR is one directory for every alias, or a dict {alias: directory} when the
    aliases hold different models (routers)."""
    configured = getattr(settings, "TABLEMIGRATE_MIGRATIONS_DIR", None)
    if isinstance(configured, dict):
        if alias not in configured:
            raise ConfigurationError(f"database {alias!r} has no tablemigrate history: TABLEMIGRATE_MIGRATIONS_DIR "
                                     f"names a directory for {', '.join(map(repr, configured)) or 'no alias'} only")
        return Path(configured[alias])
    if configured:
        return Path(configured)
    base = getattr(settings, "BASE_DIR", None)
    if base is None:
        raise ConfigurationError("set TABLEMIGRATE_MIGRATIONS_DIR (or BASE_DIR) in your settings")
    return Path(base) / "tablemigrations"


def history_aliases() -> list[str]:
    """The aliases TABLEMIGRATE_MIGRATIONS_DIR's dict names, in its order ([] when it is one directory)."""
    configured = getattr(settings, "TABLEMIGRATE_MIGRATIONS_DIR", None)
    return [alias for alias in configured if alias in settings.DATABASES] if isinstance(configured, dict) else []


def existing_migrations_dir(alias: str = "default") -> Path:
    """The migrations directory, which `run`, `show`, `revert` and `stats` need to exist."""
    directory = migrations_dir(alias)
    if not directory.is_dir():
        raise ConfigurationError(f"migrations directory {directory} does not exist; create the first migrations "
                                 "with `manage.py tablemigrate generate` (or set TABLEMIGRATE_MIGRATIONS_DIR)")
    return directory


def backup_dir() -> Path | None:
    configured = getattr(settings, "TABLEMIGRATE_BACKUP_DIR", None)
    return Path(configured) if configured else None


def keep_backups() -> int:
    return int(getattr(settings, "TABLEMIGRATE_KEEP_BACKUPS", 5))


def busy_timeout() -> float:
    return float(getattr(settings, "TABLEMIGRATE_BUSY_TIMEOUT", 30))


def post_migrate() -> bool:
    return bool(getattr(settings, "TABLEMIGRATE_POST_MIGRATE", True))


def online_rebuild_seconds() -> float | None:
    value = getattr(settings, "TABLEMIGRATE_ONLINE_REBUILD_SECONDS", None)
    return None if value is None else float(value)


def sqlite_alias(alias: str) -> str:
    """Check that `alias` exists and is SQLite (without importing another backend's driver)."""
    if alias not in settings.DATABASES:
        raise ConfigurationError(f"unknown database alias {alias!r} (not in settings.DATABASES)")
    engine = settings.DATABASES[alias].get("ENGINE", "")
    try:
        vendor = connections[alias].vendor
    except Exception:  # the backend's driver may not even be installed
        vendor = "unknown"
    if vendor != "sqlite":
        raise ConfigurationError(
            f"database {alias!r} uses {engine or 'no ENGINE'}; tablemigrate works only with SQLite")
    return alias
