"""Browser tests: Playwright (Python) driving Debian's /usr/bin/chromium against a live server
with the demo school seeded.

No browser download: `make test` installs the `chromium` Debian package
(scripts/install-system-packages.sh) and Playwright launches it by path. Each test gets its own
Playwright, browser and page (about 0.6 s to launch), so nothing leaks between tests and the
sync API's event loop runs only during a browser test: Django refuses ORM calls from a thread
with a running event loop, hence DJANGO_ALLOW_ASYNC_UNSAFE for the test's duration only.

Use:

    pytestmark = pytest.mark.integration

    def test_something(page, demo_server):
        login(page, "lead")
        page.goto("/console/")          # relative to the live server (the context's base_url)
"""

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from safeguard.core.demo import DEMO_PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000


@pytest.fixture
def demo_server(live_server, transactional_db):
    """The live server (pytest-django's, on a transactional test database) with the demo school seeded."""
    call_command("seed_demo", verbosity=0)
    return live_server


@pytest.fixture
def browser(monkeypatch) -> Iterator:
    """A Chromium browser driven by Playwright's sync API; closed after the test."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`, or run "
            "scripts/install-system-packages.sh, which `make test` does).",
            pytrace=False,
        )
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            # ORM calls made while Playwright runs get their own connection (its event loop gives
            # the test another context); close it here, in that same state, or it outlives the test.
            connections.close_all()
            browser.close()
            _wait_for_request_threads()


def _wait_for_request_threads(timeout: float = 10.0) -> None:
    """Let the live server finish the requests of the closed browser.

    Chromium keeps connections alive, so a server thread may still hold its database connection
    when the browser goes; on PostgreSQL that connection would stop the test database from being
    dropped at the end of the session. Once the browser has exited, each thread sees its socket
    close, closes its connections and ends: wait for that (a join, not a sleep).
    """
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        target = getattr(thread, "_target", None)
        if getattr(target, "__name__", "") == "process_request_thread":
            thread.join(max(0.0, deadline - time.monotonic()))


@pytest.fixture
def page(demo_server, browser) -> Iterator:
    """A fresh page (own cookies) at 1280x800 whose relative URLs go to the demo server."""
    context = browser.new_context(base_url=demo_server.url, viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def login(page, username: str, password: str = DEMO_PASSWORD) -> None:
    """Log in through the real login form and wait for the console."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/**")
