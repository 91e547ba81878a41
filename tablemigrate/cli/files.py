"""`snapshot`, `snapshots` and `restore`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tablemigrate import conf

from .parts import CommandParts


class FileCommands(CommandParts):
    """The handlers, mixed into the Command."""

    def handle_snapshot(self, options: dict[str, Any]) -> None:
        from tablemigrate.backups import snapshots

        snapshots.check_name(options["name"])  # before opening anything
        target = self._file_target(options)
        path = snapshots.take_snapshot(target.conn, target.backups_dir, options["name"])
        self._say(self.style.SUCCESS(f"Snapshot {options['name']} written to {path}"))

    def handle_snapshots(self, options: dict[str, Any]) -> None:
        from tablemigrate.backups import snapshots

        from .report import aligned

        db_path, backups_dir = self._paths(options)  # the listing needs no working database...
        entries = snapshots.listing(backups_dir, db_path)
        if not entries:
            self.stdout.write(f"No snapshots or backups in {backups_dir}")
        else:
            rows = [[e.kind, e.name, e.created, f"{e.size:,} B", e.last_migration or "(no migrations)"]
                    for e in entries]
            for line in aligned(["kind", "name", "taken (UTC)", "size", "last migration inside"], rows,
                                right={3}):
                self.stdout.write(line)
        # ...and is what a user reaches for when the database is damaged: list first, then say so.
        self._quick_check(self._file_target(options))

    def handle_restore(self, options: dict[str, Any]) -> None:
        from django.db import connections

        from tablemigrate.backups import backup, snapshots

        if options["name"] is not None:
            snapshots.check_name(options["name"])
        db_path, backups_dir = self._paths(options)
        if not db_path.exists():  # recovery of a lost file: refuse a bad source before creating it
            source = self._restore_source(options, backups_dir, db_path)
            try:
                backup.verify(source)
            except backup.BackupError as exc:
                raise snapshots.RestoreRefused(f"refusing to restore: {exc}; nothing was changed") from None
        target = self._file_target(options)
        source = self._restore_source(options, target.backups_dir, target.path)
        safety = snapshots.restore(target.conn, target.path, source, target.backups_dir, conf.busy_timeout(),
                                   allow_other_database=options["from_other_database"])
        connections[target.alias].close()  # the last connection closing removes the -wal and -shm files
        self._say(self.style.SUCCESS(f"Restored {source}; the previous state was saved to {safety}"))

    @staticmethod
    def _restore_source(options: dict[str, Any], backups_dir: Path, db_path: Path) -> Path:
        from tablemigrate.backups import snapshots

        if options["name"] is not None:  # this database's snapshot of that name (taken here or before a move)
            return snapshots.find_snapshot(backups_dir, options["name"], db_path)
        return snapshots.resolve_backup(backups_dir, options["backup"])
