"""Migration modules from disk: discovery, loading, validation, checksums.

A module is plain Python. It defines `up` (required) and `down` (optional: without it the migration
cannot be reverted), each either a list of SQL strings / `Operation` objects or a function taking the
sqlite3 connection. Optional: `table`, `label`, `destructive` (list of reasons), `down_destructive`.
"""

from __future__ import annotations

import ast
import hashlib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from tablemigrate.errors import MigrationFileError
from tablemigrate.operations import Operation, RunPython

Step = Union[str, Operation]

SNAPSHOT_NAME = "schema.sql"
#: The folder of the migrations directory `squash` moves the modules a checkpoint replaces into
#: (`squashed/<checkpoint>/`): not migration modules any more (only `*.py` files of the directory itself are).
SQUASHED_DIR = "squashed"

#: The module format `generate` writes (docs/modules.md).
MODULE_FORMAT = 1
#: The format of a module that renames a model (`model_renames`).
MODEL_RENAMES_FORMAT = 2
#: The format of a module that fills a unique column row by row (`FillColumn(..., per_row=True)`).
PER_ROW_FORMAT = 3
#: The format of a checkpoint (`replaces`, written by `squash`), and the newest this version reads: an older
#: tablemigrate refuses it with "newer than this tablemigrate reads" instead of applying it over the tables
#: the modules it replaces made.
CHECKPOINT_FORMAT = 4


@dataclass(frozen=True)
class Replaced:
    """A module a checkpoint replaces: its name, and the checksums a database may have recorded for it
    (the file's, then the earlier versions it accepted: `previous_checksums`)."""

    name: str
    checksums: tuple[str, ...]


@dataclass
class Migration:
    name: str  # file stem: sorting by name is applying order
    up: list[Step]
    down: list[Step] | None
    table: str | None = None
    label: str = ""
    destructive: list[str] = field(default_factory=list)
    down_destructive: list[str] = field(default_factory=list)
    checksum: str = ""
    path: Path | None = None
    doc: str = ""
    module_format: int = 0  # 0: written before formats were numbered, or by hand
    before: dict[str, Any] | None = None  # the table's shape before `up` (shapes.py)
    after: dict[str, Any] | None = None  # ... and after it
    # Checksums of earlier versions of this file that databases may have recorded: an intentional edit
    # of an applied module, accepted in the module itself (docs/modules.md).
    previous_checksums: list[str] = field(default_factory=list)
    accepted_checksum: str | None = None  # `body_checksum` of the version those edits were accepted for
    # False: the steps run outside a transaction, each statement on its own (VACUUM, some PRAGMAs), as
    # Django's `atomic = False`; a failure leaves the completed ones, so `run` restores the backup.
    atomic: bool = True
    # Written by `baseline` into the last of the first modules (the adoption point): the Django migrations
    # of the owned apps that the adopted database had applied, as (app, name). None in any other module.
    adoption_point: tuple[tuple[str, str], ...] | None = None
    # The models it renames, (app label, old model name, new model name), lower-case: `run` renames their
    # content types in the module's transaction (`revert`: back), as Django's RenameContentType does.
    model_renames: list[tuple[str, str, str]] = field(default_factory=list)
    # A checkpoint (`squash`): the modules, in apply order, whose schema its `up` creates at once. A database
    # that recorded every one of them records the checkpoint instead, and applies nothing.
    replaces: list[Replaced] = field(default_factory=list)

    def steps(self, direction: str) -> list[Step]:
        if direction == "up":
            return self.up
        if self.down is None:
            raise MigrationFileError(f"{self.name} has no `down`: it cannot be reverted")
        return self.down


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def migration_files(directory: Path) -> list[Path]:
    """Migration modules in apply order: by name (the file stem, what the history table records), as
    plain string comparison. A missing directory means no history yet."""
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.glob("*.py") if not p.name.startswith(("_", "."))), key=lambda p: p.stem)


def _steps(value: Any, where: str, attr: str) -> list[Step]:
    if callable(value) and not isinstance(value, Operation):
        return [RunPython(value)]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise MigrationFileError(
            f"{where}: `{attr}` must be a list of SQL strings/operations or a function, "
            f"not {type(value).__name__}")
    steps: list[Step] = []
    for i, item in enumerate(value, 1):
        if isinstance(item, (str, Operation)):
            steps.append(item)
        elif callable(item):
            steps.append(RunPython(item))
        else:
            raise MigrationFileError(
                f"{where}: item {i} of `{attr}` is a {type(item).__name__}, expected an SQL string, "
                "an operation or a function")
    return steps


def _reasons(value: Any, where: str, attr: str) -> list[str]:
    if value in (None, False):
        return []
    if value is True:
        return ["marked destructive"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise MigrationFileError(f"{where}: `{attr}` must be a list of strings")


def _error_line(exc: BaseException, filename: str) -> int | None:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == filename:
            return frame.lineno
    return None


def load_source(source: bytes, name: str, path: Path | None = None) -> Migration:
    where = str(path) if path else name
    namespace: dict[str, Any] = {"__name__": f"tablemigrations.{name}", "__file__": where}
    try:
        code = compile(source, where, "exec")
    except SyntaxError as exc:
        raise MigrationFileError(f"{where}:{exc.lineno}: syntax error: {exc.msg}") from None
    except ValueError as exc:  # e.g. source with NUL bytes
        raise MigrationFileError(f"{where}: cannot be compiled: {exc}") from None
    try:
        exec(code, namespace)
    except Exception as exc:  # a module's own code failed; report where, keep the message
        line = _error_line(exc, where)
        at = f"{where}:{line}" if line else where
        raise MigrationFileError(f"{at}: error while loading: {type(exc).__name__}: {exc}") from None
    if "up" not in namespace:
        raise MigrationFileError(f"{where}: defines no `up`")
    table = namespace.get("table")
    if table is not None and not isinstance(table, str):
        raise MigrationFileError(f"{where}: `table` must be a string")
    label = namespace.get("label") or ""
    if not isinstance(label, str):
        raise MigrationFileError(f"{where}: `label` must be a string")
    down = namespace.get("down")
    module_format = namespace.get("module_format", 0)
    if not isinstance(module_format, int) or isinstance(module_format, bool) or module_format < 0:
        raise MigrationFileError(f"{where}: `module_format` must be a whole number")
    if module_format > CHECKPOINT_FORMAT:
        raise MigrationFileError(f"{where}: module format {module_format} is newer than this tablemigrate reads "
                                 f"(up to {CHECKPOINT_FORMAT}): upgrade tablemigrate")
    atomic = namespace.get("atomic", True)
    if not isinstance(atomic, bool):
        raise MigrationFileError(f"{where}: `atomic` must be True or False")
    up_steps = _steps(namespace["up"], where, "up")
    down_steps = None if down is None else _steps(down, where, "down")
    if not atomic:
        for step in up_steps + (down_steps or []):
            if isinstance(step, Operation) and not isinstance(step, RunPython):
                raise MigrationFileError(f"{where}: {step!r} needs a transaction, and this module has `atomic = "
                                         "False`: put it in a module of its own")
    return Migration(
        name=name,
        up=up_steps,
        down=down_steps,
        atomic=atomic,
        table=table,
        label=label,
        destructive=_reasons(namespace.get("destructive"), where, "destructive"),
        down_destructive=_reasons(namespace.get("down_destructive"), where, "down_destructive"),
        checksum=checksum(source),
        path=path,
        doc=(namespace.get("__doc__") or "").strip(),
        module_format=module_format,
        previous_checksums=_checksums(namespace.get("previous_checksums"), where),
        accepted_checksum=_accepted(namespace.get("accepted_checksum"), where),
        before=_shape(namespace.get("before"), where, "before"),
        after=_shape(namespace.get("after"), where, "after"),
        adoption_point=_adoption_point(namespace.get("adoption_point"), where),
        model_renames=_model_renames(namespace.get("model_renames"), where, module_format),
        replaces=_replaces(namespace.get("replaces"), where, module_format),
    )


def _replaces(value: Any, where: str, module_format: int) -> list[Replaced]:
    """`replaces`: a list of (name, checksum, ...) tuples, checked. Only in a module of format 4 or later."""
    if value is None:
        return []
    if module_format < CHECKPOINT_FORMAT:
        raise MigrationFileError(f"{where}: `replaces` needs `module_format = {CHECKPOINT_FORMAT}` (an older "
                                 "tablemigrate then refuses the checkpoint instead of applying it)")
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(r, (list, tuple)) and len(r) >= 2 and isinstance(r[0], str) and r[0]
            and all(_is_checksum(c) for c in r[1:]) for r in value):
        raise MigrationFileError(f"{where}: `replaces` must be a non-empty list of (module name, checksum, ...) "
                                 "tuples, as `squash` writes it")
    return [Replaced(r[0], tuple(r[1:])) for r in value]


def _adoption_point(value: Any, where: str) -> tuple[tuple[str, str], ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in value):
        raise MigrationFileError(f"{where}: `adoption_point` must be a list of (app label, migration name) pairs")
    return tuple((app, name) for app, name in value)


def _model_renames(value: Any, where: str, module_format: int) -> list[tuple[str, str, str]]:
    """`model_renames`: a list of (app label, old model name, new model name), checked; lower-case. Only in
    a module of format 2 or later, which a tablemigrate that would ignore the field refuses."""
    if value is None:
        return []
    if module_format < MODEL_RENAMES_FORMAT:
        raise MigrationFileError(f"{where}: `model_renames` needs `module_format = {MODEL_RENAMES_FORMAT}` (an older "
                                 "tablemigrate then refuses the module instead of leaving its content types behind)")
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(r, (list, tuple)) and len(r) == 3 and all(isinstance(n, str) and n.isidentifier() for n in r)
            and r[1].lower() != r[2].lower() for r in value):
        raise MigrationFileError(f"{where}: `model_renames` must be a list of (app label, old model name, new model "
                                 "name), each an identifier, the two names different: [('blog', 'category', 'topic')]")
    return [(app, old.lower(), new.lower()) for app, old, new in value]


def _is_checksum(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _accepted(value: Any, where: str) -> str | None:
    if value is not None and not _is_checksum(value):
        raise MigrationFileError(f"{where}: `accepted_checksum` must be a SHA-256 checksum (64 lower-case hex "
                                 "digits), as the refusal prints it")
    return value


def body_checksum(source: bytes) -> str:
    """The checksum of a module without its `previous_checksums` and `accepted_checksum` assignments
    (their whole lines): what an acceptance names, so that writing the acceptance into the module does
    not change it, and any other edit does."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return checksum(source)
    drop: set[int] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id in ("previous_checksums", "accepted_checksum") for t in targets):
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines = source.splitlines(keepends=True)
    return checksum(b"".join(line for number, line in enumerate(lines, 1) if number not in drop))


def _checksums(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(_is_checksum(v) for v in value):
        raise MigrationFileError(f"{where}: `previous_checksums` must be a list of SHA-256 checksums (64 "
                                 "lower-case hex digits each), as `show` prints them")
    return list(value)


def _shape(value: Any, where: str, attr: str) -> dict[str, Any] | None:
    """A table shape as a module records it (shapes.py), checked; None when absent."""
    if value is None:
        return None
    if (not isinstance(value, dict) or not isinstance(value.get("table"), str)
            or not isinstance(value.get("fingerprint"), str)
            or not isinstance(value.get("columns"), (list, tuple))
            or not all(isinstance(c, str) for c in value["columns"])):
        raise MigrationFileError(f"{where}: `{attr}` must be a dict with `table` (a string), `columns` (a list "
                                 "of strings) and `fingerprint` (a string)")
    shape = {"table": value["table"], "columns": list(value["columns"]), "fingerprint": value["fingerprint"]}
    for key in ("types", "references"):  # for the refusal's words only
        listed = value.get(key)
        if listed is not None:
            if not isinstance(listed, (list, tuple)) or not all(isinstance(r, str) for r in listed):
                raise MigrationFileError(f"{where}: `{attr}['{key}']` must be a list of strings")
            shape[key] = list(listed)
    return shape


def load_migration(path: Path) -> Migration:
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise MigrationFileError(f"{path}: cannot be read: {exc.strerror}") from None
    return load_source(source, path.stem, path)


def load_migrations(directory: Path) -> list[Migration]:
    return [load_migration(p) for p in migration_files(directory)]


@dataclass(frozen=True)
class Recorded:
    """A history entry known by name and checksum only (its module is not imported)."""

    name: str
    checksum: str


def recorded_files(directory: Path) -> list[Recorded]:
    """The migration files as `history_checksum` reads them, without importing any."""
    return [Recorded(p.stem, checksum(p.read_bytes())) for p in migration_files(directory)]


def history_checksum(migrations: list) -> str:
    """One hash of the whole history (names and contents), used by the schema snapshot file. Takes
    anything with `name` and `checksum` (loaded migrations, or entries known only by their files)."""
    return checksum("\n".join(f"{m.name} {m.checksum}" for m in migrations).encode())

