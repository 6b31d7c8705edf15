#!/usr/bin/env sh
# Start the local services the suite talks to if they are not running (CI machine and dev boxes alike).
set -u
if command -v pg_isready >/dev/null 2>&1; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        echo "services: starting PostgreSQL" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    pg_isready -h 127.0.0.1 -p 5432 >&2 || echo "services: PostgreSQL is not up; its tests will fail under CI=true" >&2
fi
exit 0
