#!/bin/sh
# Starts the cluster made at build time. The password comes from POSTGRES_PASSWORD and is set in
# single-user mode before the server listens, so no client ever sees the cluster without one; it
# goes to PostgreSQL on standard input, never as an argument.
set -eu
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "fivehundred-postgres: POSTGRES_PASSWORD is not set" >&2
  exit 2
fi
escaped=$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")
printf "ALTER ROLE postgres PASSWORD '%s';\n" "$escaped" \
  | "$PGBIN/postgres" --single -D "$PGDATA" postgres >/dev/null
unset POSTGRES_PASSWORD escaped
exec "$PGBIN/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
