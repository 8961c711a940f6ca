"""The users of bench/load.py's locust run (`locust -f bench/load_locustfile.py`; bench/load.py starts it).

Every user is qa: an API token (LOAD_TOKEN) for the API and a signed-in session for the pages. A user, after a
random wait of 0.5 to 2 s, does one of (weights in brackets):

- [4] read the inbox through the API (`GET /api/v1/tasks`, first page, and now and then a search);
- [2] read the inbox page (`GET /`, the HTML a browser gets);
- [3] work a task through: start an instance of the bench procedure (LOAD_PROCESS: step A -> step B), then
      complete its two steps, each found through the instance (`GET /api/v1/instances/{id}`);
- [2] trace a lot forward and backward (`GET /api/v1/trace?q=<lot number>`), a product or a material lot;
- [1] start a recall from a product lot and advance it: complete the trigger, the health hazard assessment and the
      e-signed assessment sign-off (qa's password), and read the recall (`GET /api/v1/recalls/{id}`).

Every answer other than the expected 2xx counts as a failure (locust's error table); none is expected.
"""
from __future__ import annotations

import os
import random
import re
from datetime import date

from locust import HttpUser, between, events, task

TOKEN = os.environ.get("LOAD_TOKEN", "")
PROCESS = os.environ.get("LOAD_PROCESS", "load_step")
PASSWORD = os.environ.get("LOAD_PASSWORD", "")
STEP_DATA = {"escalation_action": "Done."}
TRIGGER = {"source": "complaint", "description": "Leaking infusion sets reported by a hospital (load test)",
           "reporter": "Load test", "reported_on": date.today().isoformat()}
ASSESSMENT = {"hazard": "Air embolism if the set leaks during infusion", "risk": "Serious harm possible",
              "population": "Patients receiving infusions", "recall_class": "II", "scope": "recall",
              "countries": "CN"}
SIGN = {"decision": "approve", "comment": "Assessment agreed."}
LOTS: dict[str, list] = {"product": [], "material": []}


@events.test_start.add_listener
def read_lots(environment, **_) -> None:
    """The lot numbers to trace and the product lots to recall, read once through the API."""
    import requests

    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    for kind, path in (("product", "product-lots"), ("material", "material-lots")):
        page = 1
        while page <= 10:
            answer = requests.get(f"{environment.host}/api/v1/{path}", params={"page": page, "per_page": 100},
                                  headers=headers, timeout=60)
            answer.raise_for_status()
            body = answer.json()
            LOTS[kind] += [(item["id"], item["lot_number"]) for item in body["items"]]
            if page >= body["pages"]:
                break
            page += 1
    if not LOTS["product"]:
        raise RuntimeError("no product lots: load the demo data (flask demo load) first")


def _why(answer) -> str:
    """What went wrong: the status and the body's start, or the connection error when no answer came (status 0)."""
    if not answer.status_code:
        return f"no answer: {answer.error!r}"[:300]
    return f"{answer.status_code}: {answer.text[:300]}"


class Qa(HttpUser):
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.api = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        login = self.client.get("/login", name="GET /login")
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login.text)
        data = {"username": "qa", "password": PASSWORD, **({"csrf_token": token.group(1)} if token else {})}
        with self.client.post("/login", data=data, name="POST /login", allow_redirects=False,
                              catch_response=True) as answer:
            if answer.status_code != 302:
                answer.failure(f"sign-in answered {answer.status_code}")

    def _json(self, method: str, path: str, name: str, expect: int = 200, **kwargs) -> dict | None:
        with self.client.request(method, path, name=name, headers=self.api, catch_response=True, **kwargs) as answer:
            if answer.status_code != expect:
                answer.failure(_why(answer))
                return None
            return answer.json()

    def _ready(self, instance_id: int, element_id: str) -> int | None:
        record = self._json("GET", f"/api/v1/instances/{instance_id}", "GET /api/v1/instances/{id}")
        for item in (record or {}).get("tasks", []):
            if item["element_id"] == element_id and item["state"] == "ready":
                return item["id"]
        return None

    def _complete(self, task_id: int | None, data: dict, name: str, password: str | None = None) -> bool:
        if task_id is None:
            return False
        body = {"data": data, **({"password": password} if password else {})}
        return self._json("POST", f"/api/v1/tasks/{task_id}/complete", name, json=body) is not None

    @task(4)
    def inbox_api(self) -> None:
        if random.random() < 0.2:
            self._json("GET", "/api/v1/tasks?q=step&per_page=20", "GET /api/v1/tasks?q=")
        else:
            self._json("GET", "/api/v1/tasks?per_page=20", "GET /api/v1/tasks")

    @task(2)
    def inbox_page(self) -> None:
        with self.client.get("/", name="GET / (inbox page)", catch_response=True) as answer:
            if answer.status_code != 200 or "<html" not in answer.text[:500].lower():
                answer.failure(_why(answer))

    @task(3)
    def work_a_task(self) -> None:
        started = self._json("POST", "/api/v1/instances", "POST /api/v1/instances", expect=201,
                             json={"process": PROCESS, "title": "Load test step", "data": {}})
        if started is None:
            return
        for element_id in ("step_a", "step_b"):
            if not self._complete(self._ready(started["id"], element_id), STEP_DATA,
                                  "POST /api/v1/tasks/{id}/complete"):
                return

    @task(2)
    def trace(self) -> None:
        kind = "product" if random.random() < 0.6 or not LOTS["material"] else "material"
        _, lot_number = random.choice(LOTS[kind])
        self._json("GET", f"/api/v1/trace?q={lot_number}", f"GET /api/v1/trace ({kind} lot)")

    @task(1)
    def recall(self) -> None:
        lot_id, lot_number = random.choice(LOTS["product"])
        started = self._json("POST", "/api/v1/recalls/start", "POST /api/v1/recalls/start", expect=201,
                             json={"lot_id": lot_id})
        if started is None:
            return
        recall_id = started["id"]
        if not self._complete(started["task_id"], {**TRIGGER, "product_lots": lot_number},
                              "POST /api/v1/tasks/{id}/complete (recall trigger)"):
            return
        if not self._complete(self._ready(recall_id, "assessment"), ASSESSMENT,
                              "POST /api/v1/tasks/{id}/complete (recall assessment)"):
            return
        if not self._complete(self._ready(recall_id, "sign_assessment"), SIGN,
                              "POST /api/v1/tasks/{id}/complete (recall e-signature)", password=PASSWORD):
            return
        self._json("GET", f"/api/v1/recalls/{recall_id}", "GET /api/v1/recalls/{id}")
