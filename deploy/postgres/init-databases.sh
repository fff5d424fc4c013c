#!/bin/sh
# Creates the `cpts` role and one database per service, each owned by `cpts`.
#
# The postgres image runs this once, on the first start with an empty data directory.
# It is idempotent, so it can also be run again by hand, e.g. to set a new password:
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-cpts-databases.sh
set -eu

: "${CPTS_DB_PASSWORD:?CPTS_DB_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 \
    --username "${POSTGRES_USER:-postgres}" \
    --dbname "${POSTGRES_DB:-postgres}" \
    --set cpts_user=cpts \
    --set cpts_password="$CPTS_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'cpts_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'cpts_user')
\gexec

SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'cpts_user', :'cpts_password')
\gexec

SELECT format('CREATE DATABASE %I OWNER %I', db.name, :'cpts_user')
FROM unnest(ARRAY['cpts_registry', 'cpts_snp_dispatch', 'cpts_patient_matching', 'cpts_indicators']) AS db(name)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = db.name)
\gexec

SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', db.name)
FROM unnest(ARRAY['cpts_registry', 'cpts_snp_dispatch', 'cpts_patient_matching', 'cpts_indicators']) AS db(name)
\gexec
SQL
