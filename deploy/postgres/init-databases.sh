#!/usr/bin/env bash
# Runs once, when the PostgreSQL volume is empty (mounted into /docker-entrypoint-initdb.d/ by
# compose.yaml). Creates one role and one database per user of the server, each role owning only
# its own database and none of them a superuser:
#   retain   the prediction store (RETAIN_DATABASE_URL)
#   mlflow   MLflow's runs and model registry
#   prefect  the Prefect server's state
# Passwords come from the environment (compose.yaml takes them from .env); psql quotes them, so
# any characters are safe here (URLs that embed them want URL-safe ones, see compose.env.example).
set -euo pipefail

create_database() {
    local name="$1" password="$2"
    psql --set ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        --set name="$name" --set password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'name') \gexec
SQL
}

create_database retain "${STORE_DB_PASSWORD:?STORE_DB_PASSWORD is not set}"
create_database mlflow "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set}"
create_database prefect "${PREFECT_DB_PASSWORD:?PREFECT_DB_PASSWORD is not set}"
