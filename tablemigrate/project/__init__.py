"""The Django side: owned apps, other apps' Django migrations, database B from the models.

Also the models' fingerprint, Django's migration state for owned apps, and Django's historical
models for the data steps carried from the project's own Django migrations.
"""
