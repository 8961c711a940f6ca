"""Flask extensions, created unbound here and bound to the app in create_app."""
import threading

from flask import current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData

# Stable constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


class LazyDocApi(Api):
    """flask-smorest's Api, putting the blueprints' views into the OpenAPI document when it is first read
    (/api/v1/openapi.json, the Swagger UI) instead of when the app starts. Documenting ~100 operations cost 0.15 s of
    every app's start - more than half of it - which every web worker and every test pays; the document itself is
    the same, and so is serving the API."""

    _PENDING = "qualiflow-api-undocumented"  # app.extensions key: blueprints registered, not yet documented
    _LOCK = threading.Lock()  # two first reads at once (threaded servers) document each blueprint once

    def register_blueprint(self, blp, *, parameters=None, **options):
        """Register blp in the app as flask-smorest does; its documentation waits for the document's first read."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._app.extensions.setdefault(self._PENDING, []).append((blp, name, parameters))

    def _document_pending(self) -> None:
        app = current_app._get_current_object()
        with self._LOCK:
            pending = app.extensions.get(self._PENDING, [])
            while pending:
                blp, name, parameters = pending.pop(0)
                blp.register_views_in_doc(self, app, self.spec, name=name, parameters=parameters)
                self.spec.tag({"name": name, "description": blp.description})

    def _openapi_json(self):
        self._document_pending()
        return super()._openapi_json()


api = LazyDocApi()
# Rate limits per client address; the storage, strategy and limits come from the app's config (RATELIMIT_*).
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
