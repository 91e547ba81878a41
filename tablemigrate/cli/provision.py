"""`provision`: a new database file for an alias, a copy of its template (fleet/provision.py)."""

from __future__ import annotations

from typing import Any

from tablemigrate import conf

from .parts import CommandParts


class ProvisionCommands(CommandParts):
    """The handler, mixed into the Command."""

    def handle_provision(self, options: dict[str, Any]) -> None:
        from tablemigrate.fleet.provision import provisioned

        done = provisioned(options["path"], conf.sqlite_alias(options["database"]))
        made = done.template
        how = ("built now" if made.built else "kept from an earlier provision") if made.kept else \
            f"built for this copy only: {made.path.parent} is not a private directory tablemigrate can write"
        self._say(self.style.SUCCESS(f"Provisioned {done.path} for database {options['database']!r}") +
                  f" from its template {made.path.name} ({how}); schema and quick_check checked")
