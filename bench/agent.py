"""The endpoint agent: CPU and memory idle and while a pupil types, and keystroke-to-capture latency.

    .venv/bin/python bench/agent.py                       # 30 s idle, 60 s typing, 15 latency trials
    .venv/bin/python bench/agent.py --idle 10 --typing 20 --trials 5 --no-docs

Everything is real and local: a fresh server (gunicorn serving the Django app on SQLite in a temporary
folder, tasks in-process) with the default keyword library plus 5,000 extra keywords; the real
`safeguard-agent`, enrolled with an enrolment code and run with `run --headless` on a private Xvfb
display; an xterm to type into with `xdotool type` at 10 keys per second (a fast typist).

Measured from outside the agent with psutil: CPU as a percentage of one core (CPU seconds / wall
seconds, the agent and any children) and resident memory (RSS), sampled once a second. Latency: the
time from sending the keystroke that completes a keyword (the space after it: the engine reports a
word once the next character shows it ended) to the moment the server stored the capture (its
`received_at`, written in the transaction that the 201 answers), on the same clock.

The results are printed and written to docs/PERFORMANCE.md under "## Agent" (only that section is
replaced), unless --no-docs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DOCS = ROOT / "docs" / "PERFORMANCE.md"
EXTRA_KEYWORDS = 5_000
TYPING_RATE = 10  # keys per second

SETUP = """
import random, sys
import django
django.setup()
from safeguard.groups.services import enrolment_code_create
from safeguard.policies.library import install_default_library
from safeguard.policies.models import AgentSettings, Keyword, KeywordPolicy
install_default_library()
words = sys.argv[1].split(",")
policy = KeywordPolicy.objects.create(name="Bench extra keywords", category="other")
Keyword.objects.bulk_create(
    [Keyword(policy=policy, text=w.replace("_", " "), severity="medium") for w in words], batch_size=1000
)
AgentSettings.load()
print(enrolment_code_create(label="bench", max_uses=5)[1])
"""


def synthetic_keywords(count: int, seed: int) -> list[str]:
    """Pronounceable made-up words (as bench/keywords.py makes them), a fifth of them two-word phrases."""
    rng = random.Random(seed)
    consonants, vowels = "bcdfghjkmnprstvwz", "aeiou"

    def word() -> str:
        return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(3, 5)))

    keywords: set[str] = set()
    while len(keywords) < count:
        keywords.add(f"{word()} {word()}" if rng.random() < 0.2 else word())
    return sorted(keywords)


FILLER = (
    "we went to the park after school and played football until it got dark then we walked home "
    "and had pasta for tea my sister did her maths homework while i read a chapter of my book about "
    "the romans and their roads tomorrow we have art and music and a spelling test on friday "
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc {len(os.sched_getaffinity(0))}, {model}, Python {platform.python_version()}"


class Sampler:
    """CPU (% of one core) and RSS of a process and its children, from psutil."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.psutil = psutil
        self.process = psutil.Process(pid)

    def cpu_seconds(self) -> float:
        """The agent's CPU time, with its children's: running ones, and finished ones it waited for
        (e.g. the `lpstat` the print monitor runs where CUPS does not answer IPP)."""
        times = self.process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in self.process.children(recursive=True):
            try:
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
            except self.psutil.NoSuchProcess:
                pass
        return total

    def rss(self) -> int:
        return self.process.memory_info().rss

    def measure(self, seconds: float, during=None) -> dict[str, float]:
        """Sample for `seconds` (running `during()` in the meantime if given, until it returns)."""
        rss: list[int] = []
        cpu0, wall0 = self.cpu_seconds(), time.monotonic()
        worker = None
        if during is not None:
            worker = subprocess.Popen(during)  # noqa: S603 - the xdotool command
        while time.monotonic() - wall0 < seconds or (worker is not None and worker.poll() is None):
            rss.append(self.rss())
            time.sleep(1.0)
        cpu1, wall1 = self.cpu_seconds(), time.monotonic()
        return {
            "seconds": wall1 - wall0,
            "cpu_percent": 100.0 * (cpu1 - cpu0) / (wall1 - wall0),
            "rss_median_mb": statistics.median(rss) / 2**20,
            "rss_max_mb": max(rss) / 2**20,
        }


def received_at(db: Path, keyword: str) -> float | None:
    """When the server stored the capture of `keyword` (epoch seconds), or None yet."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute(
            "SELECT received_at FROM captures_capture WHERE keyword_text = ? ORDER BY id LIMIT 1", (keyword,)
        ).fetchone()
    if row is None:
        return None
    stamp = datetime.fromisoformat(row[0])
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def run(args: argparse.Namespace) -> dict:
    from safeguard_agent.sync import engine_from_config
    from safeguard_agent.testing import XvfbDisplay, focus

    extra = synthetic_keywords(EXTRA_KEYWORDS, args.seed)
    trial_words = [word for word in extra if " " not in word][: args.trials]
    with tempfile.TemporaryDirectory(prefix="safeguard-bench-agent-") as tmp:
        tmp_path = Path(tmp)
        server_env = {
            key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL", "DISPLAY")
        }
        server_env.update(
            SAFEGUARD_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="safeguard.settings", SECRET_KEY="bench"
        )
        python = str(VENV_BIN / "python")
        subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=server_env, check=True)
        setup = subprocess.run(
            [python, "-c", SETUP, ",".join(w.replace(" ", "_") for w in extra)],
            cwd=ROOT,
            env=server_env,
            check=True,
            capture_output=True,
            text=True,
        )
        code = setup.stdout.strip().splitlines()[-1]
        db = tmp_path / "var" / "db.sqlite3"
        if not db.exists():
            found = list((tmp_path / "var").glob("*.sqlite3"))
            db = found[0]
        port = free_port()
        server = subprocess.Popen(  # noqa: S603
            [str(VENV_BIN / "gunicorn"), "safeguard.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
            + ["--threads", "4", "--no-control-socket", "--log-level", "warning"],
            cwd=ROOT,
            env=server_env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "server.log").open("w"),
        )
        url = f"http://127.0.0.1:{port}"
        agent_bin = str(VENV_BIN / "safeguard-agent")
        home = tmp_path / "agent"
        try:
            wait_until(lambda: _answers(url), 60, "the server")
            subprocess.run(
                [agent_bin, "enrol", "--server", url, "--code", code, "--config-dir", str(home)],
                check=True,
                capture_output=True,
            )
            config = json.loads((home / "config.json").read_text())["config"]
            engine = engine_from_config(config)
            keywords = sum(len(p["keywords"]) for p in config["policies"])
            text = " ".join(w for w in FILLER.split() if not engine.scan(f" {w} "))
            assert not engine.scan(text), "the filler text must not match any keyword"
            with XvfbDisplay() as display:
                window = display.open_xterm("Bench notes")
                log_path = tmp_path / "agent.log"
                agent = subprocess.Popen(  # noqa: S603
                    [agent_bin, "run", "--headless", "--config-dir", str(home)],
                    env={**display.env()},
                    stdout=subprocess.DEVNULL,
                    stderr=log_path.open("w"),
                )
                try:
                    wait_until(lambda: "The keyboard monitor is running." in log_path.read_text(), 60, "the agent")
                    focus(window)
                    time.sleep(3)  # first heartbeat, config check and thumbnail out of the way
                    sampler = Sampler(agent.pid)
                    idle = sampler.measure(args.idle)
                    chars = TYPING_RATE * args.typing
                    typed = (text + " ") * (chars // (len(text) + 1) + 1)
                    xdotool = ["xdotool", "type", "--delay", str(1000 // TYPING_RATE), "--", typed[:chars]]
                    typing = sampler.measure(args.typing, during=xdotool)
                    latencies = []
                    for word in trial_words:
                        display.xdotool("type", "--delay", "20", "--", f"then {word}")
                        started = time.time()
                        display.xdotool("key", "space")  # the keystroke that completes the keyword
                        stored = wait_until(lambda w=word: received_at(db, w), 30, f"the capture of {word}")
                        latencies.append((stored - started) * 1000)
                        display.xdotool("key", "Return")
                finally:
                    agent.send_signal(signal.SIGTERM)
                    agent.wait(60)
                threads = thread_breakdown(home, display, window, text, args.breakdown)
                memory = memory_breakdown(home, display)
        finally:
            server.terminate()
            server.wait(30)
    return {
        "memory": memory,
        "threads": threads,
        "keywords": keywords,
        "idle": idle,
        "typing": typing,
        "latency_ms": latencies,
        "machine": machine(),
        "load": os.getloadavg(),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "args": vars(args),
    }


def thread_breakdown(home: Path, display, window: int, text: str, seconds: int) -> list[tuple[str, float]]:
    """Where the CPU goes while typing: the same agent run in this process, CPU per named thread."""
    import threading

    import psutil

    from safeguard_agent.runtime import Agent
    from safeguard_agent.testing import focus

    agent = Agent(home)
    agent.start()
    try:
        time.sleep(3)
        focus(window)
        process = psutil.Process()
        before = {t.id: t.user_time + t.system_time for t in process.threads()}
        started = time.monotonic()
        chars = TYPING_RATE * seconds
        typed = ((text + " ") * (chars // (len(text) + 1) + 1))[:chars]
        display.xdotool("type", "--delay", str(1000 // TYPING_RATE), "--", typed)
        elapsed = time.monotonic() - started
        after = {t.id: t.user_time + t.system_time for t in process.threads()}
        names = {t.native_id: t.name for t in threading.enumerate()}
    finally:
        agent.stop(drain_seconds=2)
    # pynput's listener thread has no name of its own: "Thread-N" (the only busy unnamed one).
    names = {
        tid: ("unnamed (pynput's keyboard listener)" if name.startswith("Thread-") else name)
        for tid, name in names.items()
    }
    rows = [(names.get(tid, "other"), 100 * (after[tid] - before.get(tid, 0.0)) / elapsed) for tid in after]
    merged: dict[str, float] = {}
    for name, cpu in rows:
        merged[name] = merged.get(name, 0.0) + cpu
    return sorted(merged.items(), key=lambda row: -row[1])


MEMORY_STEPS = """
import json, sys, psutil
process = psutil.Process()
def rss():
    return process.memory_info().rss / 2**20
steps = [("Python itself", rss())]
import sqlite3
import safeguard_agent.client, safeguard_agent.outbox, safeguard_agent.runtime, safeguard_agent.sync
steps.append(("the agent's own modules (with http.client, ssl, sqlite3)", rss()))
import PIL.Image, mss, imageio_ffmpeg, Xlib.display, watchdog.observers, pynput.keyboard
import safeguard_agent.evidence, safeguard_agent.detection, safeguard_agent.monitors.activity
steps.append(("desktop libraries (Pillow, mss, imageio-ffmpeg, python-xlib, pynput, watchdog)", rss()))
from safeguard_agent.sync import engine_from_config
engine = engine_from_config(json.load(open(sys.argv[1]))["config"])
steps.append((f"the keyword engine ({engine.keyword_count:,} keywords)", rss()))
print(json.dumps([(name, round(after - before, 1)) for (name, after), (_, before) in zip(steps, [("", 0.0)] + steps)]))
"""


def memory_breakdown(home: Path, display) -> list[tuple[str, float]]:
    """What the agent's memory is made of: RSS added by each layer, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_STEPS, str(home / "config.json")],
        env=display.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return [tuple(row) for row in json.loads(result.stdout)]


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(url + "/api/v1/agent/config", timeout=2)  # noqa: S310 - our own local server
    except urllib.error.HTTPError as error:
        return error.code == 401
    except OSError:
        return False
    return False


CHANGES = """What was changed to meet the targets (measured before: 2.3% idle, 3.1-3.9% typing, 105-111 MB):

- **Keyboard listener** (was 2.5% of a core at 10 keys/s, about 2.5 ms a key): every key asked the X server
  for the foreground window, its title and owner (four round trips through python-xlib, about 0.5 ms of CPU).
  The X11 probe now keeps its answer until an event on a second X connection says it may have changed
  (`_NET_ACTIVE_WINDOW` on the root, focus leaving the window, its title changing, the window going away),
  checked with a non-blocking `select()` per key (6 µs). And the XRecord context records key presses only:
  each X key event carries the modifiers held, so the releases (half of pynput's pure-Python parsing) are not
  needed.
- **Pre-trigger screen ring** (was 1.7%): one frame a second is kept (the issue asks for "the last ~10 seconds
  of low-rate frames"), so the 10 s before a trigger now show at most one change a second in a recording (each
  picture held for two video frames); after the trigger it still grabs every tick of its 2 frames/s. A grab is compared
  by a CRC of its raw BGRX bytes (the old path converted to RGB and copied first: about 7 ms instead of 2.5), and
  a changed one is JPEG-encoded straight from mss's buffer read as RGBX (red and blue swapped in the JPEG,
  swapped back when a recording or thumbnail decodes it): no conversion, no copy. (Comparing with the kept
  previous grab instead of a CRC saved 0.2% of a core but cost 7 MB of RSS: not done.)
  The live thumbnail is shrunk from the ring's newest frame (JPEG draft decoding) instead of another grab.
- **Memory**: the REST client uses `http.client` with kept-alive connections instead of requests (about 7 MB
  less); the keyword engine interns its payload tuples (the i/l variants of a keyword share them) and frees
  its build scratch before the automaton's nodes are allocated, its per-keyword dataclasses use `__slots__`,
  and glibc gets the freed pages back after a build (`malloc_trim`): the layer went from 39 to 31-33 MB; the
  config kept in memory drops its keyword lists; FreeType is loaded at the first watermark, not at start
  (1.5 MB); the outbox's SQLite page cache is 512 KB instead of 2 MB; only the recorder keeps an mss
  connection (each holds a screen-sized shared-memory buffer, 4 MB).

What is left: the keyword engine's automaton is still the largest single part: two keys in three are the
i/l variants of keywords (so "k1ll" matches "kill" in one pass); expanding the ambiguous characters on the
text side instead would save about 13 MB more but changes the matcher, and was not done here. The keyboard
listener still parses each key press in pure Python (python-xlib), about 0.3-0.5 ms a key."""


def report(result: dict) -> str:
    idle, typing, lat = result["idle"], result["typing"], result["latency_ms"]
    p50 = statistics.median(lat)
    p90 = sorted(lat)[max(0, round(0.9 * len(lat)) - 1)]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    rows = "\n".join(f"| {name} | {cpu:.2f}% |" for name, cpu in result["threads"] if cpu >= 0.05)
    memory_rows = "\n".join(f"| {name} | {mb:.0f} |" for name, mb in result["memory"])
    notes = []
    cpu_max = max(idle["cpu_percent"], typing["cpu_percent"])
    rss_max = max(idle["rss_max_mb"], typing["rss_max_mb"])
    static = sum(mb for _, mb in result["memory"])
    engine_mb = result["memory"][-1][1]
    if rss_max >= 80:
        notes.append(
            f"**Memory target missed** by {rss_max - 80 + 1:.0f} MB (max {rss_max:.0f} MB). The layers above come to "
            f"{static:.0f} MB before the agent starts a thread; the keyword engine for {result['keywords']:,} keywords "
            f"is the largest ({engine_mb:.0f} MB); the running agent adds the screen frames and thread stacks."
        )
    else:
        notes.append(
            f"**Memory target met**: {rss_max:.0f} MB at most, {80 - rss_max:.0f} MB under. The layers above come to "
            f"{static:.0f} MB before the agent starts a thread; the keyword engine for {result['keywords']:,} keywords "
            f"is the largest ({engine_mb:.0f} MB)."
        )
    top = ", ".join(f"{name} {cpu:.1f}%" for name, cpu in result["threads"][:2])
    if cpu_max >= 2:
        notes.append(
            f"**CPU target missed** (at most {cpu_max:.1f}%, load average {result['load'][0]:.1f}). The two busiest "
            f"threads while typing: {top}."
        )
    else:
        notes.append(
            f"**CPU target met** (at most {cpu_max:.1f}%, load average {result['load'][0]:.1f}). The two busiest "
            f"threads while typing: {top}."
        )
    notes.append(CHANGES)
    args = result["args"]
    notes_text = "\n\n".join(notes)
    return f"""## Agent

Run: `.venv/bin/python bench/agent.py` (about {args["idle"] + args["typing"] + 60} s; `--idle`, `--typing`, `--trials`
to vary). Measured {result["when"]} on {result["machine"]}; load average {result["load"][0]:.1f} at the end (the 2 cores
are shared with other work, so CPU figures vary between runs).

Set-up: a fresh server (gunicorn, SQLite, tasks in-process) with the default keyword library plus 5,000 extra
keywords ({result["keywords"]:,} in the agent's config); the real agent enrolled with `safeguard-agent enrol` and
run with `safeguard-agent run --headless` on Xvfb (1280×800) with every monitor on: keyboard, windows and
applications, files, printing, the pre-trigger screen ring (1 frame/s kept; a recording after a trigger gets 2
frames/s), thumbnails every 10 s, heartbeat, config refresh. CPU is the agent's CPU time over wall time (100% = one core), sampled with psutil; RSS once a second.
Typing: `xdotool type` into an xterm at {TYPING_RATE} keys/s for {typing["seconds"]:.0f} s, ordinary text that matches no keyword.

| measure | idle ({idle["seconds"]:.0f} s) | typing 10 keys/s ({typing["seconds"]:.0f} s) | target | |
|---|---|---|---|---|
| CPU, % of one core | {idle["cpu_percent"]:.1f}% | {typing["cpu_percent"]:.1f}% | < 2% | {verdict(cpu_max < 2.0)} |
| RSS, median / max | {idle["rss_median_mb"]:.0f} / {idle["rss_max_mb"]:.0f} MB | {typing["rss_median_mb"]:.0f} / {typing["rss_max_mb"]:.0f} MB | < 80 MB | {verdict(rss_max < 80.0)} |

| measure | p50 | p90 | max | trials | target | |
|---|---|---|---|---|---|---|
| keystroke completing a keyword → capture stored by the server (201) | {p50:.0f} ms | {p90:.0f} ms | {max(lat):.0f} ms | {len(lat)} | p50 < 500 ms | {verdict(p50 < 500)} |

Where the CPU goes while typing ({args["breakdown"]} s, the same agent run inside the benchmark's process, CPU per
thread; threads under 0.05% left out):

| thread | % of one core |
|---|---|
{rows}

What the memory is made of (RSS each layer adds, imported in this order into a fresh process; the rest of the
agent's RSS is the running agent: screen frames in the recorder's ring and in flight, thread stacks, SQLite's
cache, the config):

| layer | MB |
|---|---|
{memory_rows}

{notes_text}

The latency covers: the key event reaching the agent (pynput, XRecord), the incremental match, the screenshot
of the whole screen with its watermark (PNG), the durable outbox write (SQLite, fsync), waking the sender, the
multipart POST and the server storing the capture and its screenshot.
"""


def write_docs(section: str) -> None:
    """Replace (or add) only the "## Agent" section of docs/PERFORMANCE.md."""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Performance\n"
    pattern = re.compile(r"^## Agent\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=30, help="seconds of idle measurement")
    parser.add_argument("--typing", type=int, default=60, help="seconds of typing at 10 keys/s")
    parser.add_argument("--trials", type=int, default=15, help="keyword captures timed for latency")
    parser.add_argument("--breakdown", type=int, default=20, help="seconds of typing for the per-thread CPU")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    args = parser.parse_args(argv if argv is not None else [])
    result = run(args)
    section = report(result)
    print(section)
    print(json.dumps({k: v for k, v in result.items() if k != "args"}, indent=2, default=str))
    if not args.no_docs:
        write_docs(section)
        print(f"Wrote the Agent section of {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
