"""tablemigrate: per-table, diff-based schema migrations for Django on SQLite."""

__version__ = "0.1.0"
