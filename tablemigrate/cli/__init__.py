"""The parts of `manage.py tablemigrate`: its handlers and the helpers they share.

The Command (tablemigrate.management.commands.tablemigrate) is a thin dispatcher mixing in the handlers
and helpers defined here.
"""
