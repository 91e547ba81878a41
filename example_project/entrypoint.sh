#!/bin/sh
# Container entrypoint: migrate first, start the app only if that succeeded.
#   0 = migrated (or nothing pending), 1 = a migration failed and the database was restored,
#   2 = configuration or migration-file error, 3 = another runner held the lock too long,
#   130 / 143 = stopped by SIGINT / SIGTERM (`docker stop`): rolled back and restored cleanly.
set -eu
cd "$(dirname "$0")/.."
# As PID 1 this shell would not pass `docker stop`'s SIGTERM on (and ignores it itself): the migration
# would run on until the SIGKILL. The trap hands TERM/INT to it; it then rolls back, restores its backup
# and exits 143/130. (`wait` returns early when a trapped signal arrives: wait until it has really ended.)
python manage.py tablemigrate run --noinput &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT
while :; do
    status=0
    wait "$pid" || status=$?
    kill -0 "$pid" 2>/dev/null || break
done
trap - TERM INT
if [ "$status" -ne 0 ]; then
    echo "migration failed or was stopped (exit $status); not starting" >&2
    exit "$status"
fi
exec "$@"
