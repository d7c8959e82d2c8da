"""The whole agent, as a school would run it, against the live server under a real X display.

`safeguard-agent enrol` with an enrolment code, then `safeguard-agent run --headless` on Xvfb.
A phrase typed with xdotool into an xterm becomes a capture with the right keyword, severity and
user; its screenshot decodes and carries the watermark; the severe keyword brings an MP4 of the
configured length that decodes; moving the focus between two xterms makes window events.
"""

import os
import pwd
import subprocess

import imageio_ffmpeg
import pytest
from PIL import Image

from safeguard.captures.models import Capture, Recording
from safeguard.groups.models import Device
from safeguard.groups.services import enrolment_code_create
from safeguard.logs.models import ActivityEvent, EventType
from safeguard.policies.models import AgentSettings, MatchKind, Severity
from safeguard_agent.evidence.screenshot import grab_screen
from safeguard_agent.testing import XvfbDisplay, focus, type_text
from tests.agent_e2e.conftest import AGENT, read_db, wait_for
from tests.factories import KeywordFactory, KeywordPolicyFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RECORDING_SECONDS = 2
PRE_TRIGGER_SECONDS = 10  # the agent's in-memory ring before a severe match
DOMAIN = "HILLSIDE"


def watermark_region(image: Image.Image) -> Image.Image:
    """The top-right corner, where the watermark goes (the xterms sit top-left, far from it)."""
    return image.convert("RGB").crop((image.width - 420, 0, image.width, 150))


def bright_pixels(image: Image.Image) -> int:
    return sum(1 for pixel in image.get_flattened_data() if min(pixel) >= 230)


@pytest.fixture
def school(db):
    policy = KeywordPolicyFactory(name="Self-harm (test)")
    KeywordFactory(policy=policy, text="kms", match_kind=MatchKind.WORD, severity=Severity.SEVERE)
    settings_row = AgentSettings.load()
    settings_row.recording_seconds = RECORDING_SECONDS
    settings_row.save()
    return policy


def test_typing_a_severe_phrase_makes_a_watermarked_capture_a_recording_and_window_events(
    live_server, school, tmp_path
):
    home = tmp_path / "agent-home"
    _, code = enrolment_code_create(label="e2e")
    enrol = subprocess.run(  # noqa: S603
        [str(AGENT), "enrol", "--server", live_server.url, "--code", code, "--hostname", "E2E-PC01"]
        + ["--config-dir", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert enrol.returncode == 0, enrol.stderr
    device = Device.objects.get(hostname="E2E-PC01")
    expected_user = f"{DOMAIN}\\{pwd.getpwuid(os.getuid()).pw_name}"

    with XvfbDisplay() as display:
        notes = display.open_xterm("Notes")
        homework = display.open_xterm("Homework")
        plain = grab_screen()  # the screen as it is, with no watermark
        log_path = tmp_path / "agent.stderr"
        agent = subprocess.Popen(  # noqa: S603
            [str(AGENT), "run", "--headless", "--config-dir", str(home)],
            env={**display.env(), "SAFEGUARD_USER_DOMAIN": DOMAIN},
            stdout=subprocess.DEVNULL,
            stderr=log_path.open("w"),
        )
        try:
            wait_for(
                lambda: "The keyboard monitor is running." in log_path.read_text(),
                timeout=60,
                what="the keyboard monitor",
            )
            focus(notes)
            type_text("honestly i think i will kms tonight ")

            capture = wait_for(
                lambda: read_db(lambda: Capture.objects.select_related("person").first()),
                timeout=60,
                what="the capture",
            )
            recording = wait_for(
                lambda: read_db(lambda: Recording.objects.filter(capture=capture).first()),
                timeout=90,
                what="the recording",
            )

            focus(homework)
            wait_for(
                lambda: read_db(
                    lambda: ActivityEvent.objects.filter(type=EventType.WINDOW, data__title="Notes").exists()
                ),
                timeout=30,
                what="the window event for Notes",
            )
            focus(notes)
            wait_for(
                lambda: read_db(
                    lambda: ActivityEvent.objects.filter(type=EventType.WINDOW, data__title="Homework").exists()
                ),
                timeout=30,
                what="the window event for Homework",
            )
        finally:
            agent.terminate()
            agent.wait(60)
    log = log_path.read_text()
    assert agent.returncode == 0, log

    # The capture: keyword, severity, user, device, where it was typed, and a short context.
    assert capture.keyword_text == "kms"
    assert capture.severity == Severity.SEVERE
    assert capture.policy == school
    assert capture.person.username == expected_user
    assert capture.device == device
    assert (capture.application, capture.window_title) == ("xterm", "Notes")
    assert "kms" in capture.context and len(capture.context) <= 80

    # Its screenshot decodes and carries the watermark in the top-right corner.
    with capture.screenshot.open("rb") as handle, Image.open(handle) as shot:
        shot.load()
        assert shot.size == (1280, 800)
        marked = watermark_region(shot)
    unmarked = watermark_region(plain)
    assert len(set(unmarked.get_flattened_data())) == 1  # bare Xvfb background there without the watermark
    assert bright_pixels(unmarked) == 0
    assert bright_pixels(marked) > 200  # the white text of the watermark
    changed = sum(1 for a, b in zip(marked.get_flattened_data(), unmarked.get_flattened_data(), strict=True) if a != b)
    assert changed > 0.2 * marked.width * marked.height  # the panel behind the text

    # The recording of the severe match: an H.264 MP4 that decodes, of the configured length
    # (plus the pre-trigger seconds the agent keeps in memory).
    path = recording.file.path
    frames = imageio_ffmpeg.read_frames(path)
    meta = next(frames)
    count = sum(1 for _ in frames)
    assert meta["size"] == (1280, 800)
    assert meta["codec"] == "h264"
    assert count >= 1
    assert RECORDING_SECONDS - 0.5 <= meta["duration"] <= RECORDING_SECONDS + PRE_TRIGGER_SECONDS + 2
    assert RECORDING_SECONDS - 0.5 <= recording.duration_seconds <= RECORDING_SECONDS + PRE_TRIGGER_SECONDS + 2

    # Window focus became window events, one per stretch, with the application.
    titles = list(
        ActivityEvent.objects.filter(device=device, type=EventType.WINDOW).values_list("data__title", flat=True)
    )
    assert {"Notes", "Homework"} <= set(titles)
    assert ActivityEvent.objects.filter(type=EventType.WINDOW, data__application="xterm").exists()
    # Nothing typed beyond the capture's context ever reached the server's activity log.
    assert not ActivityEvent.objects.filter(data__icontains="tonight").exists()
