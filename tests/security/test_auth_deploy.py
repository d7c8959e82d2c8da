"""Production settings: `manage.py check --deploy` is clean, cookies are secure, and the security
headers (HSTS, frame denial, no sniffing, referrer policy, CSP) are sent.

Settings are read once at import, so production is started as its own process with the
environment a deployment sets (.env.example's HTTPS section): DEBUG off, SAFEGUARD_HTTPS on.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRINT = """
import json
import django
django.setup()
from django.conf import settings
print(json.dumps({
    "debug": settings.DEBUG,
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "session_cookie_httponly": settings.SESSION_COOKIE_HTTPONLY,
    "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
    "hsts_seconds": getattr(settings, "SECURE_HSTS_SECONDS", 0),
    "hsts_subdomains": getattr(settings, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False),
    "ssl_redirect": getattr(settings, "SECURE_SSL_REDIRECT", False),
    "x_frame_options": settings.X_FRAME_OPTIONS,
}))
"""


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "SECURE_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "safeguard.settings",
            "SAFEGUARD_VAR_DIR": str(tmp_path),
            "SECRET_KEY": secrets.token_urlsafe(60),
            "DEBUG": "false",
            "SAFEGUARD_HTTPS": "true",
            "ALLOWED_HOSTS": "safeguard.school.example",
            "CSRF_TRUSTED_ORIGINS": "https://safeguard.school.example",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "REDIS_URL": "",
        }
    )
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    completed = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path)
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "System check identified no issues" in completed.stdout


def test_check_deploy_fails_without_https(tmp_path):
    # The check is meaningful: the same command flags a deployment served over plain HTTP.
    completed = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        production_env(tmp_path, SAFEGUARD_HTTPS="false"),
    )

    assert completed.returncode != 0
    assert "security.W004" in completed.stderr + completed.stdout  # no HSTS
    assert "security.W012" in completed.stderr + completed.stdout  # session cookie not secure


def test_production_cookies_and_transport(tmp_path):
    completed = run([sys.executable, "-c", PRINT], production_env(tmp_path))
    assert completed.returncode == 0, completed.stderr
    values = json.loads(completed.stdout.strip().splitlines()[-1])

    assert values == {
        "debug": False,
        "session_cookie_secure": True,
        "session_cookie_httponly": True,
        "csrf_cookie_secure": True,
        "hsts_seconds": 31536000,
        "hsts_subdomains": True,
        "ssl_redirect": True,
        "x_frame_options": "DENY",
    }


@pytest.mark.django_db
def test_security_headers_on_an_https_response(client, settings):
    # The production values, applied in this process (SecurityMiddleware reads them per request).
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True

    response = client.get("/accounts/login/", secure=True)

    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_no_hsts_over_plain_http(client, settings):
    # Browsers ignore HSTS over HTTP, and Django only sends it over HTTPS.
    settings.SECURE_HSTS_SECONDS = 31536000

    assert "Strict-Transport-Security" not in client.get("/accounts/login/")


@pytest.mark.django_db
def test_session_and_csrf_cookies_are_flagged(client, settings):
    from tests.factories import PASSWORD, StaffUserFactory

    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    StaffUserFactory(username="teacher")
    client.get("/accounts/login/", secure=True)
    response = client.post("/accounts/login/", {"username": "teacher", "password": PASSWORD}, secure=True)

    session = response.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
    assert client.cookies["csrftoken"]["secure"]
