#!/usr/bin/env python
"""manage.py of the dj-lite-tenant fixture project (tests/test_dj_lite_tenant.py runs it in a subprocess)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djltsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
