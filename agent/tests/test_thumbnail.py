"""The live-view thumbnail: a small JPEG of the whole screen."""

import io
import subprocess

import pytest
from PIL import Image

from safeguard_agent.evidence.screenshot import NoDisplayError, take_screenshot
from safeguard_agent.evidence.thumbnail import make_thumbnail
from safeguard_agent.testing import XvfbDisplay


@pytest.fixture(scope="module")
def display():
    with XvfbDisplay(screen="1280x800x24") as started:
        yield started


def test_a_thumbnail_is_a_small_jpeg_of_the_screen(display: XvfbDisplay) -> None:
    subprocess.run(["xsetroot", "-solid", "#c03020"], env=display.env(), check=True, timeout=15)

    data = make_thumbnail()

    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    assert image.size == (320, 200)  # the screen's 16:10 kept
    red, green, blue = image.convert("RGB").getpixel((160, 100))
    assert abs(red - 0xC0) < 12 and abs(green - 0x30) < 12 and abs(blue - 0x20) < 12
    assert len(data) < 20_000
    assert len(data) < len(take_screenshot(None))


def test_the_width_is_configurable(display: XvfbDisplay) -> None:
    image = Image.open(io.BytesIO(make_thumbnail(max_width=160)))

    assert image.size == (160, 100)


def test_without_a_display_there_is_no_thumbnail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)

    with pytest.raises(NoDisplayError):
        make_thumbnail()
