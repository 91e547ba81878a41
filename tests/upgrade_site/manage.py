#!/usr/bin/env python
"""manage.py of the package-upgrade test site (tests/test_package_upgrade.py runs it in a subprocess)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "upgrade_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
