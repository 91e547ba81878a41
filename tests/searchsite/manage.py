#!/usr/bin/env python
"""manage.py of the search fixture project (tests/test_sql_made_objects.py runs it in a subprocess)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
