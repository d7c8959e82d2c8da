"""The screenshot watermark: who / what / when / where, top-right, legible on any background, same font everywhere."""

import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFont

from safeguard_agent.evidence.watermark import (
    MAX_WIDTH_FRACTION,
    MIN_FONT_PX,
    Watermark,
    font,
    font_size_for,
    format_local_time,
)

AGENT_DIR = Path(__file__).resolve().parents[1]
WHEN = datetime(2026, 11, 28, 14, 5, 31, tzinfo=UTC)


def watermark(**overrides: object) -> Watermark:
    values: dict[str, object] = {
        "user": "SCHOOL\\jsmith",
        "keyword": "kill myself",
        "policy": "Self-harm",
        "when": WHEN,
        "hostname": "LAB1-PC07",
    }
    values.update(overrides)
    return Watermark(**values)  # type: ignore[arg-type]


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch):
    """Run with this process's local time zone set to the given IANA name."""

    def set_zone(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


def relative_luminance(rgb: tuple[float, ...]) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def changed_box(before: Image.Image, after: Image.Image) -> tuple[int, int, int, int]:
    box = ImageChops.difference(before.convert("RGB"), after.convert("RGB")).getbbox()
    assert box is not None, "the watermark changed no pixel"
    return box


# -- the text -------------------------------------------------------------------------------------------


def test_the_block_reads_who_what_when_where_in_local_time_with_zone(local_zone) -> None:
    local_zone("Europe/London")

    assert watermark().lines() == [
        "Who: SCHOOL\\jsmith",
        "What: kill myself — Self-harm",
        "When: 2026-11-28 14:05:31 GMT (+00:00)",
        "Where: LAB1-PC07",
    ]


def test_when_is_converted_to_the_computers_zone_including_daylight_saving(local_zone) -> None:
    local_zone("Europe/London")
    assert format_local_time(datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)) == "2026-07-01 13:00:00 BST (+01:00)"

    local_zone("America/New_York")
    assert format_local_time(WHEN) == "2026-11-28 09:05:31 EST (-05:00)"

    local_zone("Asia/Kolkata")
    assert format_local_time(WHEN) == "2026-11-28 19:35:31 IST (+05:30)"


def test_a_zone_without_an_abbreviation_shows_its_offset_once(local_zone) -> None:
    local_zone("Asia/Dubai")  # zoneinfo calls it "+04"

    assert format_local_time(WHEN) == "2026-11-28 18:05:31 (+04:00)"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        watermark(when=datetime(2026, 11, 28, 14, 5, 31))


def test_control_characters_cannot_break_the_block_into_more_lines() -> None:
    lines = watermark(user="ann\nWho: someone else", keyword="a\tb\r\nc", policy="").lines()

    assert len(lines) == 4
    assert lines[0] == "Who: ann Who: someone else"
    assert lines[1] == "What: a b c"  # no policy: no dangling dash
    assert all(ch.isprintable() for line in lines for ch in line)


def test_the_hostname_defaults_to_this_computers_name() -> None:
    assert Watermark("u", "k", "p", WHEN).hostname == socket.gethostname()


# -- the font -------------------------------------------------------------------------------------------


def test_the_font_ships_inside_the_package_with_its_licence() -> None:
    package = resources.files("safeguard_agent.evidence")
    font_file = package.joinpath("fonts/DejaVuSans.ttf")
    licence = package.joinpath("fonts/LICENSE").read_text(encoding="utf-8")

    assert font_file.is_file()
    assert ImageFont.truetype(str(font_file), 20).getname() == ("DejaVu Sans", "Book")
    assert font(20).getname() == ("DejaVu Sans", "Book")
    assert "Bitstream Vera Fonts Copyright" in licence
    assert "Arev Fonts Copyright" in licence


def test_a_build_of_the_package_contains_the_font_and_its_licence(tmp_path: Path) -> None:
    # setuptools' build_py step is what decides which data files go into the wheel and the installed package.
    source = tmp_path / "agent"
    shutil.copytree(
        AGENT_DIR, source, ignore=shutil.ignore_patterns("tests", "*.egg-info", "__pycache__", "build", "dist")
    )
    build = tmp_path / "build"
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "--quiet", "build_py", "--build-lib", build],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr

    fonts = build / "safeguard_agent" / "evidence" / "fonts"
    assert (fonts / "DejaVuSans.ttf").read_bytes() == resources.files("safeguard_agent.evidence").joinpath(
        "fonts/DejaVuSans.ttf"
    ).read_bytes()
    assert (fonts / "LICENSE").is_file()


# -- the drawing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("background", ["white", "black", "#808080", "#ffff00", "#1e90ff"])
def test_the_text_is_legible_on_light_and_dark_backgrounds(background: str) -> None:
    screen = Image.new("RGB", (1280, 800), background)

    marked = watermark().apply_watermark(screen)

    left, top, right, bottom = changed_box(screen, marked)
    inset = 8  # inside the panel's rounded corners and border
    panel = marked.crop((left + inset, top + inset, right - inset, bottom - inset))
    colours = panel.getcolors(maxcolors=panel.width * panel.height)
    assert colours is not None
    _, panel_colour = max(colours)  # the most common colour is the panel's background
    text_pixels = [colour for count, colour in colours for _ in range(count) if relative_luminance(colour) >= 0.9]
    assert len(text_pixels) > 500  # four lines of text were drawn (thin anti-aliased strokes)
    text_colour = tuple(sum(channel) / len(text_pixels) for channel in zip(*text_pixels, strict=True))
    assert relative_luminance(panel_colour) < 0.08  # a dark panel, whatever is behind it
    assert contrast_ratio(text_colour, panel_colour) >= 7.0  # WCAG AAA for body text


def test_the_block_sits_top_right_and_the_rest_of_the_screen_is_untouched() -> None:
    screen = Image.linear_gradient("L").resize((1280, 800)).convert("RGB")

    marked = watermark().apply_watermark(screen)

    left, top, right, bottom = changed_box(screen, marked)
    assert right > 1280 - 30 and top < 30  # hugging the top-right corner with a small margin
    assert (right - left) <= MAX_WIDTH_FRACTION * 1280
    assert bottom < 800 / 4
    assert marked.size == screen.size and marked.mode == "RGB"
    assert screen.getpixel((1279, 0)) == (0, 0, 0)  # the caller's image is not drawn on


def test_long_text_is_shrunk_then_cut_never_wider_than_the_limit() -> None:
    screen = Image.new("RGB", (1280, 800), "white")
    long = watermark(keyword="x" * 400, policy="A policy with a very long name " * 5, hostname="h" * 200)

    left, _, right, _ = changed_box(screen, long.apply_watermark(screen))
    normal_left, _, normal_right, _ = changed_box(screen, watermark().apply_watermark(screen))

    assert right - left <= MAX_WIDTH_FRACTION * 1280 + 1
    assert right - left > normal_right - normal_left  # it grew to the limit instead of overflowing


def test_the_block_is_sized_relative_to_the_screen() -> None:
    small = Image.new("RGB", (1280, 800), "white")
    large = Image.new("RGB", (2560, 1600), "white")

    small_box = changed_box(small, watermark().apply_watermark(small))
    large_box = changed_box(large, watermark().apply_watermark(large))
    small_width, large_width = small_box[2] - small_box[0], large_box[2] - large_box[0]

    assert 1.8 < large_width / small_width < 2.2
    assert font_size_for(1280, 800) == 15
    assert font_size_for(1920, 1080) == 23
    assert font_size_for(3840, 1080) == font_size_for(1920, 1080)  # two monitors side by side: not doubled
    assert font_size_for(640, 480) == MIN_FONT_PX


def test_an_rgba_screenshot_comes_back_as_rgb_with_the_block() -> None:
    screen = Image.new("RGBA", (1280, 800), (255, 255, 255, 255))

    marked = watermark().apply_watermark(screen)

    assert marked.mode == "RGB"
    changed_box(screen, marked)
