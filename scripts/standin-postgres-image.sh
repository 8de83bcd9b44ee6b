#!/usr/bin/env bash
# Provides a local stand-in for the official `postgres:15` image on machines where no
# registry is reachable (see shared/docs/container-engine.md, section 3), so
# deploy/compose.yaml comes up unchanged in the tests: a Debian 12 root filesystem
# (PostgreSQL 15 there) built by mmdebstrap and imported under the official tag, with the
# part of the official image's contract that deploy/compose.yaml relies on:
#   - POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB create the superuser and database on
#     first start, into PGDATA=/var/lib/postgresql/data (a volume keeps it across starts);
#   - other hosts authenticate with scram-sha-256, local socket connections are trusted;
#   - the server runs as the `postgres` user, stops fast on SIGINT, `pg_isready` on PATH.
# Real deployments pull the official image; nothing may depend on this beyond its tag.
# Caching, idempotence and output: scripts/standin-lib.sh.
set -euo pipefail

IMAGE=docker.io/library/postgres:15
PACKAGES=postgresql-15
ENTRYPOINT='#!/bin/sh
# Stand-in for the official image entrypoint (scripts/standin-postgres-image.sh).
set -eu
bin=/usr/lib/postgresql/15/bin
[ "${1:-}" = postgres ] || exec "$@"
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    pwfile=$(mktemp)
    printf "%s" "$POSTGRES_PASSWORD" > "$pwfile"
    "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\" OWNER \"$user\";" \
            | "$bin/postgres" --single -D "$PGDATA" -j postgres >/dev/null
    fi
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses="*"'
HOOK='rm -rf "$1"/var/lib/postgresql/15 "$1"/etc/postgresql/15
cat > "$1"/usr/local/bin/docker-entrypoint.sh <<'"'"'EOF'"'"'
'"$ENTRYPOINT"'
EOF
chmod 755 "$1"/usr/local/bin/docker-entrypoint.sh'
# Changing the recipe changes the key: the tarball is rebuilt.
KEY=$(printf '%s\n%s\n' "$PACKAGES" "$HOOK" | sha256sum | cut -c1-12)
. "$(dirname "$0")/standin-lib.sh"
standin_image "$IMAGE" postgres "$PACKAGES" "$HOOK" "$KEY" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'VOLUME /var/lib/postgresql/data' \
    --change 'STOPSIGNAL SIGINT' \
    --change 'EXPOSE 5432' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]'
