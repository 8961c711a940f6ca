"""SpiffWorkflow's script engine wired to our sandbox and to the handler registry (via a callback)."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task as SpiffTask

from app.engine.sandbox import SandboxedEnvironment
from app.exceptions import ScriptRejected

ServiceCaller = Callable[[SpiffTask, str, dict[str, Any]], Any]


class QualiflowScriptEngine(PythonScriptEngine):
    """Run scripts and conditions in the sandbox and service tasks through a handler callback.

    Errors keep the sandbox's reason (upstream reports only "Error evaluating expression" for a condition)
    and carry the original exception as `exception`, for the engine's incident.
    """

    def __init__(self, environment: SandboxedEnvironment, call_handler: ServiceCaller) -> None:
        super().__init__(environment=environment)
        self._call_handler = call_handler

    def evaluate(self, task: SpiffTask, expression: str, external_context: dict | None = None) -> Any:
        """Return the value of expression over the task's data; a failure names the expression and why."""
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except SpiffWorkflowException as err:
            err.add_note(f"Error evaluating expression '{expression}'")
            raise
        except Exception as err:
            failure = WorkflowTaskException(f"Error evaluating expression '{expression}': {_reason(err)}",
                                            task=task, exception=err)
            failure.exception = err
            raise failure from err

    def create_task_exec_exception(self, task: SpiffTask, script: str, err: Exception) -> Exception:
        """Wrap a script's error as upstream does, keeping the error itself as `exception`."""
        failure = super().create_task_exec_exception(task, script, err)
        failure.exception = err
        return failure

    def get_error_line_number_and_content(self, script: str, err: Exception) -> tuple[int, str]:
        """Return the failing line reported by the script worker (upstream looks in this process's traceback)."""
        line = getattr(err, "script_line", None)
        if not line:
            return super().get_error_line_number_and_content(script, err)
        lines = script.splitlines()
        return line, lines[line - 1] if line <= len(lines) else ""

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


def _reason(err: Exception) -> str:
    return err.message if isinstance(err, ScriptRejected) else f"{type(err).__name__}: {err}"
