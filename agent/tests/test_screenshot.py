"""Capture screenshots under a real X display: all monitors, PNG, watermarked top-right, clear errors."""

import io
import subprocess
import time
from datetime import UTC, datetime

import pytest
from PIL import Image, ImageChops

from safeguard_agent.evidence.screenshot import NoDisplayError, grab_frame, take_screenshot
from safeguard_agent.evidence.watermark import MAX_WIDTH_FRACTION, Watermark
from safeguard_agent.testing import XvfbDisplay

WATERMARK = Watermark(
    user="SCHOOL\\jsmith",
    keyword="kill myself",
    policy="Self-harm",
    when=datetime(2026, 11, 28, 14, 5, 31, tzinfo=UTC),
    hostname="LAB1-PC07",
)


@pytest.fixture(scope="module")
def display():
    with XvfbDisplay(screen="1280x800x24") as started:
        yield started


def paint_root(display: XvfbDisplay, colour: str) -> None:
    subprocess.run(["xsetroot", "-solid", colour], env=display.env(), check=True, timeout=15)


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    image.load()
    return image


def test_a_screenshot_is_a_png_of_the_whole_screen(display: XvfbDisplay) -> None:
    paint_root(display, "#3a6ea5")

    image = decode(take_screenshot(None))

    assert image.size == (1280, 800)
    assert image.convert("RGB").getpixel((640, 400)) == (0x3A, 0x6E, 0xA5)


def test_the_watermark_is_drawn_top_right_and_nothing_else_changes(display: XvfbDisplay) -> None:
    paint_root(display, "#3a6ea5")

    plain = decode(take_screenshot(None)).convert("RGB")
    marked = decode(take_screenshot(WATERMARK)).convert("RGB")

    assert plain.getcolors() == [(1280 * 800, (0x3A, 0x6E, 0xA5))]  # the screen itself is one flat colour
    box = ImageChops.difference(plain, marked).getbbox()
    assert box is not None
    left, top, right, bottom = box
    assert right > 1280 - 30 and top < 30
    assert right - left <= MAX_WIDTH_FRACTION * 1280
    assert bottom < 200
    assert marked.crop((0, 0, left, 800)).getcolors() == [(left * 800, (0x3A, 0x6E, 0xA5))]
    assert marked.crop((0, bottom, 1280, 800)).getcolors() == [(1280 * (800 - bottom), (0x3A, 0x6E, 0xA5))]
    # The pixels are exactly what Watermark draws on that screen: the screenshot carries this watermark.
    assert ImageChops.difference(WATERMARK.apply_watermark(plain), marked).getbbox() is None


def test_the_screenshot_shows_windows_on_screen(display: XvfbDisplay) -> None:
    paint_root(display, "black")
    window = display.open_xterm("Evidence", command=("sh", "-c", "echo visible text; exec cat"))
    display.xdotool("windowmove", "--sync", str(window), "0", "0")

    def xterm_colour() -> tuple[int, int, int]:
        image = decode(take_screenshot(WATERMARK)).convert("RGB")
        area = image.crop((0, 0, 200, 100))
        return max(area.getcolors(maxcolors=200 * 100))[1]  # the most common colour there

    # The window exists before xterm has painted it: give it a moment (bounded), as a person would.
    deadline = time.monotonic() + 10
    while xterm_colour() != (255, 255, 255) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert xterm_colour() == (255, 255, 255)  # xterm's white background, not the black root


def test_grab_frame_returns_the_screen_scaled_down_to_a_width(display: XvfbDisplay) -> None:
    paint_root(display, "#ff0000")

    full = grab_frame()
    half = grab_frame(640)

    assert full.size == (1280, 800) and full.mode == "RGB"
    assert half.size == (640, 400)
    assert half.getpixel((630, 390)) == (255, 0, 0)  # bottom-right: clear of any window
    assert grab_frame(4000).size == (1280, 800)  # never scaled up


def test_grab_frame_reconnects_after_the_x_server_restarts(display: XvfbDisplay) -> None:
    with XvfbDisplay(screen="800x600x24"):
        assert grab_frame().size == (800, 600)  # this thread now holds a connection to that X server
    with XvfbDisplay(screen="1024x768x24") as second:
        # Usually the same display number as the first one (the lowest free), served by a new X server.
        subprocess.run(["xsetroot", "-solid", "#00ff00"], env=second.env(), check=True, timeout=15)
        frame = grab_frame()
    assert frame.size == (1024, 768)
    assert frame.getpixel((5, 5)) == (0, 255, 0)
    assert grab_frame().size == (1280, 800)  # and back on the module's display


def test_without_a_display_the_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(NoDisplayError, match="no display"):
        take_screenshot(WATERMARK)
    with pytest.raises(NoDisplayError):
        grab_frame()

    monkeypatch.setenv("DISPLAY", ":987")  # nothing listens there
    with pytest.raises(NoDisplayError):
        take_screenshot(None)
