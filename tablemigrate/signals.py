"""Hooks: the signals sent around a run and around each migration.

Receivers get keyword arguments:

pre_run / post_run:             database, direction ('up' or 'down'), migrations (names), error (post only)
pre_migration / post_migration: database, name, direction, duration (post only), error (post only)

`error` is None on success, else the exception: a KeyboardInterrupt when Ctrl-C, or SIGTERM (which
`manage.py tablemigrate` turns into one while a writing command runs), stopped the work.
"""

from django.dispatch import Signal

pre_run = Signal()
post_run = Signal()
pre_migration = Signal()
post_migration = Signal()
