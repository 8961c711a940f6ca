"""Sessions: pages renew the idle timeout; a page's background reads do not touch the session cookie, so a read
still in flight when the user signs out cannot sign them back in."""
from __future__ import annotations

from app.services.workflow import instances
from tests.conftest import T0, login

BACKGROUND = {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"}


def _session_cookies(response) -> list[str]:
    return [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]


def test_pages_renew_the_session_cookie_background_reads_do_not(client, seeded, user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    login(client, "head")
    client.get("/")  # the page the sign-in leads to

    page = client.get(f"/instances/{instance.id}", headers={"Sec-Fetch-Dest": "document"})
    states = client.get(f"/instances/{instance.id}/diagram.json", headers=BACKGROUND)

    assert page.status_code == 200 and _session_cookies(page)  # the idle timeout starts again
    assert states.status_code == 200 and _session_cookies(states) == []


def test_a_background_read_answered_after_sign_out_leaves_the_user_signed_out(client, seeded, user):
    instance = instances.start_instance("capa", user("qa"), title="Burr on hub", now=T0)
    login(client, "head")
    client.get(f"/instances/{instance.id}", headers={"Sec-Fetch-Dest": "document"})  # the page with the diagram
    signed_in_cookie = client.get_cookie("session").value

    client.post("/logout")
    # The browser sent this read before the sign-out; its answer arrives after it.
    client.set_cookie("session", signed_in_cookie)
    late = client.get(f"/instances/{instance.id}/diagram.json", headers=BACKGROUND)
    client.delete_cookie("session")  # what the sign-out's own answer left in the browser
    assert _session_cookies(late) == []

    assert client.get("/").status_code == 302  # to the sign-in page
