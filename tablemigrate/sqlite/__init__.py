"""The SQLite foundation: SQL text, the schema model, introspection, transactions, the rebuild.

The tokenizer and the one reader of CREATE statements, the one 12-step table rebuild and the one
sqlite_schema edit, the schema model and its diff into typed changes. Nothing here knows the
project's models or its migration history.
"""
