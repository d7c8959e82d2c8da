"""Content-Security-Policy: the header on every page, and no page that needs an exception to it.

The policy (settings.CONTENT_SECURITY_POLICY) allows scripts and styles only from our own
files, so an inline <script>, <style>, style="" attribute, on*= handler, htmx hx-on or
javascript: address would be refused by the browser. A crawler walks the demo school's console,
admin and API docs as a superuser (who sees every page), and checks each HTML page it reaches.
tests/browser/test_csp_browser.py checks the same in Chromium, where the browser itself reports
violations.
"""

import io
import re
from collections import deque
from html.parser import HTMLParser
from urllib.parse import urldefrag, urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

# Scripts that are data, not code: browsers never run them, so CSP does not apply.
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json", "text/template"}
# Paths the crawler must not follow: they change state on GET, or leave the session.
SKIP = ("/accounts/logout/", "/admin/logout/")
# Each kind of page (its path with ids taken out, its query's parameter names) is fetched this
# many times: enough to meet every template, without visiting a thousand change pages.
PER_SHAPE = 2
MAX_PAGES = 600


class InlineFinder(HTMLParser):
    """Collects what a strict CSP would refuse, and the links to crawl next."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.links: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and not attributes.get("src"):
            if (attributes.get("type") or "").lower() not in DATA_SCRIPT_TYPES:
                self._in_inline_script = True
        if tag == "style":
            self.problems.append("<style> element")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f'style="{value}" on <{tag}>')
            elif name.startswith("on"):
                self.problems.append(f"{name}= handler on <{tag}>")
            elif name.startswith(("hx-on", "data-hx-on")):
                self.problems.append(f"{name} on <{tag}>")
            elif name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"javascript: address in {name} on <{tag}>")
            if name in ("href", "hx-get") and value:
                self.links.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.problems.append(f"inline <script>: {data.strip()[:60]!r}")


def shape(url: str) -> str:
    parts = urlsplit(url)
    path = re.sub(r"/[0-9a-f]{8}-[0-9a-f-]{27,}|/\d+(?=/|$)", "/<id>", parts.path)
    params = sorted({pair.split("=", 1)[0] for pair in parts.query.split("&") if pair})
    return path + "?" + "&".join(params)


def crawl(client: Client, starts: list[str], prefixes: tuple[str, ...]) -> dict[str, list[str]]:
    """Fetch every kind of page reachable from `starts` under `prefixes`; {url: problems} of each HTML page."""
    seen_shapes: dict[str, int] = {}
    queue = deque(starts)
    visited: set[str] = set()
    report: dict[str, list[str]] = {}
    while queue and len(visited) < MAX_PAGES:
        url = urldefrag(queue.popleft())[0]
        if url in visited or not url.startswith(prefixes) or url.startswith(SKIP):
            continue
        key = shape(url)
        if seen_shapes.get(key, 0) >= PER_SHAPE:
            continue
        seen_shapes[key] = seen_shapes.get(key, 0) + 1
        visited.add(url)
        response = client.get(url)
        if response.status_code in (301, 302):
            queue.append(response["Location"])
            continue
        if not response.get("Content-Type", "").startswith("text/html"):
            continue
        assert response.status_code == 200, f"{url} answered {response.status_code}"
        policy = response.get("Content-Security-Policy", "")
        finder = InlineFinder()
        finder.feed(response.content.decode())
        problems = list(finder.problems)
        if "script-src 'self'" not in policy or "unsafe-inline" in policy:
            problems.append(f"policy: {policy!r}")
        report[url] = problems
        queue.extend(link for link in finder.links if link.startswith("/"))
    return report


@pytest.fixture
def demo_school(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    call_command("seed_demo", stdout=io.StringIO())


@pytest.fixture
def admin_client(client, demo_school):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="admin"))
    return client


def test_the_policy_is_strict():
    from django.conf import settings

    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]
    for directive in ("script-src", "style-src", "default-src"):
        assert directives[directive] == ["'self'"], directive
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]


def test_the_login_page_carries_the_policy_and_no_inline_code(client):
    response = client.get("/accounts/login/")

    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    finder = InlineFinder()
    finder.feed(response.content.decode())
    assert finder.problems == []


def test_every_console_page_is_free_of_inline_code(admin_client):
    report = crawl(admin_client, ["/console/"], ("/console/",))

    # The crawl reached the console's areas, not just its front page.
    reached = {shape(url) for url in report}
    for page in (
        "/console/?",
        "/console/captures/?",
        "/console/captures/<id>/?",
        "/console/logs/?",
        "/console/recordings/?",
        "/console/confide/?",
        "/console/confide/<id>/?",
        "/console/insight/?",
        "/console/thumbnails/?",
        "/console/alerts/?",
        "/console/exports/?",
    ):
        assert page in reached, f"the crawl never reached {page}"
    offenders = {url: problems for url, problems in report.items() if problems}
    assert offenders == {}


def test_every_admin_page_is_free_of_inline_code(admin_client):
    report = crawl(admin_client, ["/admin/"], ("/admin/",))

    assert len(report) > 40, sorted(report)
    offenders = {url: problems for url, problems in report.items() if problems}
    assert offenders == {}


def test_the_two_factor_pages_are_free_of_inline_code(client, settings):
    from tests.factories import PASSWORD, StaffUserFactory

    settings.SAFEGUARD_2FA_REQUIRED = "everyone"
    StaffUserFactory(username="teacher")
    client.post("/accounts/login/", {"username": "teacher", "password": PASSWORD})

    for url in ("/accounts/2fa/setup/",):
        response = client.get(url)
        assert response.status_code == 200
        finder = InlineFinder()
        finder.feed(response.content.decode())
        assert finder.problems == [], url
        assert "script-src 'self'" in response["Content-Security-Policy"]


def test_the_api_docs_page_is_free_of_inline_code(client):
    response = client.get("/api/docs/")

    finder = InlineFinder()
    finder.feed(response.content.decode())
    assert finder.problems == []
    policy = response["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    # Swagger UI's data: icons are allowed there, and only there.
    assert "img-src 'self' data:" in policy
    assert "data:" not in client.get("/accounts/login/")["Content-Security-Policy"]


def test_the_finder_catches_each_kind_of_inline_code():
    # The checker itself: a page with each forbidden construct gives one problem each.
    finder = InlineFinder()
    finder.feed(
        "<script>alert(1)</script><script type='application/json'>{}</script><script src='/s.js'></script>"
        "<style>p{}</style><p style='color:red' onclick='x()'>a</p><button hx-on:click='y()'>b</button>"
        "<a href='javascript:void(0)'>c</a>"
    )

    assert len(finder.problems) == 6, finder.problems
