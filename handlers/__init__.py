"""Service-task handlers: the explicit registry BPMN `serviceTaskOperator` ids resolve against."""
from handlers.base import Handler, HandlerContext, HandlerError
from handlers.documents import RenderParams, render_document
from handlers.notify import EmailParams, queue_email

REGISTRY: dict[str, Handler] = {
    "documents.render": Handler(render_document, RenderParams,
                                "Render a docx template with the instance data and store it as evidence"),
    "notify.email": Handler(queue_email, EmailParams,
                            "Queue an e-mail to users, groups or addresses in the outbox"),
}

__all__ = ["REGISTRY", "Handler", "HandlerContext", "HandlerError"]
