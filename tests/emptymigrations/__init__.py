"""An empty migrations package, as `manage.py startapp` makes one (tests/test_ownership.py)."""
