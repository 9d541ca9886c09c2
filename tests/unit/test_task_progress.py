"""``make run``'s progress lines from ``airflow dags test``'s log (``ops.airflow.TaskProgress``), fed lines as
Airflow 3.3 writes them (kept from a probe DAG's run; tests/dags/test_dag_integrity.py runs a live one)."""

from __future__ import annotations

from datetime import datetime

from ops.airflow import TaskProgress

TI_FIRST = "01a2489b-b711-75cc-b540-7279badeb3b3"
TI_MAPPED = "01a2489b-b712-7fb2-be3e-0246cfcc5187"
LOG = f"""\
2026-12-05T23:48:14.145000Z [info     ] Created dag run.               [airflow.models.dagrun] loc=dagrun.py:201
2026-12-05T23:48:14.588772Z [info     ] [DAG TEST] starting task_id=first map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-12-05T23:48:14.589222Z [info     ] [DAG TEST] running task <TaskInstance: progress_probe.first manual__2026-12-05T23:48:14.145354+00:00 [TaskInstanceState.SCHEDULED] ti_id={TI_FIRST}> [airflow.sdk.definitions.dag] loc=dag.py:1504
2026-12-05T23:48:21.616859Z [info     ] Task started                   [airflow.api_fastapi.execution_api.routes.task_instances] correlation_id=01a2489b-c113-7d30-b413-801ccc13e649 hostname=vm loc=task_instances.py:226 previous_state=queued ti_id={TI_FIRST}
2026-12-05T23:48:23.251313Z [info     ] Task instance state updated    [airflow.api_fastapi.execution_api.routes.task_instances] correlation_id=01a2489b-da3e-7fe1-b8ee-9266188be3ca loc=task_instances.py:485 new_state=success rows_affected=1 ti_id={TI_FIRST}
2026-12-05T23:48:23.271441Z [info     ] [DAG TEST] end task task_id=first map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563
2026-12-05T23:48:23.287365Z [info     ] [DAG TEST] starting task_id=second map_index=0 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-12-05T23:48:23.288037Z [info     ] [DAG TEST] running task <TaskInstance: progress_probe.second manual__2026-12-05T23:48:14.145354+00:00 map_index=0 [TaskInstanceState.SCHEDULED] ti_id={TI_MAPPED}> [airflow.sdk.definitions.dag] loc=dag.py:1504
2026-12-05T23:48:23.839070Z [info     ] Task instance state updated    [airflow.api_fastapi.execution_api.routes.task_instances] correlation_id=01a2489b-dc97-71f8-9aa1-553728ac9107 loc=task_instances.py:485 new_state=failed rows_affected=1 ti_id={TI_MAPPED}
2026-12-05T23:48:23.845215Z [info     ] [DAG TEST] end task task_id=second map_index=0 [airflow.sdk.definitions.dag] loc=dag.py:1563
"""
STARTED = datetime.fromisoformat("2026-12-05T23:48:10+00:00").timestamp()


def test_one_line_per_finished_task_with_its_state_duration_and_when():
    lines = list(TaskProgress(STARTED).feed(LOG.splitlines()))
    assert [line.split() for line in lines] == [
        ["[", "13s]", "first", "success", "8.7s"],
        ["[", "14s]", "second[0]", "failed", "0.6s"],
    ]


def test_a_log_fed_in_pieces_tells_the_same():
    progress = TaskProgress(STARTED)
    log = LOG.splitlines()
    lines = [*progress.feed(log[:4]), *progress.feed(log[4:7]), *progress.feed(log[7:])]
    assert lines == list(TaskProgress(STARTED).feed(log))
