"""Completing a task through the API is one transaction: the answer is built from what the use case wrote, not
read back in a second transaction (on SQLite that took the write lock again)."""
from __future__ import annotations

from sqlalchemy import event

from app.extensions import db
from app.services.workflow import instances
from tests.integration.capa_steps import PROBLEM, ready_task


def _transactions_during(call) -> tuple[object, list[str], list[str]]:
    begins: list[str] = []
    statements: list[str] = []

    def on_begin(connection):
        begins.append("begin")

    def on_statement(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "begin", on_begin)
    event.listen(db.engine, "before_cursor_execute", on_statement)
    try:
        result = call()
    finally:
        event.remove(db.engine, "begin", on_begin)
        event.remove(db.engine, "before_cursor_execute", on_statement)
    return result, begins, statements


def test_completing_a_task_takes_one_transaction_and_answers_what_it_wrote(client, auth, user):
    instance_id = instances.start_instance("capa", user("qa"), title="One transaction").id
    task_id = ready_task(instance_id, "describe_problem").id
    headers = auth("qa")
    db.session.remove()  # the test's own reads end here; the request starts afresh

    response, begins, statements = _transactions_during(lambda: client.post(
        f"/api/v1/tasks/{task_id}/complete", json={"data": PROBLEM}, headers=headers))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["id"], body["state"], body["assignee"], body["completed_by"], body["data"]) == (
        task_id, "completed", "qa", "qa", PROBLEM)
    assert len(begins) == 1, statements
    deadline_reads = [s for s in statements if "FROM deadlines" in s]
    assert len(deadline_reads) <= 1, deadline_reads  # read once per use case, not per question
    db.session.remove()
    assert ready_task(instance_id, "describe_problem") is None
    assert ready_task(instance_id, "containment") is not None
