#!/usr/bin/env bash
# Postgres and Redis on localhost are prerequisites (README). Start them when they are
# installed here but stopped; otherwise say exactly what is missing.
set -euo pipefail
PGHOST=${CHORUS_PGHOST:-127.0.0.1}
PGPORT=${CHORUS_PGPORT:-5432}
REDIS_PORT=${CHORUS_REDIS_PORT:-6379}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if ! port_open "$PGHOST" "$PGPORT"; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "[chorus] starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do port_open "$PGHOST" "$PGPORT" && break; sleep 0.5; done
  fi
  port_open "$PGHOST" "$PGPORT" || {
    echo "[chorus] PostgreSQL is not reachable on $PGHOST:$PGPORT (see README: prerequisites)" >&2
    exit 1
  }
fi

if ! port_open 127.0.0.1 "$REDIS_PORT"; then
  if command -v redis-server >/dev/null; then
    echo "[chorus] starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no || true
    for _ in $(seq 1 30); do port_open 127.0.0.1 "$REDIS_PORT" && break; sleep 0.5; done
  fi
  port_open 127.0.0.1 "$REDIS_PORT" || {
    echo "[chorus] Redis is not reachable on 127.0.0.1:$REDIS_PORT (see README: prerequisites)" >&2
    exit 1
  }
fi
