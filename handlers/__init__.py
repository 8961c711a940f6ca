"""Service-task handlers: the explicit registry BPMN `serviceTaskOperator` ids resolve against."""
from handlers.base import Handler, HandlerContext, HandlerError
from handlers.documents import RenderParams, render_document
from handlers.lots import (
    FindAffectedParams,
    LotParams,
    SetStatusParams,
    find_affected,
    release_checks,
    set_status,
    trace_backward,
)
from handlers.notify import EmailParams, queue_email

REGISTRY: dict[str, Handler] = {
    "documents.render": Handler(render_document, RenderParams,
                                "Render a docx template with the instance data and store it as evidence"),
    "notify.email": Handler(queue_email, EmailParams,
                            "Queue an e-mail to users, groups or addresses in the outbox"),
    "lots.find_affected": Handler(find_affected, FindAffectedParams,
                                  "Affected lots, shipments and consignees from material lots, product lots, "
                                  "sterilization batches or a production period"),
    "lots.set_status": Handler(set_status, SetStatusParams,
                               "Put product lots on hold, release, recall, quarantine or scrap them, with a reason"),
    "lots.release_checks": Handler(release_checks, LotParams,
                                   "Check a product lot's release conditions and list the failed ones"),
    "lots.trace_backward": Handler(trace_backward, LotParams,
                                   "Trace a product lot back to components, material lots, suppliers and inspections"),
}

__all__ = ["REGISTRY", "Handler", "HandlerContext", "HandlerError"]
