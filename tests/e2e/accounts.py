"""Signing in and out and working on steps through the pages, shared by the browser tests."""
from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.sync_api import Page, expect

from app.services.demo import DEMO_PASSWORD

INBOX_HEADING = re.compile(r"^Inbox( [\d,+]+)?$")  # with the count of tasks when there are any


def sign_in(page: Page, username: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the login page and switch the pages to English (several demo users default to zh-CN)."""
    page.goto("/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("current-user")).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name=INBOX_HEADING, level=1)).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def complete(page: Page, button: str = "Complete") -> None:
    """Submit the task form; the instance page opens with the confirmation."""
    page.get_by_role("button", name=button, exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Task completed.")
    expect(page.get_by_test_id("task-table")).to_be_visible()


def sign_and_complete(page: Page) -> None:
    """Re-enter the password of the e-signature and complete the gate."""
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    complete(page, "Sign and complete")


def open_from_inbox(page: Page, search: str, task_name: str) -> None:
    """Find a task in the inbox by a search text (an instance title, a lot number) and open it."""
    page.get_by_role("link", name="Inbox", exact=True).click()
    page.get_by_role("textbox", name="Search", exact=True).fill(search)
    page.get_by_role("button", name="Filter").click()
    page.get_by_test_id("inbox-table").get_by_role("link", name=task_name, exact=True).click()
    expect(page.get_by_role("heading", name=task_name, level=1)).to_be_visible()


def open_step(page: Page, task_name: str) -> None:
    """Open a ready step from the instance page's step list (only ready steps are links)."""
    page.get_by_test_id("task-table").get_by_role("link", name=task_name, exact=True).click()
    expect(page.get_by_role("heading", name=task_name, level=1)).to_be_visible()
