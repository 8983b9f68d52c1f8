#!/usr/bin/env bash
# Make sure the PostgreSQL server the tests use is up on 127.0.0.1:5432 (Debian's pg_ctlcluster).
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is not running on 127.0.0.1:5432 and pg_ctlcluster is missing." >&2
  echo "Install it with: apt-get install -y postgresql   (then re-run)" >&2
  exit 1
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
echo "starting PostgreSQL $version ..." >&2
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && exit 0
  sleep 1
done
echo "PostgreSQL did not become ready on 127.0.0.1:5432" >&2
exit 1
