"""Domain exceptions raised by services, the engine and handlers; app/errors.py maps them to HTTP."""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass


def _in_page_language(text: str) -> str:
    """The message in the request's language where the catalog has it (a service that raised it with gettext
    already gave it in that language); outside a request, or without a translation, as written. Flask is not
    imported here: the script workers load this module and must not load Flask."""
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_request_context():
        return text
    from flask_babel import gettext
    return gettext(text)


class QualiflowError(Exception):
    """Base class: a user-facing message and the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        self.message = message or (self.__class__.__doc__ or self.__class__.__name__)

    @property
    def message(self) -> str:
        """The message as pages and the API answer it: in the page (or request) language."""
        return _in_page_language(self._message)

    @message.setter
    def message(self, value: str) -> None:
        self._message = value

    def as_dict(self) -> dict:
        return {"error": self.__class__.__name__, "message": self.message}


class ValidationFailed(QualiflowError):
    """The request is not valid; nothing was changed."""

    status = 400


class ImportRefused(QualiflowError):
    """Some rows of an import are invalid; nothing was imported."""

    status = 422

    def __init__(self, errors: list[dict], total_errors: int, message: str = "") -> None:
        super().__init__(message or f"{total_errors} row error(s); nothing was imported.")
        self.errors = errors
        self.total_errors = total_errors

    def as_dict(self) -> dict:
        return {**super().as_dict(), "errors": self.errors, "total_errors": self.total_errors}


class NotFound(QualiflowError):
    """The requested record does not exist."""

    status = 404


class PermissionDenied(QualiflowError):
    """You are not allowed to do this."""

    status = 403


class Conflict(QualiflowError):
    """The record changed meanwhile; reload and try again."""

    status = 409


class ProcessIdTaken(Conflict):
    """The diagram's process id belongs to a different procedure; confirm that it replaces it, or rename it."""

    def __init__(self, key: str, message: str = "") -> None:
        super().__init__(message)
        self.key = key

    def as_dict(self) -> dict:
        return {**super().as_dict(), "process": self.key, "confirm": "replace"}


class TaskAlreadyCompleted(Conflict):
    """This task is already completed."""


class TaskNotClaimable(Conflict):
    """This task is claimed by someone else or is not waiting for a user."""


class SignatureRejected(QualiflowError):
    """The signature was rejected: the password is wrong or the account is locked."""

    status = 401


class FormInvalid(QualiflowError):
    """The form has errors."""

    status = 422

    def __init__(self, errors: dict[str, list[str]], message: str = "") -> None:
        super().__init__(message or "The form has errors; nothing was saved.")
        self.errors = errors

    def as_dict(self) -> dict:
        return {**super().as_dict(), "errors": self.errors}


class FormConflict(FormInvalid):
    """The record conflicts with the state of another record (a suspended supplier); nothing was saved."""

    status = 409


class FormDefinitionInvalid(QualiflowError):
    """The form definition (JSON Schema or UI schema) has errors; nothing was saved."""

    status = 422

    def __init__(self, problems: list, message: str = "") -> None:
        super().__init__(message)
        self.problems = problems  # FormProblem of app.services.studio_forms, each located by file and JSON path

    def as_dict(self) -> dict:
        return {**super().as_dict(), "problems": [asdict(p) for p in self.problems]}


@dataclass(frozen=True)
class BpmnProblem:
    """One finding of BPMN validation, located by element id and source line when known."""

    message: str
    element_id: str | None = None
    line: int | None = None
    severity: str = "error"  # "error" blocks a deploy, "warning" does not

    def __str__(self) -> str:
        where = ", ".join(p for p in (self.element_id and f"element {self.element_id}",
                                      self.line and f"line {self.line}") if p)
        return f"{where}: {self.message}" if where else self.message


class InvalidBpmn(QualiflowError):
    """The BPMN diagram is invalid."""

    def __init__(self, problems: list[BpmnProblem], filename: str | None = None) -> None:
        self.problems = problems
        self.filename = filename
        summary = "; ".join(str(p) for p in problems if p.severity == "error") or "invalid diagram"
        super().__init__(f"{filename + ': ' if filename else ''}{summary}")

    def as_dict(self) -> dict:
        return {**super().as_dict(), "problems": [asdict(p) for p in self.problems]}


class ScriptRejected(QualiflowError):
    """A script or expression uses something the sandbox forbids, or ran too long."""


class HandlerFailed(QualiflowError):
    """A service-task handler failed; the instance waits at that task as an incident."""

    status = 500


class InstanceStuck(QualiflowError):
    """The engine lost sight of an unfinished task; the instance is held as an incident."""

    status = 500


class Gone(QualiflowError):
    """This link has expired."""

    status = 410


class EvidenceTampered(Conflict):
    """Stored evidence no longer matches the hash recorded when it was made: it was changed afterwards."""


class CheckpointInvalid(Conflict):
    """A checkpoint file of the audit trail is not signed with this key: forged, altered, or the key changed."""


class ChainBroken(Conflict):
    """The audit trail does not verify."""
