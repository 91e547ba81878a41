"""tablemigrate: per-table, diff-based schema migrations for Django on SQLite."""

__version__ = "0.3.0.dev0"
