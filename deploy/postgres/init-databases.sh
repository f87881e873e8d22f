#!/usr/bin/env bash
# Runs once, on the first start of an empty Postgres data directory
# (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
# One database per service that has one (analytics keeps its state in ClickHouse): no service
# reads another service's database.
set -euo pipefail

databases=(
  chorus_gateway
  chorus_publishing
  chorus_connector
  chorus_listening
  chorus_inbox
  chorus_ai
)

for db in "${databases[@]}"; do
  exists="$(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '${db}'")"
  if [[ "$exists" != "1" ]]; then
    echo "init-databases: creating ${db}"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
      -c "CREATE DATABASE \"${db}\" OWNER \"${POSTGRES_USER}\""
  fi
done
