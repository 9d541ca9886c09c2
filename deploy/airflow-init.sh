#!/bin/sh
# One-shot init of the Airflow metadata database (the compose service airflow-init), idempotent:
# create or upgrade the schema (Airflow's and the FAB auth manager's tables), then the admin user
# unless it exists. The password comes from AIRFLOW_ADMIN_PASSWORD, goes in on standard input and is never
# printed nor put on a command line.
set -eu

airflow db migrate

if airflow users list --output plain 2>/dev/null | awk '{print $2}' | grep -qx "${AIRFLOW_ADMIN_USERNAME}"; then
    echo "Airflow admin user '${AIRFLOW_ADMIN_USERNAME}' already exists"
else
    # Without --password the command asks for it twice (getpass); with no terminal (compose allocates none) it
    # reads standard input, warning that input may be echoed: nothing is, it comes from a pipe.
    # printf is a shell builtin, so the password appears in no process's arguments.
    printf '%s\n%s\n' "${AIRFLOW_ADMIN_PASSWORD}" "${AIRFLOW_ADMIN_PASSWORD}" | airflow users create \
        --username "${AIRFLOW_ADMIN_USERNAME}" \
        --email "${AIRFLOW_ADMIN_EMAIL}" \
        --firstname Admin \
        --lastname Airflow \
        --role Admin
fi
