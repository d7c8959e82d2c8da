"""In the browser: two-factor login, and the console, admin and API docs under the strict CSP.

Chromium enforces the Content-Security-Policy header itself; every refusal fires a
`securitypolicyviolation` event and prints a console message. The test listens for both
while the demo admin sets up an authenticator (its code computed from the key the page shows,
as an app would) and then works through the console, the admin and the API docs.
"""

import re
import time
from base64 import b32decode

import pytest
from django_otp.oath import TOTP

from tests.browser.conftest import DEMO_PASSWORD

pytestmark = pytest.mark.integration

# Injected by Playwright before any page script (outside the page's CSP): records violations.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""


def code_from_key(shown_key: str) -> str:
    key = shown_key.replace(" ", "")
    totp = TOTP(b32decode(key + "=" * (-len(key) % 8)))
    totp.time = time.time()
    return f"{totp.token():06d}"


def test_two_factor_login_and_every_area_work_under_the_csp(page, settings):
    settings.SAFEGUARD_2FA_REQUIRED = "privileged"
    page.context.add_init_script(RECORD_VIOLATIONS)
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    violations: list[str] = []

    def visit(url: str) -> None:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        violations.extend(f"{url}: {v}" for v in page.evaluate("window.__cspViolations || []"))

    # Password, then the set-up page (the admin must use 2FA), then the console.
    page.goto("/accounts/login/?next=/console/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/accounts/2fa/setup/"))
    assert page.locator("figure.qr svg").is_visible()
    key = page.locator("code.otp-key").inner_text()
    page.get_by_label("Code from your authenticator app").fill(code_from_key(key))
    page.get_by_role("button", name="Turn on two-factor login").click()
    page.wait_for_url(re.compile(r"/console/$"))

    for url in (
        "/console/",
        "/console/thumbnails/",
        "/console/captures/",
        "/console/logs/",
        "/console/recordings/",
        "/console/alerts/",
        "/console/insight/",
        "/console/confide/",
        "/console/exports/",
        "/admin/",
        "/admin/groups/monitoringgroup/",
        "/admin/policies/keywordpolicy/",
        "/admin/auth/user/",
        "/admin/policies/keywordpolicy/test-text/",
        "/api/docs/",
    ):
        visit(url)

    # Behaviour that lives in static JS still runs: a capture opens, and its screenshot's
    # blur toggle (captures.js) works; the API docs render their operations (Swagger UI's JS).
    visit("/console/captures/")
    page.get_by_role("link", name=re.compile("^Open")).first.click()
    page.wait_for_url(re.compile(r"/console/captures/[0-9a-f-]{36}/$"))
    violations.extend(page.evaluate("window.__cspViolations || []"))
    visit("/api/docs/")
    page.locator(".opblock").first.wait_for()

    assert violations == [], "\n".join(violations)
    assert [text for text in messages if "Content Security Policy" in text] == []
