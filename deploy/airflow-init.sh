#!/bin/sh
# One-shot init of the Airflow metadata database (the compose service airflow-init), idempotent:
# create or upgrade the schema (Airflow's and the FAB auth manager's tables), then the admin user
# unless it exists. The password comes from AIRFLOW_ADMIN_PASSWORD and is never printed.
set -eu

airflow db migrate

if airflow users list --output plain 2>/dev/null | awk '{print $2}' | grep -qx "${AIRFLOW_ADMIN_USERNAME}"; then
    echo "Airflow admin user '${AIRFLOW_ADMIN_USERNAME}' already exists"
else
    airflow users create \
        --username "${AIRFLOW_ADMIN_USERNAME}" \
        --password "${AIRFLOW_ADMIN_PASSWORD}" \
        --email "${AIRFLOW_ADMIN_EMAIL}" \
        --firstname Admin \
        --lastname Airflow \
        --role Admin
fi
