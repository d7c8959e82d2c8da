"""Web processes keep no state on local disk (docs/deployment.md, "Web processes keep no state").

Several web replicas behind a load balancer must be interchangeable: whatever one process
writes, another must see, so it goes to the database, the cache or media storage, never to the
process's own disk. This test runs a fresh Python process with production-like settings (SECRET_KEY
from the environment), and records every file it opens for writing (a `sys.addaudithook` on the
`open` event, which covers builtins.open, io and os.open) while staff log in and browse the
console and an agent enrols, uploads a capture, a large recording, a thumbnail and events. Only
the media folder, the temporary folder (Django spools large uploads there for the request) and
the SQLite file standing in for PostgreSQL may be written.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, sys, tempfile

import django

django.setup()
from django.core.management import call_command

call_command("migrate", verbosity=0)

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import build_cast
from tests.factories import KeywordFactory, KeywordPolicyFactory, png_bytes

cast = build_cast()
KeywordFactory(text="blade", severity="high", policy=KeywordPolicyFactory(name="Self-harm"))
cast.lead.set_password("a-long-test-password-9")
cast.lead.save()

writes = []


def hook(event, args):
    if event != "open":
        return
    path, mode, flags = args
    if isinstance(path, int):
        return  # an already-open descriptor
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)
    )
    if writing:
        writes.append(os.path.abspath(os.fsdecode(path)))


sys.addaudithook(hook)

# Staff: log in (session in the database), browse, view a screenshot.
staff = Client()
answers = {}
answers["login"] = staff.post(
    "/accounts/login/", {"username": cast.lead.username, "password": "a-long-test-password-9"}
).status_code
for page in ["/console/", "/console/captures/", "/console/logs/", "/console/thumbnails/"]:
    answers[page] = staff.get(page).status_code

# An agent: a capture, a recording over the in-memory upload limit, a thumbnail, events.
agent = APIClient()
agent.credentials(HTTP_AUTHORIZATION=f"Device {cast.device_token}")
import uuid
from datetime import timedelta

from django.utils import timezone

meta = {
    "id": str(uuid.uuid4()),
    "occurred_at": (timezone.now() - timedelta(seconds=20)).isoformat(),
    "user": cast.pupil9.username,  # a Year 9 pupil: the lead sees the capture
    "keyword": "blade",
    "severity": "high",
    "context": "i want to get a blade and",
    "application": "chrome.exe",
    "window_title": "Search - Google Chrome",
    "url": "https://www.google.com/search?q=x",
}
answers["capture"] = agent.post(
    "/api/v1/agent/captures",
    {"metadata": json.dumps(meta), "screenshot": SimpleUploadedFile("s.png", png_bytes(), content_type="image/png")},
    format="multipart",
).status_code
mp4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00\x00\x00\x08free" + os.urandom(6 * 1024 * 1024)
answers["recording"] = agent.post(
    f"/api/v1/agent/captures/{meta['id']}/recording",
    {"recording": SimpleUploadedFile("r.mp4", mp4, content_type="video/mp4")},
    format="multipart",
).status_code
answers["thumbnail"] = agent.post(
    "/api/v1/agent/thumbnail",
    {"image": SimpleUploadedFile("t.png", png_bytes(), content_type="image/png")},
    format="multipart",
).status_code
event = {"id": str(uuid.uuid4()), "type": "window", "occurred_at": timezone.now().isoformat(),
         "user": cast.pupil9.username, "data": {"title": "Notepad", "application": "notepad.exe"}}
answers["events"] = agent.post("/api/v1/agent/events", {"events": [event]}, format="json").status_code
from safeguard.captures.models import Capture

capture = Capture.objects.get(uuid=meta["id"])
answers["screenshot"] = staff.get(f"/console/captures/{capture.uuid}/screenshot").status_code
answers["recording_view"] = staff.get(f"/console/captures/{capture.uuid}/").status_code

print(json.dumps({"answers": answers, "writes": writes, "tmp": tempfile.gettempdir()}))
"""


@pytest.mark.integration
def test_a_web_process_writes_nothing_outside_media_and_temporary_uploads(tmp_path):
    media, var, tmp = tmp_path / "media", tmp_path / "var", tmp_path / "tmp"
    tmp.mkdir()
    database = tmp_path / "db.sqlite3"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "S3_BUCKET", "SAFEGUARD_X_ACCEL_REDIRECT_PREFIX"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "safeguard.settings",
            "SECRET_KEY": "a-secret-from-the-environment-as-in-production",
            "SAFEGUARD_VAR_DIR": str(var),
            "MEDIA_ROOT": str(media),
            "DATABASE_URL": f"sqlite:///{database}",
            "TMPDIR": str(tmp),
            "PYTHONDONTWRITEBYTECODE": "1",
            "SAFEGUARD_2FA_REQUIRED": "off",
            "REDIS_URL": "",
        }
    )
    completed = subprocess.run(  # noqa: S603
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    assert report["answers"] == {
        "login": 302,
        "/console/": 200,
        "/console/captures/": 200,
        "/console/logs/": 200,
        "/console/thumbnails/": 200,
        "capture": 201,
        "recording": 201,
        "thumbnail": 204,
        "events": 200,
        "screenshot": 200,
        "recording_view": 200,
    }
    allowed = (str(media), str(tmp), str(database))
    outside = sorted({path for path in report["writes"] if not path.startswith(allowed)})
    assert outside == []
    assert any(path.startswith(str(media)) for path in report["writes"])  # the hook does see writes
    assert any(path.startswith(str(tmp)) for path in report["writes"])  # the 6 MiB recording was spooled
    assert not var.exists() or list(var.iterdir()) == [] or {p.name for p in var.iterdir()} <= {"static"}
