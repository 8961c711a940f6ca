"""SpiffWorkflow's script engine wired to our sandbox and to the handler registry (via a callback)."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.task import Task as SpiffTask

from app.engine.sandbox import SandboxedEnvironment

ServiceCaller = Callable[[SpiffTask, str, dict[str, Any]], Any]


class QualiflowScriptEngine(PythonScriptEngine):
    """Run scripts and conditions in the sandbox and service tasks through a handler callback."""

    def __init__(self, environment: SandboxedEnvironment, call_handler: ServiceCaller) -> None:
        super().__init__(environment=environment)
        self._call_handler = call_handler

    def call_service(self, task: SpiffTask, operation_name: str, operation_params: dict, **_: Any) -> str:
        """Call the registered handler; unlike upstream, a failure raises a task error instead of a NameError."""
        params = {name: param["value"] for name, param in operation_params.items()}
        try:
            result = self._call_handler(task, operation_name, params)
        except WorkflowTaskException:
            raise
        except Exception as err:
            raise WorkflowTaskException(f"{operation_name}: {err}", task=task, exception=err) from err
        return json.dumps(result, default=str)
