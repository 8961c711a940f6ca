"""Run one procedure step in a process of its own, as a restarted server or a second worker would.

`python -m tests.integration.services.step_process DATABASE_URL '{"complete": 12, "as": "prod", "data": {...}}'`
or `'{"tick": "2026-12-23T09:01:00+00:00"}'`; prints a JSON line with what happened.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime

from app import create_app


def main(database_url: str, command: dict) -> dict:
    app = create_app("testing", {"SQLALCHEMY_DATABASE_URI": database_url, "SMTP_PORT": 1})
    from app.services import users
    from app.services.workflow import tasks, timers
    with app.app_context():
        if "complete" in command:
            task = tasks.complete_task(command["complete"], command["data"], users.get_by_username(command["as"]),
                                       now=datetime.fromisoformat(command["now"]))
            return {"completed": task.id, "instance_status": task.instance.status}
        report = timers.tick(datetime.fromisoformat(command["tick"]))
        return {"fired": report.fired, "failed": report.failed}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))
