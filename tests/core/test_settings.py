"""Settings come from the environment, with safe defaults for the embedded mode.

Each case starts a fresh Python process with chosen variables, because settings are read once
at import: the test process's own settings cannot show what another environment would give.
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRINT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "db_host": settings.DATABASES["default"].get("HOST", ""),
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "broker": settings.CELERY_BROKER_URL,
    "cache": settings.CACHES["default"]["BACKEND"],
    "secret_key": settings.SECRET_KEY,
    "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "media_root": str(settings.MEDIA_ROOT),
    "static_root": str(settings.STATIC_ROOT),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "ssl_redirect": getattr(settings, "SECURE_SSL_REDIRECT", False),
    "email_backend": settings.EMAIL_BACKEND,
}))
"""

# Variables the cases control. Set to "" rather than removed where settings treat "" as unset,
# so a developer's .env (read with overwrite=False) cannot leak into the case.
CONTROLLED = [
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "MEDIA_ROOT",
    "STATIC_ROOT",
    "SAFEGUARD_HTTPS",
    "EMAIL_URL",
]


def settings_in(var_dir: Path, **variables: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in CONTROLLED}
    env.update({"DJANGO_SETTINGS_MODULE": "safeguard.settings", "SAFEGUARD_VAR_DIR": str(var_dir)})
    env.update({"REDIS_URL": "", "SECRET_KEY": ""})
    env.update(variables)
    completed = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_without_database_url_the_database_is_sqlite_in_the_var_dir(tmp_path):
    values = settings_in(tmp_path)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["db_name"] == str(tmp_path / "db.sqlite3")
    assert values["media_root"] == str(tmp_path / "media")
    assert values["static_root"] == str(tmp_path / "static")


def test_database_url_chooses_the_engine(tmp_path):
    values = settings_in(tmp_path, DATABASE_URL="postgres://safeguard:pw@db.internal:5432/safeguard")
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["db_name"] == "safeguard"
    assert values["db_host"] == "db.internal"
    values = settings_in(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'other.sqlite3'}")
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["db_name"] == str(tmp_path / "other.sqlite3")


def test_without_redis_url_tasks_run_in_process(tmp_path):
    values = settings_in(tmp_path)
    assert values["eager"] is True
    assert values["broker"] == "memory://"
    assert values["cache"] == "django.core.cache.backends.locmem.LocMemCache"


def test_with_redis_url_tasks_go_to_the_broker(tmp_path):
    values = settings_in(tmp_path, REDIS_URL="redis://127.0.0.1:6379/3")
    assert values["eager"] is False
    assert values["broker"] == "redis://127.0.0.1:6379/3"
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"


def test_secret_key_is_generated_once_into_the_var_dir_and_reused(tmp_path):
    first = settings_in(tmp_path)["secret_key"]
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) >= 50
    assert settings_in(tmp_path)["secret_key"] == first
    assert settings_in(tmp_path / "elsewhere")["secret_key"] != first  # another install, another key


def test_secret_key_from_the_environment_wins_and_writes_nothing(tmp_path):
    assert settings_in(tmp_path, SECRET_KEY="from-the-environment")["secret_key"] == "from-the-environment"
    assert not (tmp_path / "secret_key").exists()


def test_debug_defaults_off_and_follows_the_environment(tmp_path):
    assert settings_in(tmp_path)["debug"] is False
    assert settings_in(tmp_path, DEBUG="true")["debug"] is True
    assert settings_in(tmp_path, DEBUG="false")["debug"] is False


def test_https_switches_on_secure_cookies_and_the_redirect(tmp_path):
    plain = settings_in(tmp_path)
    assert plain["session_cookie_secure"] is False
    assert plain["ssl_redirect"] is False
    https = settings_in(tmp_path, SAFEGUARD_HTTPS="true")
    assert https["session_cookie_secure"] is True
    assert https["ssl_redirect"] is True


def test_hosts_paths_and_email_from_the_environment(tmp_path):
    values = settings_in(
        tmp_path,
        ALLOWED_HOSTS="safeguard.school.example,10.0.0.5",
        MEDIA_ROOT=str(tmp_path / "m"),
        STATIC_ROOT=str(tmp_path / "s"),
        EMAIL_URL="smtp://mail.school.example:25",
    )
    assert values["allowed_hosts"] == ["safeguard.school.example", "10.0.0.5"]
    assert values["media_root"] == str(tmp_path / "m")
    assert values["static_root"] == str(tmp_path / "s")
    assert values["email_backend"] == "django.core.mail.backends.smtp.EmailBackend"
    assert settings_in(tmp_path)["email_backend"] == "django.core.mail.backends.console.EmailBackend"
