"""All models, imported here so Alembic and the app see every table."""
from app.models.audit import AuditEvent, AuditHead
from app.models.calendars import CalendarDay
from app.models.conditions import Excursion, Reading, Sensor
from app.models.evidence import Document, Signature
from app.models.instances import Incident, ProcessInstance, Task
from app.models.lots import (
    Customer,
    GenealogyEdge,
    ImportJob,
    Inspection,
    InstanceLot,
    MaterialLot,
    Product,
    ProductLot,
    SerialNumber,
    Shipment,
    StockLevel,
    Supplier,
)
from app.models.outbox import OutboxMessage
from app.models.processes import ProcessDefinition, ProcessVersion
from app.models.recalls import Deadline, RecallConsignee, RecallLine
from app.models.search import install_title_search  # noqa: F401 - the title index comes with the table
from app.models.sterilization import SterilizationBatch, SterilizationLoad
from app.models.stock import ScrapRecord, ShipmentOrder, StockMovement, StorageLocation, Warehouse
from app.models.studio import ProcessDraft, StudioForm
from app.models.supplier_quality import SupplierEvaluation, SupplierReview
from app.models.suppliers import ScarRequest, SupplierReturn
from app.models.users import ROLES, ApiToken, Group, User, UserSession

__all__ = [
    "ROLES", "ApiToken", "AuditEvent", "AuditHead", "CalendarDay", "Document", "Group", "Incident",
    "OutboxMessage", "ProcessDefinition", "ProcessInstance", "ProcessVersion", "Signature", "Task", "User",
    "Customer", "GenealogyEdge", "ImportJob", "Inspection", "InstanceLot", "MaterialLot", "Product", "ProductLot",
    "SerialNumber", "Shipment", "StockLevel", "Supplier", "Deadline", "RecallConsignee", "RecallLine",
    "ScarRequest", "SupplierReturn", "Excursion", "Reading", "Sensor", "ProcessDraft", "StudioForm", "UserSession",
    "ScrapRecord", "ShipmentOrder", "StockMovement", "StorageLocation", "Warehouse",
    "SupplierEvaluation", "SupplierReview",
    "SterilizationBatch", "SterilizationLoad",
]
