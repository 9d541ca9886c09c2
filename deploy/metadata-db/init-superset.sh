#!/bin/sh
# Runs once, on the first start of the metadata-db server (/docker-entrypoint-initdb.d): Superset's
# metadata database and its owner, beside Airflow's. psql reads the password from the environment
# (\getenv), so it appears on no command line. On a metadata-data volume made before, run it once by hand:
#   docker compose exec metadata-db sh /docker-entrypoint-initdb.d/10-superset.sh
set -e

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\getenv superset_password SUPERSET_DB_PASSWORD
CREATE ROLE superset LOGIN PASSWORD :'superset_password';
CREATE DATABASE superset OWNER superset;
SQL
