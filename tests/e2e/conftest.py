"""Browser fixtures: the real server (waitress, demo data, temporary SQLite) driven by headless Chromium."""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Playwright cannot download its own browsers here, so it drives Debian's Chromium: /usr/bin/chromium, or a
# chromium on PATH. Without one the browser tests fail (they are part of `make test`), saying how to install it.
CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and shutil.which("chromium"):
    CHROMIUM = Path(shutil.which("chromium"))
CHROMIUM_MISSING = (f"the browser tests need Chromium at {CHROMIUM} or on PATH, and none was found: "
                    "install it with `apt-get install -y chromium` (as root)")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
STARTUP_SECONDS = 30


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item (rep_setup, rep_call, rep_teardown) for the page fixture."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _flask(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    if result.returncode:
        pytest.fail(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{url}/login", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # refused, reset or timed out while the server starts
            time.sleep(0.2)
    pytest.fail(f"the server did not answer within {STARTUP_SECONDS} s:\n{log.read_text()}", pytrace=False)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Return Debian's Chromium; fail (never skip) the browser tests when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(CHROMIUM_MISSING, pytrace=False)
    return CHROMIUM


_DEMO_TEMPLATE: list[Path] = []  # the migrated demo database, built once per run (see _demo_database)


def _demo_database(env: dict[str, str]) -> Path:
    """Return a SQLite file migrated (`flask db upgrade`) and loaded with the demo (`flask demo load`), built by the
    first server of the run; each server starts from a copy of it, as a fresh install would be (the demo is the
    same data every time), instead of migrating and loading again (10 - 30 s per server on a busy machine)."""
    if not _DEMO_TEMPLATE:
        directory = Path(tempfile.mkdtemp(prefix="qualiflow-e2e-demo-"))
        atexit.register(shutil.rmtree, directory, True)
        template = directory / "demo.sqlite"
        template_env = {**env, "DATABASE_URL": f"sqlite:///{template}"}
        _flask(template_env, "db", "upgrade")
        _flask(template_env, "demo", "load")
        _DEMO_TEMPLATE.append(template)
    return _DEMO_TEMPLATE[0]


def _copy_database(template: Path, target: Path) -> None:
    for suffix in ("", "-wal"):  # the write-ahead log too, should the last connection have left one
        if Path(f"{template}{suffix}").exists():
            shutil.copyfile(f"{template}{suffix}", f"{target}{suffix}")


@contextmanager
def serve(workdir: Path, **extra_env: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Serve the demo on a free port from a fresh SQLite file in workdir; yield its base URL and environment."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    database = workdir / "qualiflow.sqlite"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}",
           "QUALIFLOW_CONFIG": "development", "SECRET_KEY": "test", "QUALIFLOW_SCHEDULER": "0",
           "QUALIFLOW_BASE_URL": url, "QUALIFLOW_TIME_ZONE": "UTC", **extra_env}
    _copy_database(_demo_database(env), database)
    log = workdir / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(BIN / "waitress-serve"), "--host", "127.0.0.1", "--port", str(port), "--call", "app:create_app"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(url, server, log)
        yield url, env
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def flask_command(env: dict[str, str], *args: str) -> None:
    """Run a flask CLI command against a served app's database and settings (e.g. outbox send)."""
    _flask(env, *args)


@pytest.fixture(scope="session")
def live_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve the demo on a free port from a fresh SQLite file; yield its base URL."""
    with serve(tmp_path_factory.mktemp("live_server")) as (url, _):
        yield url


class Mailbox:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[Message]:
        return [message_from_bytes(envelope.content) for envelope in self.envelopes]


@pytest.fixture(scope="module")
def smtp_sink() -> Iterator[tuple[int, Mailbox]]:
    """Run a real SMTP server (aiosmtpd) on a free port; yield the port and its mailbox."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def browser(chromium: Path):
    """Launch one headless Chromium for the whole session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def server_url(live_server: str) -> str:
    """The base URL the page fixture opens: the shared live server, unless a module overrides this fixture
    (e.g. with a server of its own that sends e-mail to its smtp_sink)."""
    return live_server


def new_context(browser, base_url: str):
    """A fresh browser context (no cookies) on base_url, in English, with downloads and a 10 s default timeout."""
    context = browser.new_context(base_url=base_url, locale="en-US", accept_downloads=True)
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def page(browser, server_url: str, request: pytest.FixtureRequest):
    """Open a fresh browser context on the server; save a screenshot when the test fails."""
    context = new_context(browser, server_url)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
    context.close()
