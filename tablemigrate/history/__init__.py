"""The migration history: module files, the history table, their status, schema.sql."""
