"""The production stack (docker-compose.yml, Dockerfile, deploy/nginx.conf) agrees with the code.

Docker does not run on the development machines, so these files are kept correct by review and
by these checks: every variable the stack sets is one the server reads, the commands name real
entry points, and the services share what they must (the database, the broker, the media volume).
"""

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ["web", "worker", "beat", "migrate"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_variables() -> set[str]:
    """Names of the environment variables settings.py reads (env.str("NAME", ...), env.db("NAME")...)."""
    source = (ROOT / "safeguard" / "settings.py").read_text()
    return set(re.findall(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", source))


def env_example_variables() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def compose_interpolations() -> set[str]:
    """Variables docker compose substitutes into docker-compose.yml from .env (${NAME...})."""
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))


def command_words(service: dict) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(word) for word in command]


def volume_mounts(service: dict) -> dict[str, str]:
    """{source: target} of a service's volumes (short syntax, read-only flag dropped)."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        mounts[source] = target
    return mounts


def nginx_locations() -> dict[str, str]:
    """{location path: its block's text} of deploy/nginx.conf."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    return {match.group(1): match.group(2) for match in re.finditer(r"location\s+([^\s{]+)\s*\{([^}]*)\}", text)}


def test_the_stack_has_every_service(compose):
    assert {"postgres", "redis", "web", "worker", "beat", "nginx", "migrate"} <= set(compose["services"])
    assert compose["services"]["postgres"]["image"].startswith("postgres:16")
    assert compose["services"]["redis"]["image"].startswith("redis:7")


def test_app_services_are_built_from_the_dockerfile(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", dockerfile, re.M)
    assert "libpango-1.0-0" in dockerfile  # WeasyPrint's PDF rendering
    assert "requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile
    for name in APP_SERVICES:
        assert compose["services"][name]["build"] == "."


def test_web_runs_gunicorn_on_the_projects_wsgi_application(compose):
    words = command_words(compose["services"]["web"])
    assert words[0] == "gunicorn"
    assert "safeguard.wsgi" in words
    from safeguard.wsgi import application

    assert callable(application)


@pytest.mark.parametrize("service, role", [("worker", "worker"), ("beat", "beat")])
def test_celery_services_use_the_projects_celery_app(compose, service, role):
    words = command_words(compose["services"][service])
    assert words[:4] == ["celery", "-A", "safeguard", role]
    # `celery -A safeguard` finds the package's `celery_app`, which must be the app in safeguard/celery.py.
    import safeguard
    from safeguard.celery import app

    assert app.main == "safeguard"
    assert safeguard.celery_app is app


def test_migrations_run_before_the_app_starts(compose):
    migrate = compose["services"]["migrate"]
    assert "manage.py migrate" in " ".join(command_words(migrate))
    assert migrate["restart"] == "no"
    for name in ["web", "worker", "beat"]:
        assert compose["services"][name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_variable_the_stack_sets_is_read_by_settings(compose):
    read = settings_variables()
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["env_file"] == ".env"
        unknown = set(service["environment"]) - read
        assert not unknown, f"{name} sets variables settings.py never reads: {sorted(unknown)}"


def test_env_example_lists_every_setting_and_nothing_stale():
    read, listed = settings_variables(), env_example_variables()
    assert read, "found no env reads in settings.py: the pattern is out of date"
    assert not read - listed, f"settings.py reads variables .env.example does not list: {sorted(read - listed)}"
    stale = listed - read - compose_interpolations()
    assert not stale, f".env.example lists variables nothing reads: {sorted(stale)}"


def test_env_example_comments_every_variable():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert index > 0 and lines[index - 1].startswith("#"), f"no comment above {line!r}"


def test_database_and_broker_urls_point_at_their_services(compose):
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        # ${POSTGRES_PASSWORD:?message} is filled in from .env by docker compose.
        database = urlsplit(re.sub(r"\$\{[^}]*\}", "secret", environment["DATABASE_URL"]))
        assert database.scheme in {"postgres", "postgresql"}
        assert database.hostname == "postgres"
        assert database.username == postgres["POSTGRES_USER"]
        assert database.path == "/" + postgres["POSTGRES_DB"]
        assert "${POSTGRES_PASSWORD" in environment["DATABASE_URL"]
        assert urlsplit(environment["REDIS_URL"]).hostname == "redis"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    for name in ["migrate", "web"]:
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_media_volume_is_shared_by_web_worker_and_nginx(compose):
    services = compose["services"]
    media_root = services["web"]["environment"]["MEDIA_ROOT"]
    volume = next(source for source, target in volume_mounts(services["web"]).items() if target == media_root)
    assert volume in compose["volumes"]
    assert volume_mounts(services["worker"]).get(volume) == services["worker"]["environment"]["MEDIA_ROOT"]
    nginx_media = volume_mounts(services["nginx"])[volume]
    # Django answers X-Accel-Redirect: <prefix><path>; nginx's internal location maps it onto the volume.
    prefix = services["web"]["environment"]["SAFEGUARD_X_ACCEL_REDIRECT_PREFIX"]
    location = nginx_locations()[prefix]
    assert re.search(r"^\s*internal;", location, re.M)
    assert re.search(rf"^\s*alias\s+{re.escape(nginx_media.rstrip('/'))}/;", location, re.M)


def test_nginx_serves_static_files_and_proxies_the_rest_to_web(compose):
    services = compose["services"]
    static_root = services["web"]["environment"]["STATIC_ROOT"]
    volume = next(source for source, target in volume_mounts(services["web"]).items() if target == static_root)
    assert volume_mounts(services["migrate"])[volume] == static_root  # filled by collectstatic there
    locations = nginx_locations()
    assert re.search(
        rf"alias\s+{re.escape(volume_mounts(services['nginx'])[volume].rstrip('/'))}/;", locations["/static/"]
    )
    assert "proxy_pass http://safeguard_web;" in locations["/"]
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    bind = next(word for word in command_words(services["web"]) if word.startswith("--bind="))
    assert re.search(rf"server\s+web:{bind.rsplit(':', 1)[1]};", config)
    assert "./deploy/nginx.conf" in volume_mounts(services["nginx"])


def test_data_lives_in_named_volumes_and_services_have_healthchecks(compose):
    assert volume_mounts(compose["services"]["postgres"])["pgdata"] == "/var/lib/postgresql/data"
    assert "pgdata" in compose["volumes"]
    for name in ["postgres", "redis", "web", "worker", "nginx"]:
        assert compose["services"][name]["healthcheck"]["test"], name


def test_makefile_and_ci_entry_points():
    makefile = (ROOT / "Makefile").read_text()
    for target in ["run", "test", "lint", "bench", "clean"]:
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no {target} target"
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    text = ci.read_text()
    assert "set -euo pipefail" in text
    # `make test` runs as a command of its own (possibly under `timeout`), not in a comment.
    assert re.search(r"^(timeout [^\n]*)?make test\b", text, re.M)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FakeWeb(BaseHTTPRequestHandler):
    """Stands in for gunicorn: answers X-Accel-Redirect for /screenshot, and echoes what nginx forwarded."""

    def do_GET(self):  # noqa: N802 - the http.server API
        if self.path == "/screenshot":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("X-Accel-Redirect", "/protected-media/screenshots/shot.png")
            self.end_headers()
            return
        body = f"{self.path} host={self.headers['Host']} proto={self.headers['X-Forwarded-Proto']}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def running_nginx(tmp_path):
    """deploy/nginx.conf run by a real nginx, with the compose paths and host names mapped onto tmp_path."""
    web = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeWeb)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    (tmp_path / "static" / "core").mkdir(parents=True)
    (tmp_path / "static" / "core" / "site.css").write_text("body { color: black; }")
    (tmp_path / "media" / "screenshots").mkdir(parents=True)
    (tmp_path / "media" / "screenshots" / "shot.png").write_bytes(b"\x89PNG pixels")
    port = free_port()
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    site = site.replace("server web:8000;", f"server 127.0.0.1:{web.server_address[1]};")
    site = site.replace("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;")
    site = site.replace("/data/static/", f"{tmp_path}/static/").replace("/data/media/", f"{tmp_path}/media/")
    (tmp_path / "site.conf").write_text(site)
    temp_paths = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};" for kind in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    )
    # As root, nginx's workers would run as `nobody` and could not read pytest's private tmp_path.
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user} worker_processes 1; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{ include /etc/nginx/mime.types; access_log off; {temp_paths} include {tmp_path}/site.conf; }}\n"
    )
    nginx = subprocess.Popen(
        ["nginx", "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log"), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/nginx-health", timeout=1)
            break
        except OSError:
            assert nginx.poll() is None, nginx.stderr.read().decode()
            time.sleep(0.05)
    yield base
    nginx.terminate()
    nginx.wait(timeout=10)
    web.shutdown()


def fetch(url: str, **headers: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.integration
def test_nginx_config_serves_static_proxies_and_hides_media(running_nginx):
    status, headers, body = fetch(f"{running_nginx}/static/core/site.css")
    assert (status, body) == (200, b"body { color: black; }")
    assert headers["Content-Type"] == "text/css"

    status, _, body = fetch(f"{running_nginx}/console/", Host="safeguard.school.example")
    assert (status, body) == (200, b"/console/ host=safeguard.school.example proto=http")
    _, _, body = fetch(f"{running_nginx}/console/", **{"X-Forwarded-Proto": "https"})
    assert body.endswith(b"proto=https")  # the outer HTTPS proxy's scheme reaches Django

    # Media is never reachable directly, only through the app's X-Accel-Redirect answer.
    status, _, body = fetch(f"{running_nginx}/protected-media/screenshots/shot.png")
    assert status == 404 and b"PNG" not in body
    status, headers, body = fetch(f"{running_nginx}/screenshot")
    assert (status, body) == (200, b"\x89PNG pixels")
    assert headers["Content-Type"] == "image/png"
    assert headers["Cache-Control"] == "private, no-store"


# --- object storage (MinIO, profile "minio") ------------------------------------------------------

MINIO_SERVICES = ["minio", "minio-init"]


def test_minio_is_pinned_optional_and_keeps_its_data_in_a_volume(compose):
    services = compose["services"]
    for name in MINIO_SERVICES:
        image = services[name]["image"]
        assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z", image), image
        assert services[name]["profiles"] == ["minio"]  # only with COMPOSE_PROFILES=minio
    assert services["minio"]["image"] == services["minio-init"]["image"]
    assert volume_mounts(services["minio"])["miniodata"] == "/data"
    assert "miniodata" in compose["volumes"]
    assert services["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert "ports" not in services["minio"]  # never published: the bucket is reached by the app only
    assert services["minio-init"]["restart"] == "no"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_app_services_get_the_s3_settings_and_wait_for_the_bucket(compose):
    services = compose["services"]
    read = settings_variables()
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        for variable in ["S3_BUCKET", "S3_ENDPOINT_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"]:
            assert variable in environment and variable in read, (name, variable)
        # Empty S3_BUCKET keeps media on the volume; the endpoint defaults to the bundled MinIO.
        assert environment["S3_BUCKET"] == "${S3_BUCKET:-}"
        assert environment["S3_ENDPOINT_URL"] == "${S3_ENDPOINT_URL:-http://minio:9000}"
    # The processes that store and read media wait for the bucket (skipped without the profile).
    for name in ["web", "worker"]:
        dependency = services[name]["depends_on"]["minio-init"]
        assert dependency == {"condition": "service_completed_successfully", "required": False}
    # MinIO serves the S3 API on its default port 9000, the one the endpoint names.
    assert "--address" not in " ".join(command_words(services["minio"]))


def test_profiled_services_require_nothing_at_load_time():
    # docker compose interpolates every service before choosing profiles: a ${VAR:?} in the MinIO
    # services would stop a stack that does not use MinIO at all.
    text = (ROOT / "docker-compose.yml").read_text()
    minio_part = text[text.index("\n  minio:\n") : text.index("\n  nginx:\n")]
    assert not re.search(r"(?<!\$)\$\{[A-Z_]+:\?", minio_part)


def compose_unescape(script: str) -> str:
    """What docker compose hands the container: `$$` becomes `$` (no ${...} in these scripts)."""
    assert not re.search(r"(?<!\$)\$\{", script)
    return script.replace("$$", "$")


def run_minio_init(compose, tmp_path, **environment: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """minio-init's script under a real sh, with a stand-in `mc` that records its calls.

    The stand-in is the one fake here: MinIO (and its `mc`) is not installable on this machine.
    """
    service = compose["services"]["minio-init"]
    assert service["entrypoint"] == ["sh", "-ec"]
    script = compose_unescape(service["command"][0])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake_mc = bin_dir / "mc"
    fake_mc.write_text(
        "#!/bin/sh\n"
        f'for arg in "$@"; do printf "%s\\037" "$arg" >> {calls}; done; echo >> {calls}\n'
        f'[ "$1 $2 $3" = "admin policy create" ] && cp "$6" {tmp_path}/policy.json\n'
        "exit 0\n"
    )
    fake_mc.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "MINIO_ROOT_USER": "admin", **environment}
    result = subprocess.run(["sh", "-ec", script], env=env, capture_output=True, text=True, timeout=30)  # noqa: S603,S607
    recorded = []
    if calls.exists():
        recorded = [line.split("\x1f")[:-1] for line in calls.read_text().splitlines()]
    return result, recorded


def test_minio_init_makes_a_private_bucket_and_a_key_limited_to_it(compose, tmp_path):
    result, calls = run_minio_init(
        compose,
        tmp_path,
        MINIO_ROOT_PASSWORD="rootsecret",
        S3_BUCKET="safeguard-media",
        S3_ACCESS_KEY_ID="safeguard-app",
        S3_SECRET_ACCESS_KEY="appsecret123",
    )

    assert result.returncode == 0, result.stderr
    assert calls[0] == ["alias", "set", "local", "http://minio:9000", "admin", "rootsecret"]
    assert ["mb", "--ignore-existing", "local/safeguard-media"] in calls
    assert ["anonymous", "set", "none", "local/safeguard-media"] in calls
    assert ["admin", "user", "add", "local", "safeguard-app", "appsecret123"] in calls
    assert ["admin", "policy", "attach", "local", "safeguard-media", "--user", "safeguard-app"] in calls
    policy = json.loads((tmp_path / "policy.json").read_text())
    resources = {resource for statement in policy["Statement"] for resource in statement["Resource"]}
    assert resources == {"arn:aws:s3:::safeguard-media", "arn:aws:s3:::safeguard-media/*"}
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert actions == {"s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}


def test_minio_init_refuses_to_run_without_the_bucket_settings(compose, tmp_path):
    result, calls = run_minio_init(compose, tmp_path, MINIO_ROOT_PASSWORD="rootsecret", S3_BUCKET="")

    assert result.returncode != 0
    assert "Set S3_BUCKET in .env" in result.stderr
    assert calls == []


def test_the_minio_server_refuses_to_start_without_a_root_password(compose):
    script = compose_unescape(compose["services"]["minio"]["command"][0])
    result = subprocess.run(  # noqa: S603
        ["sh", "-ec", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "Set MINIO_ROOT_PASSWORD in .env" in result.stderr
