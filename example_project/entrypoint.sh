#!/bin/sh
# Container entrypoint: migrate first, start the app only if that succeeded.
#   0 = migrated (or nothing pending), 1 = a migration failed and the database was restored,
#   2 = configuration or migration-file error, 3 = another runner held the lock too long.
set -eu
cd "$(dirname "$0")/.."
python manage.py tablemigrate run --noinput || { echo "migration failed (exit $?); not starting" >&2; exit 1; }
exec "$@"
