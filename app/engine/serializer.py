"""Save and restore workflow state as JSON without the process spec, which is cached per version."""
from __future__ import annotations

import json
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
FORMAT = "qualiflow-1"


def spec_registry():
    """Return the converter registry SpiffWorkflow's spec diff compares task specs with."""
    return _SERIALIZER.registry


def dump_state(workflow: BpmnWorkflow) -> str:
    """Serialize a workflow's state (tasks, data, subprocesses, events) to a JSON string."""
    registry = _SERIALIZER.registry
    registry._encoder_mode = True
    try:
        dct = registry.convert(workflow)
        dct["format"] = FORMAT
        return json.dumps(dct, cls=_SERIALIZER._encoder_cls, separators=(",", ":"))
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
