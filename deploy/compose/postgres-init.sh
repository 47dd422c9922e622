#!/bin/sh
# PostgreSQL for docker-compose.yml: one database per PolyScale store, each
# owned by a role of its own that is no superuser, and closed to the other
# roles. The role is what confines a component's SQL (docs/operations.md,
# PostgreSQL), and the credentials store stays apart from the account
# database.
#
# The postgres image runs this once, on an empty data volume
# (/docker-entrypoint-initdb.d). Role polyscale_NAME owns database NAME;
# every role's password is POLYSCALE_DB_PASSWORD.
set -eu

: "${POLYSCALE_DB_PASSWORD:?POLYSCALE_DB_PASSWORD must be set}"

for db in components product account credentials order; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v db="$db" -v role="polyscale_$db" -v password="$POLYSCALE_DB_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE :"db" OWNER :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
  echo "polyscale: database $db, owned by polyscale_$db"
done
