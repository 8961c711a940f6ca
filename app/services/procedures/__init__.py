"""The regulated procedures' own rules (recall, CAPA, supplier return) and their dashboards; lot release and
change control need no module of their own beyond lot data and the platform. Each module registers its form
checks with the workflow registry when imported; `register_all()` imports them all."""


def register_all() -> None:
    """Import every module that registers form checks (procedures and lot data) so the registry is complete."""
    from app.services.lots import conditions, lots  # noqa: F401
    from app.services.procedures import capa, recalls, supplier_quality, supplier_returns  # noqa: F401
