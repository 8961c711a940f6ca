"""REST API /api/v1 with OpenAPI 3 (/api/v1/openapi.json, Swagger UI at /api/v1/docs)."""
from flask import Flask
from flask_smorest.spec.plugins import integerconverter2paramschema

from app.api.base import ErrorSchema
from app.edge import BoundedIntConverter
from app.extensions import api, csrf

# Every error answers {error, message, ...} (app/errors.py): the spec's default error response says so, and ids in
# paths are documented with the integer column's bounds that the app's `int` converter enforces.
api.ERROR_SCHEMA = ErrorSchema
api.register_converter(BoundedIntConverter, integerconverter2paramschema)


def register_api(app: Flask) -> None:
    from app.api.approvals import blp as approvals_blp
    from app.api.conditions import blp as conditions_blp
    from app.api.dashboard import blp as dashboard_blp
    from app.api.lots import blp as lots_blp
    from app.api.procedure_control import blp as procedure_control_blp
    from app.api.recalls import ack_blp
    from app.api.recalls import blp as recalls_blp
    from app.api.routes import blp
    from app.api.sterilization import blp as sterilization_blp
    from app.api.stock import blp as stock_blp
    from app.api.studio import blp as studio_blp
    from app.api.supplier_returns import blp as supplier_returns_blp
    from app.api.supplier_returns import scar_blp
    from app.api.suppliers import blp as supplier_quality_blp
    from app.api.tokens import blp as tokens_blp

    api.init_app(app, spec_kwargs={"components": {"securitySchemes": {
        "bearerAuth": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearerAuth": []}]})
    for blueprint in (blp, lots_blp, recalls_blp, ack_blp, supplier_returns_blp, scar_blp, studio_blp,
                      tokens_blp, procedure_control_blp, conditions_blp, dashboard_blp, approvals_blp, stock_blp):
        csrf.exempt(blueprint)
        api.register_blueprint(blueprint)
    csrf.exempt(sterilization_blp)
    api.register_blueprint(sterilization_blp)
    csrf.exempt(supplier_quality_blp)  # supplier quality: the approved-supplier list, scores, reviews
    api.register_blueprint(supplier_quality_blp)
