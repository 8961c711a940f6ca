"""Save and restore workflow state as JSON without the process spec, which is cached per version."""
from __future__ import annotations

import json
import threading
from datetime import date
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG


class _SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """Leave the spec out of the saved state: it is large, immutable and already stored with the version."""

    def to_dict(self, workflow):
        dct = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct):
        workflow = self.target_class(dct.pop("spec"), dct.pop("subprocess_specs"), deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_CONFIG = {**SPIFF_CONFIG, BpmnWorkflow: _SpeclessWorkflowConverter}
_SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(_CONFIG))
# Scripts compute dates (today(), add_working_days): store them as such, as SpiffWorkflow does datetimes.
_SERIALIZER.registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
_ENCODER_LOCK = threading.Lock()  # the registry's encoder mode is one flag shared by every thread
FORMAT = "qualiflow-1"


def as_restored(spec, subprocess_specs: dict) -> tuple:
    """Return copies of freshly parsed specs as SpiffWorkflow's own spec deserializer builds them.

    The parser leaves some wiring to run time: a loop or multi-instance task connects its child's
    completion event when it creates the first child, and the spec deserializer connects it up front.
    State restored onto a parsed spec in a new process would miss it (the last child completes and
    nothing merges it: the instance stalls). Going through the spec converters once per version
    gives every process the same, fully wired spec, whatever task types future diagrams use.
    """
    registry = _SERIALIZER.registry
    restored = registry.restore(registry.convert(spec))
    restored_subprocesses = {name: registry.restore(registry.convert(sub)) for name, sub in subprocess_specs.items()}
    return restored, restored_subprocesses


def spec_registry():
    """Return the converter registry SpiffWorkflow's spec diff compares task specs with."""
    return _SERIALIZER.registry


def dump_state(workflow: BpmnWorkflow) -> str:
    """Serialize a workflow's state (tasks, data, subprocesses, events) to a JSON string.

    Raises TypeError, ValueError or RecursionError when task data holds a value JSON cannot.
    """
    registry = _SERIALIZER.registry
    with _ENCODER_LOCK:
        registry._encoder_mode = True
        try:
            dct = registry.convert(workflow)
            dct["format"] = FORMAT
            # allow_nan=False: NaN and Infinity are not JSON; a database JSON column refuses them later.
            return json.dumps(dct, cls=_SERIALIZER._encoder_cls, separators=(",", ":"), allow_nan=False)
        finally:
            registry._encoder_mode = False


def load_state(state: str, spec, subprocess_specs: dict) -> BpmnWorkflow:
    """Restore a workflow saved by dump_state onto its (cached) spec."""
    dct = json.loads(state, cls=_SERIALIZER.json_decoder_cls)
    if dct.pop("format", None) != FORMAT:
        raise ValueError("unknown workflow state format")
    dct["spec"] = spec
    dct["subprocess_specs"] = subprocess_specs
    return _SERIALIZER.registry.restore(dct)
