"""Backups: take and verify, restore, retention, named snapshots, the database identity."""
