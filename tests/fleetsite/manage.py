#!/usr/bin/env python
"""manage.py of the fleet fixture project (tests/test_fleet.py runs it in a subprocess)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
