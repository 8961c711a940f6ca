"""Hardening in one place: security headers on every answer (flask-talisman), rate limits on credentials and
public links (Flask-Limiter), the failed-token limit of the API. docs/security.md describes them for operators."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, Response, current_app, g, request
from flask_babel import gettext as _
from flask_limiter.util import get_remote_address
from flask_talisman import Talisman
from limits import parse_many
from werkzeug.exceptions import TooManyRequests
from werkzeug.middleware.proxy_fix import ProxyFix

from app.extensions import limiter

log = logging.getLogger(__name__)

# No inline script anywhere (pages pass data in data-* attributes or JSON blocks that are never executed). Styles
# may be inline: bpmn-js and Swagger UI set style attributes on the elements they draw.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# Links leave the site without the address they were followed from (a public link's token stays with us).
REFERRER_POLICY = "same-origin"


class SecurityHeaders(Talisman):
    """Talisman, except that a page which asked for a stricter referrer policy (the public links' no-referrer)
    keeps it."""

    def _set_referrer_policy_headers(self, headers) -> None:
        headers.setdefault("Referrer-Policy", self.referrer_policy)


def _is_static() -> bool:
    return bool(request.endpoint) and request.endpoint.rsplit(".", 1)[-1] == "static"


def _no_store(response: Response) -> Response:
    """Nothing but static files may be kept by a browser or a proxy: pages show signed-in users' records,
    signing forms and documents."""
    if not _is_static():
        response.headers["Cache-Control"] = "no-store"
    if "retry_after" in g:  # a 429 of the failed-token limit (Flask-Limiter sets its own)
        response.headers["Retry-After"] = str(g.retry_after)
    return response


def init_app(app: Flask) -> None:
    """Install the headers and the rate limiter on the app (after its blueprints are registered)."""
    proxies = app.config.get("TRUSTED_PROXIES", 0)
    if proxies:  # the client's address and scheme as the proxies in front of us saw them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    app.after_request(_no_store)
    SecurityHeaders(
        app,
        force_https=app.config["FORCE_HTTPS"],
        session_cookie_secure=app.config.get("SESSION_COOKIE_SECURE", False),
        session_cookie_samesite=app.config.get("SESSION_COOKIE_SAMESITE", "Lax"),
        frame_options="DENY",
        content_security_policy=CONTENT_SECURITY_POLICY,
        referrer_policy=REFERRER_POLICY,
        permissions_policy={"camera": "()", "microphone": "()", "geolocation": "()", "browsing-topics": "()"},
    )
    # Flask-Limiter's init_app only fills an empty key prefix, so every later app of the process would count under
    # the first app's prefix (in the tests, apps of two suites then shared one Redis count): each app uses its own.
    limiter._key_prefix = ""
    limiter.init_app(app)
    _limit_public_links(app)


# --- rate limits ------------------------------------------------------------------------------------------------------

def _setting(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


def _too_many() -> str:
    return _("Too many attempts from your address. Wait a moment and try again.")


def _refused(response: Response) -> bool:
    return response.status_code == 401


def failed_sign_ins():
    """Decorator of the sign-in view: failed sign-ins per address (RATELIMIT_SIGN_IN)."""
    return limiter.limit(_setting("RATELIMIT_SIGN_IN"), methods=["POST"], deduct_when=_refused,
                         error_message=_too_many, scope="sign-in")


def failed_signatures():
    """Decorator of the views that complete a task: refused signature passwords per address
    (RATELIMIT_SIGNATURE)."""
    return limiter.limit(_setting("RATELIMIT_SIGNATURE"), methods=["POST"], deduct_when=_refused,
                         error_message=_too_many, scope="signature")


# The public links' blueprints (pages and API), by name: the token in their address is the only credential there.
PUBLIC_LINK_BLUEPRINTS = ("ack", "scar", "acknowledgments_api", "scar_responses_api")
_public_links_limited = False


def _limit_public_links(app: Flask) -> None:
    """Every request to a public link (acknowledgment or SCAR response, page or API) counts against one limit
    per address (RATELIMIT_PUBLIC_LINK)."""
    global _public_links_limited
    if _public_links_limited:  # the limiter keeps blueprint limits by name, for every app of the process
        return
    for name in PUBLIC_LINK_BLUEPRINTS:
        limiter.shared_limit(_setting("RATELIMIT_PUBLIC_LINK"), scope="public-link", error_message=_too_many)(
            app.blueprints[name])
    _public_links_limited = True


def _token_limits():
    return parse_many(current_app.config["RATELIMIT_API_TOKEN"])


def _token_key() -> tuple[str, ...]:
    return current_app.config["RATELIMIT_KEY_PREFIX"], get_remote_address(), "api-token"


def refuse_after_failed_tokens() -> None:
    """Answer 429 to an address whose API authentications failed too often lately (RATELIMIT_API_TOKEN), before
    its token is even looked at, so that guessing learns nothing more."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    try:
        for item in _token_limits():
            if not limiter.limiter.test(item, *_token_key()):
                reset_at = limiter.limiter.get_window_stats(item, *_token_key()).reset_time
                g.retry_after = max(1, int(reset_at - time.time() + 0.999))
                raise TooManyRequests(_too_many())
    except TooManyRequests:
        raise
    except Exception:  # the shared store is down: authenticate without the limit rather than refuse everyone
        log.exception("rate-limit storage unavailable for the API token limit")


def count_failed_token() -> None:
    """Count a refused API authentication against its address."""
    if not current_app.config["RATELIMIT_ENABLED"]:
        return
    try:
        for item in _token_limits():
            limiter.limiter.hit(item, *_token_key())
    except Exception:
        log.exception("rate-limit storage unavailable for the API token limit")
