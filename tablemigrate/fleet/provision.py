"""`provision`: a new database for an alias at the cost of a file copy, from a proved template.

The template is what a first `run` builds on a new file for the alias: the `run` command itself, with the
alias pointed at a temporary file (tablemigrate.fleet.members), so the history goes through the runner,
Django's migrations of the other apps through Django's executor, and post_migrate writes its content types
and permissions as `run` sends them. Before it is kept it is proved: `PRAGMA integrity_check` is ok, and
its tables and indexes (read by tablemigrate.sqlite.introspect) are exactly the ones Django builds from the
current models of the apps tablemigrate owns (database B of `generate`): models changed without a
migration refuse it. It is kept in `<backups directory>/templates/` (private, 0700), named by a key of
everything that decides its content and by its schema's fingerprint, written atomically (temporary file,
fsync, rename): another key is another file, so a change of the modules, Django's migrations, the models or
tablemigrate builds a new one, and a provisioner never sees half of one.

A provisioned file is a copy of the template made beside the new path, synced, checked (its schema's
fingerprint is the template's, `PRAGMA quick_check` is ok) and linked into place without clobbering
anything: an existing path is refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import io
import os
import re
import secrets
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import django
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.db.migrations.loader import MigrationLoader

from tablemigrate import __version__, conf
from tablemigrate.errors import ConfigurationError, TablemigrateError
from tablemigrate.generate.pipeline import models_schema
from tablemigrate.history.loader import checksum, history_checksum, recorded_files
from tablemigrate.project.build import (
    connect,
    foreign_tables,
    managed_models,
    model_sql,
    private_database,
    table_models,
)
from tablemigrate.project.ownership import ownership
from tablemigrate.sqlite import litefs
from tablemigrate.sqlite.cache import is_private
from tablemigrate.sqlite.introspect import IDENTITY_TABLE, introspect, sql_made_tables
from tablemigrate.sqlite.schema import table_digest

from .members import Member, pointed_at

#: Bump when what goes into a template changes in a way the key does not see: older templates are rebuilt.
KEY_FORMAT = 1
#: A template's file name ends so; never `.sqlite3`, so that no TABLEMIGRATE_FLEET glob takes it for a database.
SUFFIX = ".template"
#: Files SQLite keeps beside a database: a new database at a path that has one would read it.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Template:
    """A template: its file, its schema's fingerprint (`Schema.fingerprint`), whether this call built it
    (False: an earlier call did, for the same key), and whether it is kept (False: the templates directory
    is not private or not writable; it was built beside the new database for this call only)."""

    path: Path
    schema: str
    built: bool
    kept: bool = True


@dataclass(frozen=True)
class Provisioned:
    path: Path
    template: Template


def provision(path: str | os.PathLike[str], alias: str = "default") -> Path:
    """A new database file at `path` for `alias` (a copy of its template, built first when needed); its
    absolute path. Refuses an existing `path` (ConfigurationError, exit 2): never overwrites."""
    return provisioned(path, alias).path


def provisioned(path: str | os.PathLike[str], alias: str = "default") -> Provisioned:
    """`provision`, saying which template it copied and whether it was built now."""
    target = _new_path(path)
    alias = conf.sqlite_alias(alias)
    _not_litefs(target)
    made = template(alias, target.parent)
    try:
        _install(made, target)
    finally:
        if not made.kept:
            _remove(made.path)
    return Provisioned(target, made)


def _new_path(path: str | os.PathLike[str]) -> Path:
    """`path`, absolute, refused when anything is there (or a journal SQLite would read) or its directory is
    missing."""
    target = Path(os.path.abspath(os.fspath(path)))
    if os.path.lexists(target):
        raise ConfigurationError(f"{target} already exists: provision never overwrites a file; nothing was changed")
    for side in SQLITE_SIDE_FILES:
        if os.path.lexists(f"{target}{side}"):
            raise ConfigurationError(f"{target}{side} exists (left by a database deleted without it?): SQLite would "
                                     "read it into the new database; remove it first; nothing was changed")
    if not target.parent.is_dir():
        raise ConfigurationError(f"directory {target.parent} does not exist; nothing was changed")
    return target


def _not_litefs(target: Path) -> None:
    """Under LiteFS, before anything is built or written: on a replica exit 6, as `run` (only the primary
    writes); in a LiteFS mount exit 2: a copy of the template is bytes written past SQLite's journal, which
    LiteFS does not replicate as a transaction, and its scratch file would be taken for a new database."""
    litefs.refuse_on_replica(target)
    mount = litefs.mount_of(target.parent)
    if mount is not None:
        raise ConfigurationError(f"{target} is in a LiteFS mount ({mount}): provision copies a file, which LiteFS "
                                 "does not replicate; create the database through SQLite instead (`tablemigrate run` "
                                 "or `migrate` on an alias whose NAME is the file); nothing was changed")


# --- the template ------------------------------------------------------------------------------------

def template_key(alias: str) -> str:
    """A hash of everything that decides what a first `run` builds for `alias`: the module files, the Django
    migrations of the apps tablemigrate does not own, the DDL Django gives the models that get a table on
    `alias`, what post_migrate's content types and permissions are made from, the alias's OPTIONS, and the
    versions of tablemigrate, Django and SQLite."""
    own = ownership()
    with private_database() as wrapper:
        ddl = sorted(model_sql(wrapper, table_models(alias)))
    parts = (
        KEY_FORMAT, __version__, django.__version__, sqlite3.sqlite_version,
        history_checksum(recorded_files(conf.migrations_dir(alias))),
        _django_migrations(own.django),
        sorted(own.owned),
        ddl,
        sorted((m._meta.label_lower, str(m._meta.verbose_name_raw), tuple(m._meta.default_permissions),
                repr(m._meta.permissions)) for m in apps.get_models()),
        repr(sorted((str(k), repr(v)) for k, v in (settings.DATABASES[alias].get("OPTIONS") or {}).items())),
        conf.post_migrate(),  # off: `run` sends no post_migrate, so the template has no content types
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _django_migrations(labels: frozenset[str]) -> list[tuple[str, str, str]]:
    """(app, file, checksum) of every Django migration module of these apps, found where Django's loader
    looks (MIGRATION_MODULES included)."""
    found = []
    for label in sorted(labels):
        name, _explicit = MigrationLoader.migrations_module(label)
        try:
            spec = importlib.util.find_spec(name) if name else None
        except (ImportError, ValueError):
            spec = None
        for directory in (spec.submodule_search_locations or []) if spec else []:
            found += [(label, p.name, checksum(p.read_bytes())) for p in sorted(Path(directory).glob("*.py"))]
    return found


def templates_dir(alias: str, near: Path) -> Path:
    """Where `alias`'s templates are kept: `templates/` in the backups directory (TABLEMIGRATE_BACKUP_DIR,
    else `backups/` beside the alias's database file, else beside `near` for an alias in memory)."""
    configured = conf.backup_dir()
    if configured is None:
        wrapper = connections[alias]
        name = wrapper.settings_dict.get("NAME")
        base = near if wrapper.is_in_memory_db() or not name else Path(os.path.abspath(str(name))).parent
        configured = base / "backups"
    return configured / "templates"


def _stem(alias: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", alias)


def template(alias: str, near: Path) -> Template:
    """`alias`'s template for the current key: the kept one, or one built (and kept when the templates
    directory can be made private to this user; otherwise built for this call only, in `near`)."""
    key = template_key(alias)
    directory = templates_dir(alias, near)
    prefix = f"{_stem(alias)}-{key[:32]}-"
    with contextlib.suppress(OSError):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    keep = is_private(directory / "x")
    if keep:
        for found in sorted(directory.glob(prefix + "*" + SUFFIX)):
            return Template(found, found.name[len(prefix):-len(SUFFIX)], built=False)
    built = _build(alias, directory if keep else near, prefix, keep)
    if keep:
        mine = re.compile(re.escape(_stem(alias)) + r"-[0-9a-f]{32}-[^-]+" + re.escape(SUFFIX))
        for old in directory.glob(f"{_stem(alias)}-*{SUFFIX}"):  # not `tenant-eu`'s when the alias is `tenant`
            if mine.fullmatch(old.name) and old.name != built.path.name and not old.name.startswith(prefix):
                with contextlib.suppress(OSError):  # another process may be copying it (Windows: in use)
                    old.unlink()
    return built


def _scratch(directory: Path, stem: str) -> Path:
    """A new name in `directory` that no glob of `*.sqlite3` takes."""
    return directory / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _remove(path: Path) -> None:
    for name in (str(path), *(f"{path}{side}" for side in (*SQLITE_SIDE_FILES, ".tablemigrate.lock"))):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _build(alias: str, directory: Path, prefix: str, keep: bool) -> Template:
    """Run a first `run` for `alias` on a new file, prove it, and rename it to its kept name."""
    tmp = _scratch(directory, prefix.rstrip("-"))
    try:
        _first_run(alias, tmp)
        conn = connect(str(tmp), isolation_level=None)
        try:
            if not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                conn.execute("VACUUM")  # `run` had nothing to do and made no file: an empty database
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            # Made before a database's first backup (backups/identity.py): a new database has none of its own.
            conn.execute(f'DROP TABLE IF EXISTS "{IDENTITY_TABLE}"')
            problem = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if problem != "ok":
                raise TablemigrateError(f"the template built for database {alias!r} fails integrity_check "
                                        f"({problem}); nothing was provisioned")
            schema = _proved(alias, conn)
        finally:
            conn.close()
        os.chmod(tmp, 0o600)  # as a backup: the copies get the mode SQLite gives a new file
        _fsync(tmp)
        if not keep:  # a name of its own: another provisioner may build one beside it at the same time
            os.replace(tmp, tmp.with_name(tmp.name + SUFFIX))
            return Template(tmp.with_name(tmp.name + SUFFIX), schema, built=True, kept=False)
        final = tmp.with_name(f"{prefix}{schema}{SUFFIX}")
        try:
            os.replace(tmp, final)
        except OSError:  # Windows: another provisioner is copying the one it built for this key
            if not final.is_file():
                raise
        _fsync(directory)
        return Template(final, schema, built=True)
    finally:
        _remove(tmp)


def _first_run(alias: str, path: Path) -> None:
    """`manage.py tablemigrate run --database ALIAS` on the new file `path`, quietly (no backup: there is
    nothing to lose)."""
    out = io.StringIO()
    try:
        with pointed_at(Member(f"{alias}:{path}", alias, str(path))):
            call_command("tablemigrate", "run", "--noinput", "--no-backup", "--database", alias, verbosity=0,
                         stdout=out, stderr=out)
    except CommandError as exc:
        raise CommandError(f"building the template for database {alias!r}, `run` failed: {exc}",
                           returncode=exc.returncode) from exc


def _proved(alias: str, conn: sqlite3.Connection) -> str:
    """The fingerprint of the template's schema, once its tables are proved to be the models' (those of the
    apps tablemigrate owns, as `generate` compares them; the other apps' are their Django migrations')."""
    schema = introspect(conn)
    sql_made = frozenset(sql_made_tables(conn))
    built = schema.without(foreign_tables(alias) | sql_made).tables
    models = models_schema(managed_models(alias)).without(sql_made).tables
    differ = sorted(k for k in built.keys() | models.keys()
                    if k not in built or k not in models or table_digest(built[k]) != table_digest(models[k]))
    if differ:
        more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
        raise ConfigurationError(f"the models of database {alias!r} differ from its migration history in "
                                 f"{', '.join(differ[:5])}{more}: run `manage.py tablemigrate generate` first; "
                                 "nothing was provisioned")
    return schema.fingerprint()


def _fsync(path: Path) -> None:
    """Flush `path` (a file, or a directory after a rename in it; not possible on Windows: skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- a copy of it --------------------------------------------------------------------------------------

def _install(kept: Template, target: Path) -> None:
    """Copy the template beside `target`, sync and check the copy, and link it into place."""
    tmp = _scratch(target.parent, target.name)
    try:
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            shutil.copyfile(kept.path, tmp)
            with open(tmp, "r+b") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, _sqlite_file_mode())
        except OSError as exc:
            raise _refusal(target, exc) from None
        _check_copy(tmp, kept)
        _link(tmp, target)
    finally:
        _remove(tmp)
    _fsync(target.parent)


def _sqlite_file_mode() -> int:
    """The mode SQLite gives a new database file (0644 less the umask), as `run` on a new file leaves it;
    0600 where the umask cannot be read without changing it (only Linux says it: /proc/self/status)."""
    try:
        with open("/proc/self/status") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return 0o600
    return 0o644 & ~umask


def _refusal(target: Path, exc: OSError) -> TablemigrateError:
    """One line for a file that could not be written; nothing is left behind."""
    why = f"cannot write in {target.parent} ({exc.strerror or exc}); nothing was provisioned"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ConfigurationError(why)
    return TablemigrateError(why)


def _check_copy(tmp: Path, kept: Template) -> None:
    conn = connect(str(tmp))
    try:
        problem = conn.execute("PRAGMA quick_check").fetchone()[0]
        schema = introspect(conn).fingerprint()
    finally:
        conn.close()
    if problem != "ok" or schema != kept.schema:
        raise TablemigrateError(f"the copy of the template {kept.path} is not the template "
                                f"({'quick_check: ' + problem if problem != 'ok' else 'another schema'}); delete "
                                "the template to have it built again; nothing was provisioned")


def _link(tmp: Path, target: Path) -> None:
    """Give `tmp` the name `target`, which must not exist: a hard link (fails when the name is taken), or
    where the file system has none, the name claimed first (O_EXCL) and the copy renamed over the claim."""
    try:
        os.link(tmp, target)
        return
    except FileExistsError:
        raise ConfigurationError(f"{target} appeared while it was being provisioned; left as it is, nothing "
                                 "was provisioned") from None
    except (OSError, AttributeError) as exc:
        if isinstance(exc, OSError) and exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                                                          errno.EMLINK, errno.ENOSYS):
            raise _refusal(target, exc) from None
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        raise ConfigurationError(f"{target} appeared while it was being provisioned; left as it is, nothing "
                                 "was provisioned") from None
    except OSError as exc:
        raise _refusal(target, exc) from None
    try:
        os.replace(tmp, target)
    except OSError as exc:
        os.unlink(target)
        raise _refusal(target, exc) from None
