"""Ingestion at trust scale: the agent API under gunicorn on PostgreSQL, driven by 2,000 simulated agents.

    .venv/bin/python bench/ingest.py                      # the whole run (about 3 minutes)
    .venv/bin/python bench/ingest.py --seconds 10 --keep  # shorter phases, keep the database

What runs:
- A database of its own (`sg_bench_ingest` on the PostgreSQL at BENCH_PG, default
  postgres://postgres@127.0.0.1:5432), migrated, with 2,000 enrolled devices (real tokens) and a
  keyword policy. Redis DB 12 (BENCH_REDIS) is the Celery broker and cache, as in production;
  a capture's follow-up tasks (preview, rules, alerts) are queued there for a worker and this
  benchmark runs none: it measures the web tier. The queue is emptied at the end.
- gunicorn, the production server, with the Dockerfile's settings (3 workers, 4 threads) unless
  --workers/--threads say otherwise, on 127.0.0.1.
- A separate load-generator process (asyncio + aiohttp, this file with --client) with one
  simulated agent per device, each posting batches of 50 events as the real agent's outbox does.

Phases, each printed as figure | target | limit:
1. Open loop at the target rate: the 2,000 agents each post a batch every 2,000 / (5,000 / 50)
   = 20 s (random phases), i.e. 5,000 events/s offered. Latency is measured from the moment a
   batch was due, so a slow server cannot hide its queueing (no coordinated omission).
2. Saturation: 32 agents post back to back (closed loop); the most events/s the box takes.
3. The limit: the same rows (regenerated from the same seeds) written by one raw psycopg COPY
   into the same, emptied table: what PostgreSQL alone takes on this machine.
4. Captures: 8 agents post captures with a 200 KB PNG screenshot back to back.
"""

import argparse
import asyncio
import hashlib
import io
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import scratch_db

BENCH_DB = "sg_bench_ingest"
ROOT = Path(__file__).resolve().parent.parent
TARGET_EVENTS_PER_S = 5000
TARGET_P99_MS = 200.0
TARGET_COPY_SHARE = 0.20
TARGET_CAPTURES_PER_S = 100
BATCH = 50
EVENT_TYPES = [("window", 48), ("website", 36), ("application", 10), ("print", 2), ("file_deleted", 2), ("logon", 1)]


def _redis_url() -> str:
    return os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12")


# --- The rows: the same from (agent, seq) in the client and in the COPY ---------------------------


def batch_events(agent: int, seq: int, base: datetime, size: int = BATCH) -> list[dict]:
    """Batch `seq` of agent `agent`: 50 events a real agent would send, deterministic."""
    rng = random.Random(agent * 1_000_003 + seq)
    kinds = rng.choices([k for k, _ in EVENT_TYPES], weights=[w for _, w in EVENT_TYPES], k=size)
    events = []
    start = base + timedelta(seconds=(seq % 300) * 20)  # within the last two hours, never in the future
    for i, kind in enumerate(kinds):
        digest = hashlib.blake2b(f"{agent}:{seq}:{i}".encode(), digest_size=16).digest()
        topic = rng.choice(("fractions", "volcanoes", "the-tudors", "poetry", "cells", "football"))
        if kind == "window":
            data = {"title": f"{topic} - Word", "application": "WINWORD.EXE", "duration_seconds": rng.randint(5, 600)}
        elif kind == "website":
            data = {"url": f"https://www.bbc.co.uk/bitesize/{topic}", "title": topic, "browser": "chrome.exe"}
        elif kind == "application":
            data = {"name": "notepad.exe", "path": "C:\\Windows\\notepad.exe", "action": "started"}
        elif kind == "print":
            data = {"document": f"{topic}.docx", "printer": "Library-1", "pages": rng.randint(1, 9)}
        elif kind == "file_deleted":
            data = {"path": f"C:\\Users\\pupil\\Documents\\{topic}.docx"}
        else:
            data = {"session": "console"}
        events.append(
            {
                "id": str(uuid.UUID(bytes=digest, version=4)),
                "type": kind,
                "occurred_at": (start + timedelta(milliseconds=400 * i)).isoformat(),
                "user": f"BENCH\\pupil{agent:04d}",
                "data": data,
            }
        )
    return events


def screenshot_png(size: int = 200_000) -> bytes:
    """A 1280x800 PNG of about `size` bytes: a flat page with a band of noise (screens compress well)."""
    from PIL import Image

    image = Image.new("RGB", (1280, 800), (245, 245, 245))
    rng = random.Random(7)
    band = 10
    while True:
        noise = Image.frombytes("RGB", (1280, band), rng.randbytes(1280 * band * 3))
        image.paste(noise, (0, 100))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        if buffer.tell() >= size or band >= 700:
            return buffer.getvalue()
        band = int(band * size / max(buffer.tell(), 1)) + 1


# --- The load-generator process --------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client(spec: dict) -> dict:
    import aiohttp

    url = spec["url"]
    tokens = spec["tokens"]
    base = datetime.fromisoformat(spec["base"])
    mode = spec["mode"]
    seconds = spec["seconds"]
    first_seq = spec.get("first_seq", 0)
    connector = aiohttp.TCPConnector(limit=spec.get("connections", 256))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sent = {agent: 0 for agent in range(len(tokens))}
    loop = asyncio.get_running_loop()
    png = screenshot_png() if mode == "captures" else b""

    async with aiohttp.ClientSession(connector=connector) as session:

        async def post_batch(agent: int, seq: int, due: float) -> None:
            body = json.dumps({"events": batch_events(agent, seq, base)})
            headers = {"Authorization": f"Device {tokens[agent]}", "Content-Type": "application/json"}
            async with session.post(f"{url}/api/v1/agent/events", data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 200:
                    sent[agent] += 1
            latencies.append(loop.time() - due)

        async def post_capture(agent: int, seq: int, due: float) -> None:
            metadata = {
                "id": str(uuid.UUID(bytes=hashlib.blake2b(f"c{agent}:{seq}".encode(), digest_size=16).digest())),
                "occurred_at": datetime.now(UTC).isoformat(),
                "user": f"BENCH\\pupil{agent:04d}",
                "keyword": "bench word",
                "severity": "medium",
                "context": "typed the bench word in a document",
                "application": "WINWORD.EXE",
                "window_title": "Document1 - Word",
            }
            form = aiohttp.FormData()
            form.add_field("metadata", json.dumps(metadata), content_type="application/json")
            form.add_field("screenshot", png, filename="screen.png", content_type="image/png")
            headers = {"Authorization": f"Device {tokens[agent]}"}
            async with session.post(f"{url}/api/v1/agent/captures", data=form, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status in (200, 201):
                    sent[agent] += 1
            latencies.append(loop.time() - due)

        started = loop.time()
        deadline = started + seconds
        if mode == "open":
            interval = spec["interval"]

            async def agent_loop(agent: int) -> None:
                rng = random.Random(agent)
                due = started + rng.random() * interval
                seq = first_seq
                pending = []
                while due < deadline:
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    # Fire and go on: a real agent's next batch is due whether or not the last one
                    # was slow, so latency counts from `due`, queueing included.
                    pending.append(asyncio.ensure_future(post_batch(agent, seq, due)))
                    seq += 1
                    due += interval
                if pending:
                    await asyncio.gather(*pending)

            await asyncio.gather(*(agent_loop(agent) for agent in range(len(tokens))))
        elif mode == "once":
            await asyncio.gather(*(post_batch(agent, first_seq, loop.time()) for agent in range(len(tokens))))
        else:
            post = post_capture if mode == "captures" else post_batch

            async def sender(agent: int) -> None:
                seq = first_seq
                while loop.time() < deadline:
                    await post(agent, seq, loop.time())
                    seq += 1

            await asyncio.gather(*(sender(agent) for agent in range(len(tokens))))
        elapsed = loop.time() - started
    return {
        "elapsed": elapsed,
        "ok": sum(sent.values()),
        "sent": {str(agent): count for agent, count in sent.items() if count},
        "statuses": {str(code): count for code, count in statuses.items()},
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "requests": len(latencies),
    }


def _run_client(spec: dict) -> dict:
    """Run the load generator as a separate process (its own interpreter and CPU time), return its report."""
    process = subprocess.run(
        [sys.executable, __file__, "--client"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=spec["seconds"] + 300,
        check=False,
    )
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed: {process.stderr[-2000:]}")
    return json.loads(process.stdout)


# --- The server side ------------------------------------------------------------------------------


def _server_env(var_dir: Path) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": scratch_db.database_url(BENCH_DB),
        "REDIS_URL": _redis_url(),
        "CELERY_QUEUE": "bench_ingest",
        "SAFEGUARD_VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        "DJANGO_SETTINGS_MODULE": "safeguard.settings",
        "SECRET_KEY": "bench-ingest-" + secrets.token_hex(16),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEBUG": "false",
    }


def _setup_django(var_dir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(_server_env(var_dir))
    import django

    django.setup()


def _enrol(agents: int) -> list[str]:
    """`agents` devices with a real token each, and a policy the captures match."""
    from safeguard.core.tokens import hash_secret, new_token
    from safeguard.groups.models import Device, DeviceToken
    from safeguard.policies.models import Keyword, KeywordPolicy

    devices = Device.objects.bulk_create(
        [Device(hostname=f"BENCH-PC{i:04d}", os="Windows 11", agent_version="1.0.0") for i in range(agents)]
    )
    tokens = [new_token() for _ in devices]
    DeviceToken.objects.bulk_create(
        [
            DeviceToken(device=device, token_hash=hash_secret(token))
            for device, token in zip(devices, tokens, strict=True)
        ]
    )
    policy = KeywordPolicy.objects.create(name="Bench policy", category="other")
    Keyword.objects.create(policy=policy, text="bench word", severity="medium")
    return tokens


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_gunicorn(var_dir: Path, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    log = open(var_dir / "gunicorn.log", "w")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "safeguard.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            f"--threads={threads}",
            "--no-control-socket",
            # Without it the kernel hands most keep-alive connections to whichever worker accepts
            # first, and that one process (one GIL) serves nearly every agent: measured here, one
            # worker at 46% CPU and two at 6%. With SO_REUSEPORT each worker has its own queue.
            "--reuse-port",
            "--error-logfile=-",
        ],
        cwd=ROOT,
        env=_server_env(var_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, url
        except OSError:
            if process.poll() is not None:
                raise RuntimeError((var_dir / "gunicorn.log").read_text()[-2000:]) from None
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start within 60 s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _copy_limit(sent: dict[str, int], first_seq: int, base: datetime) -> tuple[int, float]:
    """The same rows the API stored, written again with one raw psycopg COPY into the emptied table."""
    import psycopg

    from safeguard.groups.models import Device, Person

    people = {p.username: p.pk for p in Person.objects.filter(username__startswith="BENCH\\")}
    devices = dict(
        enumerate(
            Device.objects.filter(hostname__startswith="BENCH-PC").order_by("hostname").values_list("pk", flat=True)
        )
    )
    # Prepared before timing (the API's time includes parsing JSON; the limit is PostgreSQL's).
    rows = []
    for agent, count in sent.items():
        agent = int(agent)
        for seq in range(first_seq, first_seq + count):
            for event in batch_events(agent, seq, base):
                at = datetime.fromisoformat(event["occurred_at"])
                rows.append(
                    (
                        uuid.UUID(event["id"]),
                        event["type"],
                        devices[agent],
                        people[event["user"]],
                        at,
                        at,
                        json.dumps(event["data"]),
                    )
                )
    with psycopg.connect(scratch_db.database_url(BENCH_DB)) as conn:
        conn.execute("TRUNCATE logs_activityevent")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor:
            columns = "uuid, type, device_id, person_id, occurred_at, received_at, data"
            with cursor.copy(f"COPY logs_activityevent ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
    return len(rows), elapsed


def _line(name: str, figure: str, target: str, limit: str, met: bool | None) -> None:
    verdict = "" if met is None else ("met" if met else "MISSED")
    print(f"{name:<44} {figure:>22} | {target:>18} | {limit:>22} {verdict}", flush=True)


def _purge_queue() -> int:
    import redis

    client = redis.Redis.from_url(_redis_url())
    queued = client.llen("bench_ingest")
    client.delete("bench_ingest")
    return queued


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each measured phase")
    parser.add_argument("--rate", type=float, default=TARGET_EVENTS_PER_S, help="events/s offered in phase 1")
    parser.add_argument("--saturation-agents", type=int, default=32)
    parser.add_argument("--capture-agents", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv if argv is not None else [])
    if args.client:
        print(json.dumps(asyncio.run(_client(json.loads(sys.stdin.read())))))
        return

    import tempfile

    var_dir = Path(tempfile.mkdtemp(prefix="sg-bench-ingest-"))
    scratch_db.recreate_database(BENCH_DB)
    _setup_django(var_dir)
    from django.core.management import call_command
    from django.db import connections

    server = None
    try:
        call_command("migrate", verbosity=0)
        tokens = _enrol(args.agents)
        connections.close_all()
        server, url = _start_gunicorn(var_dir, args.workers, args.threads)
        base = datetime.now(UTC) - timedelta(hours=2)
        print(
            f"gunicorn {args.workers} workers x {args.threads} threads on {os.cpu_count()} cores; PostgreSQL "
            f"{BENCH_DB}; {args.agents:,} agents, batches of {BATCH}; phases of {args.seconds:.0f} s; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        # Warm-up: every agent posts once (people seen for the first time, connections, plans).
        warm = _run_client({"url": url, "tokens": tokens, "base": base.isoformat(), "mode": "once", "seconds": 0})
        first_seq = 1000
        # 1. Open loop at the target rate.
        interval = args.agents * BATCH / args.rate
        open_run = _run_client(
            {
                "url": url,
                "tokens": tokens,
                "base": base.isoformat(),
                "mode": "open",
                "interval": interval,
                "seconds": args.seconds,
                "first_seq": first_seq,
            }
        )
        open_rate = open_run["ok"] * BATCH / open_run["elapsed"]
        # 2. Saturation.
        saturation = _run_client(
            {
                "url": url,
                "tokens": tokens[: args.saturation_agents],
                "base": base.isoformat(),
                "mode": "closed",
                "seconds": args.seconds,
                "first_seq": 100_000,
            }
        )
        saturated_rate = saturation["ok"] * BATCH / saturation["elapsed"]
        # 3. The limit: raw COPY of the rows of phases 1 and 2.
        copy_sent = {key: value for key, value in open_run["sent"].items()}
        copied, copy_seconds = _copy_limit(copy_sent, first_seq, base)
        copy_rate = copied / copy_seconds
        # 4. Captures with 200 KB screenshots.
        captures = _run_client(
            {
                "url": url,
                "tokens": tokens[: args.capture_agents],
                "base": base.isoformat(),
                "mode": "captures",
                "seconds": args.seconds,
                "first_seq": 0,
            }
        )
        capture_rate = captures["ok"] / captures["elapsed"]
        queued = _purge_queue()

        print(f"{'':<44} {'figure':>22} | {'target':>18} | {'limit':>22}")
        _line(
            "events/s at the offered 5,000/s (open loop)",
            f"{open_rate:,.0f}",
            f">= {TARGET_EVENTS_PER_S:,}",
            f"{copy_rate:,.0f} (raw COPY)",
            open_rate >= 0.98 * args.rate,
        )
        _line(
            "  latency p50 / p99 (from due time)",
            f"{open_run['p50_ms']:.0f} / {open_run['p99_ms']:.0f} ms",
            f"p99 < {TARGET_P99_MS:.0f} ms",
            "",
            open_run["p99_ms"] < TARGET_P99_MS,
        )
        _line(
            f"events/s at saturation ({args.saturation_agents} agents back to back)",
            f"{saturated_rate:,.0f}",
            f">= {TARGET_EVENTS_PER_S:,}",
            f"{copy_rate:,.0f} (raw COPY)",
            saturated_rate >= TARGET_EVENTS_PER_S,
        )
        _line(
            "  latency p50 / p99 at saturation",
            f"{saturation['p50_ms']:.0f} / {saturation['p99_ms']:.0f} ms",
            "",
            "",
            None,
        )
        _line(
            "API at saturation / raw COPY of the same rows",
            f"{saturated_rate / copy_rate:.0%}",
            f">= {TARGET_COPY_SHARE:.0%}",
            "100%",
            saturated_rate / copy_rate >= TARGET_COPY_SHARE,
        )
        _line(
            f"captures/s, 200 KB PNG ({args.capture_agents} agents)",
            f"{capture_rate:,.1f}",
            f">= {TARGET_CAPTURES_PER_S}",
            "",
            capture_rate >= TARGET_CAPTURES_PER_S,
        )
        _line(
            "  capture latency p50 / p99",
            f"{captures['p50_ms']:.0f} / {captures['p99_ms']:.0f} ms",
            "",
            "",
            None,
        )
        failures = {
            name: {code: n for code, n in run["statuses"].items() if code not in ("200", "201")}
            for name, run in (("open", open_run), ("saturation", saturation), ("captures", captures))
        }
        print(
            f"raw COPY: {copied:,} rows in {copy_seconds:.1f} s; warm-up {warm['ok']:,} batches; "
            f"non-2xx answers: {failures}; follow-up tasks queued (no worker): {queued:,}; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    finally:
        if server is not None:
            _stop(server)
        connections.close_all()
        if not args.keep:
            scratch_db.drop_database(BENCH_DB)


if __name__ == "__main__":
    main(sys.argv[1:])
