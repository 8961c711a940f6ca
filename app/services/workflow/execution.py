"""Bind the engine to the service layer: the clock, settings and the handler dispatch (in a savepoint)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import current_app
from marshmallow import ValidationError

from app.engine import EngineContext, HandlerCall
from app.extensions import db
from app.services.evidence import audit
from app.services.workflow import calendars
from app.services.workflow.registry import HANDLERS, HandlerContext, HandlerError


def call_handler(call: HandlerCall, now: datetime) -> Any:
    """Validate parameters and run one handler; its writes roll back alone if it fails."""
    handler = HANDLERS.get(call.operator)
    if handler is None:
        raise HandlerError(f"no handler registered as {call.operator!r}")
    try:
        params = handler.schema().load(call.params)
    except ValidationError as err:
        raise HandlerError(f"invalid parameters for {call.operator}: {err.messages}") from err
    ctx = HandlerContext(
        session=db.session, instance=call.instance, element_id=call.element_id, spiff_id=call.spiff_id,
        data=call.data, now=now, templates_dir=current_app.config["DOCX_TEMPLATES_DIR"],
        base_url=current_app.config["BASE_URL"],
        company={"name": current_app.config["COMPANY_NAME"], "address": current_app.config["COMPANY_ADDRESS"],
                 "contact": current_app.config["COMPANY_CONTACT"]})
    mark = audit.position()
    try:
        with db.session.begin_nested():
            return handler.function(ctx, params)
    except BaseException:
        audit.rewind(mark)  # the savepoint took the handler's audit rows with it
        raise


def engine_context(now: datetime) -> EngineContext:
    """Return the engine inputs for one use case running at `now`; scripts count on the plant's calendar."""
    calendar = calendars.work_calendar()
    return EngineContext(now=now, call_handler=lambda call: call_handler(call, now),
                         script_time_limit=current_app.config["SCRIPT_TIME_LIMIT"],
                         script_memory_limit_mb=current_app.config["SCRIPT_MEMORY_LIMIT_MB"],
                         script_workers=current_app.config["SCRIPT_WORKERS"],
                         holidays=tuple(sorted(calendar.holidays)), workdays=tuple(sorted(calendar.workdays)),
                         time_zone=current_app.config["PLANT_TIME_ZONE"])
