"""Entry points: `app` for the flask CLI (FLASK_APP=wsgi), `serve()` for the web server with its scheduler."""
from flask import Flask

from app import create_app, freeze_start_up_objects

app = create_app()
freeze_start_up_objects()


def serve() -> Flask:
    """Return the app for `waitress-serve --call wsgi:serve`, starting timers and outbox unless disabled."""
    if app.config["SCHEDULER_ENABLED"]:
        from app.scheduler import start_scheduler
        start_scheduler(app)
    return app
