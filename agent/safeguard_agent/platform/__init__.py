"""Platform probes: read the OS (foreground window, processes, print queue, user) behind one Protocol.

`create_probe()` picks the adapter for this OS. Importing this package never touches the OS; creating a
probe does, and raises `ProbeUnavailable` where it cannot work (Linux with no X display, macOS), so the agent
can log one clear line and run the monitors that do not need it.
"""

from __future__ import annotations

import os
import sys

from safeguard_agent.platform.base import PlatformProbe, PrintJob, ProcessInfo, WindowInfo

__all__ = ["PlatformProbe", "PrintJob", "ProbeUnavailable", "ProcessInfo", "WindowInfo", "create_probe"]


class ProbeUnavailable(RuntimeError):
    """This OS/session offers no probe (no X display, an unsupported OS)."""


def create_probe() -> PlatformProbe:
    if sys.platform == "win32":
        from safeguard_agent.platform.windows import WindowsProbe

        return WindowsProbe()
    if sys.platform.startswith("linux"):
        if not os.environ.get("DISPLAY"):
            raise ProbeUnavailable("no X display (DISPLAY is not set); Wayland-only sessions are not supported")
        try:
            from safeguard_agent.platform.linux_x11 import LinuxX11Probe

            return LinuxX11Probe()
        except ImportError as error:
            raise ProbeUnavailable(f"python-xlib is not installed: {error}") from error
        except Exception as error:  # Xlib raises DisplayNameError, DisplayConnectionError, ConnectionClosedError...
            raise ProbeUnavailable(f"cannot open the X display {os.environ.get('DISPLAY')!r}: {error}") from error
    raise ProbeUnavailable(f"no platform probe for {sys.platform}")
