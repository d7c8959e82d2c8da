"""Screen recordings: pre-trigger frames kept in memory only, H.264 MP4s that decode, concurrent recordings.

Most tests drive the recorder through its `grab` seam with a scripted screen (a solid colour the test
changes), so frame counts and contents are exact; one records the real X screen.
"""

import io
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image, ImageStat

from safeguard_agent.evidence.recorder import RecordingError, ScreenRecorder, record_for
from safeguard_agent.evidence.screenshot import ScreenCaptureError
from safeguard_agent.testing import XvfbDisplay

RED = (220, 30, 30)
GREEN = (30, 200, 60)
BLUE = (30, 60, 220)


class ScriptedScreen:
    """A `grab` callable: a solid-colour screen whose colour and size the test sets."""

    def __init__(self, colour: tuple[int, int, int] = RED, size: tuple[int, int] = (320, 200)) -> None:
        self.colour = colour
        self.size = size
        self.calls = 0
        self.widths: set[int | None] = set()
        self.failing = False
        self._lock = threading.Lock()

    def __call__(self, max_width: int | None) -> Image.Image:
        with self._lock:
            self.calls += 1
            self.widths.add(max_width)
            if self.failing:
                raise ScreenCaptureError("simulated: the screen is locked")
            return Image.new("RGB", self.size, self.colour)


def decode(path: Path) -> tuple[dict, list[tuple[float, float, float]]]:
    """The video's metadata and the mean colour of each decoded frame."""
    frames = imageio_ffmpeg.read_frames(str(path))
    meta = next(frames)
    colours = []
    for data in frames:
        image = Image.frombytes("RGB", meta["size"], data)
        colours.append(tuple(ImageStat.Stat(image).mean))
    return meta, colours


def close_to(colour: tuple[float, ...], expected: tuple[int, int, int], tolerance: float = 25) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def recorders():
    """Recorders a test starts, stopped whatever happens."""
    started: list[ScreenRecorder] = []

    def make(**kwargs) -> ScreenRecorder:
        recorder = ScreenRecorder(**kwargs)
        started.append(recorder)
        return recorder.start()

    yield make
    for recorder in started:
        recorder.stop()


def test_a_recording_starts_with_the_moments_before_the_trigger(recorders, tmp_path: Path) -> None:
    screen = ScriptedScreen(RED)
    recorder = recorders(fps=10, pre_seconds=0.4, grab=screen, max_width=1280)
    wait_until(lambda: recorder.buffered_frames() == 4)
    triggered_at = datetime.now(UTC)
    screen.colour = GREEN  # what happens on screen after the match

    recording = recorder.record_clip(0.4, tmp_path / "capture.mp4")

    assert recording.path == tmp_path / "capture.mp4"
    assert recording.frames == 8 and recording.pre_trigger_frames == 4
    assert recording.duration_seconds == pytest.approx(0.8)
    assert recording.started_at < triggered_at
    meta, colours = decode(recording.path)
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (320, 200)
    assert meta["fps"] == 10
    assert meta["duration"] == pytest.approx(0.8, abs=0.1)
    assert len(colours) == 8
    assert close_to(colours[0], RED)  # pre-trigger
    assert close_to(colours[-1], GREEN)  # live
    assert screen.widths == {1280}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture.mp4"]  # no temporary file left behind


def test_the_real_screen_is_recorded_from_before_the_trigger(tmp_path: Path) -> None:
    # 2 s at 2 fps after the trigger (4 frames) plus 1 s before it (2 frames), from a real X screen.
    with XvfbDisplay(screen="640x480x24") as display:
        subprocess.run(["xsetroot", "-solid", "#dc1e1e"], env=display.env(), check=True, timeout=15)
        recorder = ScreenRecorder(fps=2, pre_seconds=1.0).start()
        try:
            wait_until(lambda: recorder.buffered_frames() == 2)
            result: dict[str, object] = {}
            worker = threading.Thread(
                target=lambda: result.update(recording=recorder.record_clip(2.0, tmp_path / "severe.mp4"))
            )
            worker.start()
            subprocess.run(["xsetroot", "-solid", "#1e3cdc"], env=display.env(), check=True, timeout=15)
            worker.join(timeout=30)
        finally:
            recorder.stop()

    recording = result["recording"]
    assert recording.frames == 6 and recording.pre_trigger_frames == 2  # type: ignore[attr-defined]
    meta, colours = decode(tmp_path / "severe.mp4")
    assert meta["size"] == (640, 480)
    assert meta["fps"] == 2
    assert meta["duration"] == pytest.approx(3.0, abs=0.1)
    assert len(colours) == 6
    assert close_to(colours[0], (0xDC, 0x1E, 0x1E))  # the screen before the trigger
    assert close_to(colours[-1], (0x1E, 0x3C, 0xDC))  # the screen after it


def test_a_slower_ring_grabs_fewer_frames_but_a_recording_keeps_the_full_rate(recorders, tmp_path: Path) -> None:
    """The agent keeps 1 frame/s in the ring while nothing records; the clip still covers every tick."""
    screen = ScriptedScreen(RED)
    recorder = recorders(fps=10, pre_seconds=0.4, grab=screen, ring_fps=5)
    wait_until(lambda: recorder.buffered_frames() == 3)  # 4 ticks at every other tick, and the one before
    calls, first_tick = screen.calls, recorder._last_tick
    wait_until(lambda: recorder._last_tick >= first_tick + 10)
    assert screen.calls - calls <= 6  # every other tick of 10 (not 10 grabs)
    screen.colour = GREEN

    recording = recorder.record_clip(0.4, tmp_path / "ring.mp4")

    assert recording.frames == 8 and recording.pre_trigger_frames == 4
    _, colours = decode(recording.path)
    assert len(colours) == 8
    assert all(close_to(colour, RED) for colour in colours[:4])  # skipped ticks hold the last picture
    assert all(close_to(colour, GREEN) for colour in colours[4:])  # live: a grab every tick


def test_a_raw_grab_changes_when_one_character_is_typed_and_its_colours_survive_the_ring(tmp_path: Path) -> None:
    """The ring compares raw grabs byte for byte: one typed character must count as a change. Its JPEGs are
    encoded from the BGRX bytes as they are, red and blue swapped, and decoded the right way round."""
    from safeguard_agent.evidence.screenshot import grab_raw_frame, release_thread_screen
    from safeguard_agent.testing import focus

    with XvfbDisplay(screen="640x480x24") as display:
        subprocess.run(["xsetroot", "-solid", "#dc1e1e"], env=display.env(), check=True, timeout=15)
        window = display.open_xterm("Fingerprint")
        focus(window)
        saved = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = display.env()["DISPLAY"]
        try:
            first = grab_raw_frame()
            again = grab_raw_frame()
            display.xdotool("type", "--delay", "20", "--", ".")
            deadline = time.monotonic() + 10
            typed = grab_raw_frame()
            while typed.bgrx == first.bgrx and time.monotonic() < deadline:
                time.sleep(0.05)  # the xterm draws the character after it gets the key
                typed = grab_raw_frame()
            recorder = ScreenRecorder(fps=2, pre_seconds=1.0).start()
            try:
                wait_until(lambda: recorder.buffered_frames() >= 1)
                frame = recorder.latest_frame()
            finally:
                recorder.stop()
        finally:
            release_thread_screen()
            if saved is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = saved

    assert first.size == again.size and first.bgrx == again.bgrx  # an unchanged screen: the same bytes
    assert typed.bgrx != first.bgrx
    assert frame is not None and frame.mode == "RGB" and frame.size == (640, 480)
    assert close_to(frame.getpixel((630, 470)), (0xDC, 0x1E, 0x1E))  # the red root window, still red


def test_an_idle_recorder_writes_nothing_anywhere(recorders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, temp, cwd = tmp_path / "state", tmp_path / "tmp", tmp_path / "cwd"
    for folder in (state, temp, cwd):
        folder.mkdir()
    monkeypatch.setenv("SAFEGUARD_AGENT_HOME", str(state))
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(cwd)
    io_accounting = Path("/proc/self/io")

    def bytes_written() -> int:
        for line in io_accounting.read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
        raise AssertionError("no write_bytes in /proc/self/io")

    Image.new("RGB", (8, 8)).save(io.BytesIO(), "JPEG")  # Pillow's JPEG plugin imported before measuring
    with XvfbDisplay(screen="640x480x24") as display:
        written_before = bytes_written() if io_accounting.exists() else None
        recorder = recorders(fps=10, pre_seconds=1.0)
        for colour in ("#808000", "#008080", "#800080"):  # a changing screen: new frames, not repeats
            subprocess.run(["xsetroot", "-solid", colour], env=display.env(), check=True, timeout=15)
            time.sleep(0.3)
        wait_until(lambda: recorder.buffered_frames() == 10)  # a full ring of real screen frames
        written_after = bytes_written() if io_accounting.exists() else None
        recorder.stop()

    assert [p for folder in (state, temp, cwd) for p in folder.rglob("*")] == []
    if written_before is not None:
        assert written_after == written_before  # not a byte went to any disk while buffering
    assert recorder.buffered_frames() == 0  # stopping forgets the frames too


def test_two_recordings_at_once_both_get_every_frame(recorders, tmp_path: Path) -> None:
    screen = ScriptedScreen(RED)
    recorder = recorders(fps=10, pre_seconds=0.3, grab=screen)
    wait_until(lambda: recorder.buffered_frames() == 3)
    results: dict[str, object] = {}

    def record(name: str) -> None:
        results[name] = recorder.record_clip(0.6, tmp_path / f"{name}.mp4")

    first = threading.Thread(target=record, args=("first",))
    first.start()
    wait_until(lambda: recorder.active_recordings == 1)
    calls = screen.calls
    wait_until(lambda: screen.calls >= calls + 2)  # the second match comes a couple of frames later
    second = threading.Thread(target=record, args=("second",))
    second.start()
    first.join(timeout=30)
    second.join(timeout=30)

    for name in ("first", "second"):
        recording = results[name]
        assert recording.frames == 9 and recording.pre_trigger_frames == 3  # type: ignore[attr-defined]
        _, colours = decode(tmp_path / f"{name}.mp4")
        assert len(colours) == 9
    assert results["first"].started_at < results["second"].started_at  # type: ignore[attr-defined]


def test_missed_grabs_are_filled_so_the_video_keeps_real_time(recorders, tmp_path: Path) -> None:
    screen = ScriptedScreen(RED)
    recorder = recorders(fps=10, pre_seconds=0.2, grab=screen)
    wait_until(lambda: recorder.buffered_frames() == 2)
    screen.failing = True  # e.g. the session is locked for a moment
    failures_from = screen.calls

    def recover() -> None:
        wait_until(lambda: screen.calls >= failures_from + 3)
        screen.colour = GREEN
        screen.failing = False

    helper = threading.Thread(target=recover)
    helper.start()
    recording = recorder.record_clip(0.8, tmp_path / "gaps.mp4")
    helper.join(timeout=10)

    assert recording.frames == 2 + 8
    _, colours = decode(recording.path)
    assert len(colours) == 10
    assert close_to(colours[2], RED)  # the first missed tick holds the last picture
    assert close_to(colours[-1], GREEN)


def test_frames_get_even_dimensions_and_a_screen_change_does_not_break_the_video(recorders, tmp_path: Path) -> None:
    screen = ScriptedScreen(RED, size=(321, 201))  # yuv420p needs even sizes
    recorder = recorders(fps=10, pre_seconds=0.2, grab=screen)
    wait_until(lambda: recorder.buffered_frames() == 2)
    screen.size = (401, 301)  # a second monitor was plugged in
    screen.colour = BLUE

    recording = recorder.record_clip(0.4, tmp_path / "resized.mp4")

    meta, colours = decode(recording.path)
    assert meta["size"] == (320, 200)
    assert len(colours) == 6
    assert close_to(colours[-1], BLUE)


def test_record_for_records_from_now_without_a_running_recorder(tmp_path: Path) -> None:
    screen = ScriptedScreen(GREEN)

    path = record_for(0.5, tmp_path / "now.mp4", fps=10, grab=screen)

    meta, colours = decode(path)
    assert len(colours) == 5
    assert meta["fps"] == 10
    assert all(close_to(colour, GREEN) for colour in colours)


def test_stopping_cuts_a_recording_short_but_keeps_what_it_has(recorders, tmp_path: Path) -> None:
    screen = ScriptedScreen(RED)
    recorder = recorders(fps=10, pre_seconds=0.2, grab=screen)
    wait_until(lambda: recorder.buffered_frames() == 2)
    stopper = threading.Timer(0.5, recorder.stop)
    stopper.start()

    recording = recorder.record_clip(30, tmp_path / "cut.mp4")
    stopper.join()

    assert 2 < recording.frames < 300
    _, colours = decode(recording.path)
    assert len(colours) == recording.frames


def test_recording_needs_a_started_recorder(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="start"):
        ScreenRecorder(grab=ScriptedScreen()).record(1, tmp_path / "x.mp4")


def test_no_frames_at_all_is_an_error_and_leaves_no_file(recorders, tmp_path: Path) -> None:
    screen = ScriptedScreen()
    screen.failing = True
    recorder = recorders(fps=10, pre_seconds=0.2, grab=screen)

    with pytest.raises(RecordingError, match="no screen frame"):
        recorder.record(0.3, tmp_path / "none.mp4")

    assert list(tmp_path.iterdir()) == []


def test_the_live_thumbnail_is_made_from_the_rings_newest_frame(recorders) -> None:
    from safeguard_agent.evidence.thumbnail import make_thumbnail

    screen = ScriptedScreen(BLUE, size=(1280, 800))
    recorder = recorders(fps=10, pre_seconds=0.2, grab=screen)
    wait_until(lambda: recorder.buffered_frames() == 2)
    frame = recorder.latest_frame(320)

    thumbnail = Image.open(io.BytesIO(make_thumbnail(320, frame=frame)))

    assert thumbnail.format == "JPEG" and thumbnail.size == (320, 200)
    assert close_to(ImageStat.Stat(thumbnail.convert("RGB")).mean, BLUE)
