"""Evidence for captures: watermarked screenshots, screen recordings and live-view thumbnails.

Everything here needs a display (mss) and the agent's desktop extra (Pillow, mss, imageio-ffmpeg); the
keyword engine, which the server imports too, never imports this package.
"""

from safeguard_agent.evidence.recorder import Recording, RecordingError, ScreenRecorder, record_for
from safeguard_agent.evidence.screenshot import (
    NoDisplayError,
    ScreenCaptureError,
    grab_frame,
    take_screenshot,
)
from safeguard_agent.evidence.thumbnail import make_thumbnail
from safeguard_agent.evidence.watermark import Watermark

__all__ = [
    "NoDisplayError",
    "Recording",
    "RecordingError",
    "ScreenCaptureError",
    "ScreenRecorder",
    "Watermark",
    "grab_frame",
    "make_thumbnail",
    "record_for",
    "take_screenshot",
]
