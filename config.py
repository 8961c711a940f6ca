"""Configuration classes read from environment variables; pick one with QUALIFLOW_CONFIG."""
import json
import os
from datetime import date, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.lower() in {"1", "true", "yes", "on"}


DEV_SECRET_KEY = "dev-only-change-me"


def _dates(text: str) -> tuple[date, ...]:
    return tuple(sorted(date.fromisoformat(part) for part in text.replace(",", " ").split()))


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{BASE_DIR / 'instance' / 'qualiflow.sqlite'}")
    # pool_pre_ping: a connection the database dropped (a restart) is replaced before use, so the app and the
    # scheduler recover by themselves when the database is back.
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    PROCESSES_DIR = Path(os.environ.get("QUALIFLOW_PROCESSES_DIR", BASE_DIR / "processes"))
    FORMS_DIR = Path(os.environ.get("QUALIFLOW_FORMS_DIR", BASE_DIR / "forms"))
    DOCX_TEMPLATES_DIR = Path(os.environ.get("QUALIFLOW_DOCX_TEMPLATES_DIR", BASE_DIR / "templates"))
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
    IMPORT_MAX_BYTES = int(os.environ.get("QUALIFLOW_IMPORT_MAX_BYTES", 200 * 1024 * 1024))  # lot data files
    BPMN_MAX_BYTES = int(os.environ.get("QUALIFLOW_BPMN_MAX_BYTES", 2_000_000))
    # Diagrams without DI above this many elements (flow nodes, flows, lanes, pools) are refused, not laid out.
    DIAGRAM_LAYOUT_MAX_ELEMENTS = int(os.environ.get("QUALIFLOW_DIAGRAM_LAYOUT_MAX_ELEMENTS", 5_000))
    PERMANENT_SESSION_LIFETIME = timedelta(minutes=int(os.environ.get("QUALIFLOW_SESSION_MINUTES", 30)))
    # A sign-in lasts at most this long however active it is (then sign in again); signing out ends it at once.
    SESSION_MAX_HOURS = int(os.environ.get("QUALIFLOW_SESSION_MAX_HOURS", 24))
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    LOGIN_MAX_FAILURES = int(os.environ.get("QUALIFLOW_LOGIN_MAX_FAILURES", 5))
    LOGIN_LOCKOUT_MINUTES = int(os.environ.get("QUALIFLOW_LOGIN_LOCKOUT_MINUTES", 15))
    PASSWORD_MIN_LENGTH = int(os.environ.get("QUALIFLOW_PASSWORD_MIN_LENGTH", 12))  # the password policy (admins)
    # API tokens expire this many days after they are issued, 1 to 3650 (there is no "never"); an owner may choose
    # fewer days. create_app refuses to start with any other value (checked and made a number there).
    API_TOKEN_DAYS = os.environ.get("QUALIFLOW_API_TOKEN_DAYS", "90")
    # Redirect http:// to https:// (behind a proxy that sets X-Forwarded-Proto too); production turns it on.
    FORCE_HTTPS = _bool("QUALIFLOW_FORCE_HTTPS", False)
    # How many reverse proxies in front of the app set X-Forwarded-For/-Proto/-Host (0: none, trust no such header).
    TRUSTED_PROXIES = int(os.environ.get("QUALIFLOW_TRUSTED_PROXIES", 0))
    # Rate limits (Flask-Limiter), per client address, in its notation ("10 per minute;100 per hour"). The counts
    # live in memory (one process) unless QUALIFLOW_RATELIMIT_STORAGE_URI names a shared store, e.g.
    # redis://127.0.0.1:6379/0, which every worker of a deployment should use.
    RATELIMIT_ENABLED = _bool("QUALIFLOW_RATELIMIT", True)
    RATELIMIT_STORAGE_URI = os.environ.get("QUALIFLOW_RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_KEY_PREFIX = os.environ.get("QUALIFLOW_RATELIMIT_KEY_PREFIX", "qualiflow")
    RATELIMIT_STRATEGY = "moving-window"
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True  # a shared store that stops answering: count in memory meanwhile
    RATELIMIT_SIGN_IN = os.environ.get("QUALIFLOW_RATELIMIT_SIGN_IN", "10 per minute;100 per hour")  # failed
    RATELIMIT_SIGNATURE = os.environ.get("QUALIFLOW_RATELIMIT_SIGNATURE", "10 per minute;60 per hour")  # failed
    RATELIMIT_API_TOKEN = os.environ.get("QUALIFLOW_RATELIMIT_API_TOKEN", "20 per minute;200 per hour")  # failed
    # Every request to the public acknowledgment and SCAR response links (pages and API), answered or not.
    RATELIMIT_PUBLIC_LINK = os.environ.get("QUALIFLOW_RATELIMIT_PUBLIC_LINK", "30 per minute;300 per hour")
    SCRIPT_TIME_LIMIT = float(os.environ.get("QUALIFLOW_SCRIPT_TIME_LIMIT", 1.0))
    # Scripts and conditions run in worker processes, each capped at this much memory (address space).
    SCRIPT_MEMORY_LIMIT_MB = int(os.environ.get("QUALIFLOW_SCRIPT_MEMORY_LIMIT_MB", 256))
    SCRIPT_WORKERS = int(os.environ.get("QUALIFLOW_SCRIPT_WORKERS", 2))  # per web or scheduler process
    SCHEDULER_ENABLED = _bool("QUALIFLOW_SCHEDULER", True)
    SCHEDULER_TIMER_SECONDS = int(os.environ.get("QUALIFLOW_TIMER_SECONDS", 5))
    EXPIRY_CHECK_MINUTES = int(os.environ.get("QUALIFLOW_EXPIRY_CHECK_MINUTES", 60))
    # The query planner's statistics are refreshed (ANALYZE) this often, and after every migration.
    ANALYZE_HOURS = float(os.environ.get("QUALIFLOW_ANALYZE_HOURS", 6))
    # The audit chain's anchor outside the database: HMAC-signed checkpoint files of its head.
    AUDIT_CHECKPOINT_KEY = os.environ.get("AUDIT_CHECKPOINT_KEY", "")
    AUDIT_CHECKPOINT_DIR = Path(os.environ.get("AUDIT_CHECKPOINT_DIR", BASE_DIR / "instance" / "checkpoints"))
    AUDIT_CHECKPOINT_MINUTES = int(os.environ.get("QUALIFLOW_AUDIT_CHECKPOINT_MINUTES", 60))
    SMTP_HOST = os.environ.get("SMTP_HOST", "127.0.0.1")
    SMTP_PORT = int(os.environ.get("SMTP_PORT", 8025))
    SMTP_SENDER = os.environ.get("SMTP_SENDER", "qualiflow@localhost")
    # A message the mail server does not take is retried after 1, 2, 4 ... minutes, at most every
    # OUTBOX_RETRY_MAX_MINUTES, for OUTBOX_RETRY_DAYS before it is failed (an address the server refuses with a
    # 5xx is failed at once); admins resend failed messages (/admin/outbox, `flask outbox retry`).
    OUTBOX_RETRY_DAYS = float(os.environ.get("QUALIFLOW_OUTBOX_RETRY_DAYS", 7))
    OUTBOX_RETRY_MAX_MINUTES = int(os.environ.get("QUALIFLOW_OUTBOX_RETRY_MAX_MINUTES", 60))
    # A running import whose worker wrote no progress for this long has died with it and is marked failed.
    IMPORT_STALE_MINUTES = int(os.environ.get("QUALIFLOW_IMPORT_STALE_MINUTES", 10))
    # A made evidence package export is kept this many days for download, then its file is removed (export again).
    EXPORT_KEEP_DAYS = float(os.environ.get("QUALIFLOW_EXPORT_KEEP_DAYS", 7))
    # Background jobs (app/jobs.py, Dramatiq): a Redis URL runs them in `flask queue worker` processes; empty runs
    # them in a pool of QUEUE_THREADS threads inside the web process. A job whose worker stopped answering for
    # QUEUE_HEARTBEAT_SECONDS is delivered again; one that raises is retried QUEUE_MAX_RETRIES times.
    QUEUE_URL = os.environ.get("QUALIFLOW_QUEUE_URL", "")
    QUEUE_NAMESPACE = os.environ.get("QUALIFLOW_QUEUE_NAMESPACE", "qualiflow")
    QUEUE_THREADS = int(os.environ.get("QUALIFLOW_QUEUE_THREADS", 2))
    QUEUE_HEARTBEAT_SECONDS = int(os.environ.get("QUALIFLOW_QUEUE_HEARTBEAT_SECONDS", 60))
    QUEUE_MAX_RETRIES = int(os.environ.get("QUALIFLOW_QUEUE_MAX_RETRIES", 3))
    BASE_URL = os.environ.get("QUALIFLOW_BASE_URL", "http://127.0.0.1:5000")
    BABEL_DEFAULT_LOCALE = "en"
    LANGUAGES = ["en", "zh_CN"]
    PAGE_SIZE = 20
    LOT_NEAR_EXPIRY_DAYS = int(os.environ.get("QUALIFLOW_NEAR_EXPIRY_DAYS", 90))
    # FEFO shipments: the remaining shelf life (days) a lot needs for a customer without a minimum of its own.
    FEFO_MIN_SHELF_LIFE_DAYS = int(os.environ.get("QUALIFLOW_MIN_SHELF_LIFE_DAYS", 180))
    # Storage excursions: minutes out of range are added up within any stretch of this many hours (docs/conditions.md).
    EXCURSION_WINDOW_HOURS = int(os.environ.get("QUALIFLOW_EXCURSION_WINDOW_HOURS", 24))
    # Supplier quality (docs/suppliers.md): the score counts the last SUPPLIER_SCORE_WINDOW_DAYS plant days; fewer
    # incoming inspections than SUPPLIER_SCORE_MIN_INSPECTIONS (and no SCAR, return or late response) is no score.
    # score = 100 - the weighted figures (JSON: points per % nonconforming, per SCAR, per lot returned, per late
    # SCAR response); below the alert score a supplier review starts, below the limit it proposes suspension.
    SUPPLIER_SCORE_WINDOW_DAYS = int(os.environ.get("QUALIFLOW_SUPPLIER_SCORE_WINDOW_DAYS", 365))
    SUPPLIER_SCORE_MIN_INSPECTIONS = int(os.environ.get("QUALIFLOW_SUPPLIER_SCORE_MIN_INSPECTIONS", 3))
    SUPPLIER_SCORE_WEIGHTS = json.loads(os.environ.get("QUALIFLOW_SUPPLIER_SCORE_WEIGHTS", "null")) or {
        "nonconforming_pct": 2.0, "scar": 5.0, "return": 3.0, "late_response": 10.0}
    SUPPLIER_ALERT_SCORE = float(os.environ.get("QUALIFLOW_SUPPLIER_ALERT_SCORE", 80))
    SUPPLIER_LIMIT_SCORE = float(os.environ.get("QUALIFLOW_SUPPLIER_LIMIT_SCORE", 60))
    SUPPLIER_SCORE_HOURS = float(os.environ.get("QUALIFLOW_SUPPLIER_SCORE_HOURS", 24))  # the scheduled scoring
    # Who the scheduled scoring starts a supplier review in the name of (a user name; empty: the first active
    # member of the qa_management group).
    SUPPLIER_REVIEW_STARTER = os.environ.get("QUALIFLOW_SUPPLIER_REVIEW_STARTER", "")
    # Public holidays skipped by "working days" deadlines when the database has no calendar for a jurisdiction:
    # ISO dates separated by commas or spaces (admins keep the calendars under /admin/calendars).
    HOLIDAYS = _dates(os.environ.get("QUALIFLOW_HOLIDAYS", ""))
    # Times are stored in UTC and shown, and working days counted, in the plant's zone (IANA name).
    PLANT_TIME_ZONE = os.environ.get("QUALIFLOW_TIME_ZONE", "Asia/Shanghai")
    # The holiday calendar of deadlines that name none (and of scripts' working-day helpers).
    PLANT_CALENDAR = os.environ.get("QUALIFLOW_CALENDAR", "CN")
    # What a recall must reach to close without a justification signed at the final approval, per class: the
    # least effectiveness-check level (A strictest) and the least % of consignees contacted by the check, of
    # consignees acknowledged and of units recovered. Class I: level A, every consignee (FDA 21 CFR 7.42(b)(3)).
    # QUALIFLOW_RECALL_EFFECTIVENESS replaces it with the same shape as JSON.
    RECALL_EFFECTIVENESS = json.loads(os.environ.get("QUALIFLOW_RECALL_EFFECTIVENESS", "null")) or {
        "I": {"level": "A", "contacted_pct": 100, "acknowledged_pct": 100, "recovered_pct": 90},
        "II": {"level": "C", "contacted_pct": 10, "acknowledged_pct": 80, "recovered_pct": 75},
        "III": {"level": "D", "contacted_pct": 2, "acknowledged_pct": 50, "recovered_pct": 0},
    }
    COMPANY_NAME = os.environ.get("QUALIFLOW_COMPANY_NAME", "Qualiflow Demo Medical Co., Ltd.")
    COMPANY_ADDRESS = os.environ.get("QUALIFLOW_COMPANY_ADDRESS", "1 Demo Road, Suzhou, China")
    COMPANY_CONTACT = os.environ.get("QUALIFLOW_COMPANY_CONTACT", "QA hotline +86 512 0000 0000, qa@qualiflow.example")
    API_TITLE = "Qualiflow API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "/docs"
    OPENAPI_SWAGGER_UI_URL = "/static/vendor/swagger-ui/"
    OPENAPI_SWAGGER_UI_CONFIG = {"validatorUrl": None}  # no badge from the online validator (the CSP allows none)
    WTF_CSRF_TIME_LIMIT = None


class DevelopmentConfig(Config):
    DEBUG = False


class TestingConfig(Config):
    TESTING = True
    SCHEDULER_ENABLED = False
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = False
    RATELIMIT_ENABLED = False  # the rate-limit tests turn it on with small limits


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = _bool("QUALIFLOW_SECURE_COOKIES", True)
    FORCE_HTTPS = _bool("QUALIFLOW_FORCE_HTTPS", True)


CONFIGS = {"development": DevelopmentConfig, "testing": TestingConfig, "production": ProductionConfig}
