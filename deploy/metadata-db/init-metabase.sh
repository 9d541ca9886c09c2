#!/bin/sh
# Runs once, on the first start of the metadata-db server (/docker-entrypoint-initdb.d): Metabase's
# application database and its owner, beside Airflow's. psql reads the password from the environment
# (\getenv), so it appears on no command line.
set -e

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv metabase_password METABASE_DB_PASSWORD
CREATE ROLE metabase LOGIN PASSWORD :'metabase_password';
CREATE DATABASE metabase OWNER metabase;
SQL
