"""Shared scenarios for the service-layer integration tests: a closed CAPA, test diagrams, row counts, races."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from flask import Flask

from app.extensions import db
from app.models import Incident, ProcessInstance
from app.services import demo, users
from app.services.workflow import processes, tasks
from tests.conftest import T0
from tests.integration.capa_steps import ready_task, run_capa_to_approval

APPROVE = {"decision": "approve", "approval_comment": "Actions effective; close the CAPA."}
REJECT = {"decision": "reject", "approval_comment": "Root cause not proven."}

NS = ('xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
      'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"')


def approve(instance_id: int, user, now: datetime, data: dict = APPROVE):
    """Sign the QA approval of a CAPA as the head of QA."""
    return tasks.complete_task(ready_task(instance_id, "qa_approval").id, data, user("head"),
                               password=demo.DEMO_PASSWORD, now=now)


def close_capa(user, now: datetime = T0) -> ProcessInstance:
    """Run the shipped CAPA from start to the approved closure (which queues the 'CAPA closed' e-mail)."""
    instance = run_capa_to_approval(user, now=now)
    approve(instance.id, user, now)
    return instance


def count(model, *where) -> int:
    """Count the rows of a model matching the conditions."""
    return db.session.scalar(db.select(db.func.count()).select_from(model).where(*where))


def user_task(element_id: str, name: str, form: str = "capa_escalation.schema.json") -> str:
    """Return a user task element with a form property, for test diagrams."""
    return f"""<bpmn:userTask id="{element_id}" name="{name}">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="{form}"/>
        </spiffworkflow:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>"""


def diagram(process_id: str, body: str, lane_nodes: Iterable[str] = ()) -> bytes:
    """Wrap flow elements in a deployable BPMN file, with the given nodes in lane 'qa'."""
    refs = "".join(f"<bpmn:flowNodeRef>{node}</bpmn:flowNodeRef>" for node in lane_nodes)
    lanes = f'<bpmn:laneSet id="lanes"><bpmn:lane id="lane_qa" name="qa">{refs}</bpmn:lane></bpmn:laneSet>' \
        if refs else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="{process_id}_definitions" targetNamespace="https://qualiflow.example/tests">
  <bpmn:process id="{process_id}" name="{process_id}" isExecutable="true">
    {lanes}
    {body}
  </bpmn:process>
</bpmn:definitions>""".encode()


def scripted(script: str) -> bytes:
    """Return the diagram "scripted": start, the script task "compute" running script, end."""
    return diagram("scripted", f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="compute"/>
    <bpmn:scriptTask id="compute" name="Compute"><bpmn:script>{script}</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="compute" targetRef="end"/>
    <bpmn:endEvent id="end"/>
""")


def open_incident(instance_id: int) -> Incident | None:
    """Return the unresolved incident of an instance, if it has one."""
    return db.session.scalar(db.select(Incident).where(Incident.instance_id == instance_id,
                                                       Incident.resolved_at.is_(None)))


def deploy(bpmn: bytes, filename: str) -> None:
    """Deploy a test diagram as the administrator and have QA approve it (controlled procedures): in effect at once."""
    from tests.integration.releases import approved  # a test helper module that imports the test configuration
    approved(processes.deploy_file(bpmn, filename, users.get_by_username("admin"), "integration test"))


def run_together(app: Flask, actions: list[Callable[[], Any]], timeout: float = 60) -> list[Any]:
    """Run each action in its own thread and app context (own session and connection), released at once.

    Returns what each action returned, or the exception it raised. The caller's session must not hold a
    transaction open: on SQLite it would keep the write lock the threads wait for.
    """
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def work(index: int) -> None:
        with app.app_context():
            try:
                barrier.wait()
                results[index] = actions[index]()
            except Exception as err:  # handed back to the test to assert on
                db.session.rollback()
                results[index] = err

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a racing thread did not finish"
    return results
