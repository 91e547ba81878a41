"""The parts of `manage.py tablemigrate`: the Command (tablemigrate.management.commands.tablemigrate)
is a thin dispatcher mixing in the handlers and helpers defined here."""
