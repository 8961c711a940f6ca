"""Service-task handlers: the explicit registry BPMN `serviceTaskOperator` ids resolve against."""
from app.services.workflow import registry
from handlers import capa, conditions, deadlines, lots, recalls, stock, supplier_quality, supplier_returns
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

_HANDLERS: dict[str, Handler] = {
    "documents.render": Handler(render_document, RenderParams,
                                "Render a docx template with the instance data and store it as evidence"),
    "notify.email": Handler(queue_email, EmailParams,
                            "Queue an e-mail to users, groups or addresses in the outbox"),
    "lots.find_affected": Handler(find_affected, FindAffectedParams,
                                  "Affected lots, shipments and consignees from material lots, product lots, "
                                  "sterilization batches or a production period"),
    "lots.set_status": Handler(set_status, SetStatusParams,
                               "Put product lots on hold, release, recall, quarantine or scrap them, with a reason"),
    "lots.lift_hold": Handler(lots.lift_hold, lots.LiftHoldParams,
                              "Lift the instance's hold on product lots: each returns to the status it had "
                              "before (unless another open procedure still holds it)"),
    "lots.release_checks": Handler(release_checks, LotParams,
                                   "Check a product lot's release conditions and list the failed ones"),
    "lots.open_capa": Handler(lots.open_capa, lots.OpenCapaParams,
                              "Start a CAPA about a product lot, linked to it (e.g. when release checks fail)"),
    "capa.link_source": Handler(capa.link_source, capa.LinkSourceParams,
                                "Link a CAPA to its source (inspection, lot, recall, supplier, complaint, audit "
                                "finding) and to the affected lots"),
    "lots.trace_backward": Handler(trace_backward, LotParams,
                                   "Trace a product lot back to components, material lots, suppliers and inspections"),
    "recall.find_affected": Handler(recalls.find_affected, recalls.ScopeParams,
                                    "Trace a recall's lots, serials, batches or UDI forward and store the affected "
                                    "lots, consignees and quantities"),
    "recall.recall_lots": Handler(recalls.recall_lots, recalls.RecallLotsParams,
                                  "Set every affected lot of the recall to recalled (blocked from shipment)"),
    "recall.send_notices": Handler(recalls.send_notices, recalls.NoticeParams,
                                   "Render and queue one notice per consignee with a single-use acknowledgment link"),
    "recall.escalate_undelivered": Handler(recalls.escalate_undelivered, recalls.UndeliveredParams,
                                           "At the notification deadline, escalate the consignee notices not "
                                           "yet delivered, listing each consignee"),
    "recall.send_reminders": Handler(recalls.send_reminders, recalls.ReminderParams,
                                     "Remind consignees who have not acknowledged after N days"),
    "recall.render": Handler(recalls.render, recalls.RecallRenderParams,
                             "Render a recall document with lots, consignees, quantities, deadlines and checks"),
    "recall.draw_sample": Handler(recalls.draw_sample, recalls.SampleParams,
                                  "Draw the effectiveness-check sample (levels A-E) from the consignee list"),
    "supplier_return.quarantine": Handler(supplier_returns.quarantine, supplier_returns.QuarantineParams,
                                          "Quarantine a supplier return's material lots and link them to it"),
    "supplier_return.send_scar": Handler(supplier_returns.send_scar, supplier_returns.ScarParams,
                                         "Render and e-mail the next SCAR round with a single-use response link"),
    "supplier_return.send_reminders": Handler(supplier_returns.send_reminders, supplier_returns.ReminderParams,
                                              "Remind a supplier who has not answered the SCAR after N days"),
    "supplier_return.record_verification": Handler(supplier_returns.record_verification,
                                                   supplier_returns.VerificationParams,
                                                   "Record the verification of the supplier's SCAR answer"),
    "supplier_return.record_shipment": Handler(supplier_returns.record_shipment, supplier_returns.ShipmentParams,
                                               "Write the GSP return record per lot and render the return note"),
    "supplier_return.set_supplier_status": Handler(supplier_returns.set_supplier_status,
                                                   supplier_returns.SupplierStatusParams,
                                                   "Set the approved-supplier status decided in the return"),
    "supplier_return.render": Handler(supplier_returns.render, supplier_returns.RenderParams,
                                      "Render a supplier return document with the SCAR rounds and the return record"),
    "excursion.apply_decisions": Handler(conditions.apply_decisions, conditions.DecisionParams,
                                         "Carry out a deviation's signed per-lot decisions: lift its hold on the "
                                         "lots released, scrap the others, close the excursion"),
    "excursion.open_capa": Handler(conditions.open_capa, conditions.CapaParams,
                                   "Start a CAPA about an excursion, linked to every lot it held"),
    "stock.scrap": Handler(stock.scrap, stock.ScrapParams,
                           "Destroy goods of a lot at a location as the signed scrap procedure approved: take them "
                           "off stock, record method and witness, set the lot scrapped when none is left"),
    "supplier_review.apply_decision": Handler(supplier_quality.apply_decision, supplier_quality.DecisionParams,
                                              "Carry out a supplier review's signed decision: set the approved-"
                                              "supplier status, start a supplier return (SCAR) for the lot named"),
    "deadlines.start": Handler(deadlines.start, deadlines.StartParams,
                               "Start regulatory deadlines (durations or working days) met by named steps"),
    "deadlines.escalate": Handler(deadlines.escalate, deadlines.EscalateParams,
                                  "Mark a missed deadline escalated and e-mail the escalation"),
}

registry.register_handlers(_HANDLERS)
REGISTRY = registry.HANDLERS  # every registered handler, these and any a site adds

__all__ = ["REGISTRY", "Handler", "HandlerContext", "HandlerError"]
