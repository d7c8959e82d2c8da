"""The durable outbox and its sender: nothing accepted is lost, nothing refused blocks the queue."""

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import uuid

import pytest
from http_stub import Reply, StubServer

from safeguard_agent.client import ApiClient
from safeguard_agent.outbox import BACKOFF_CAP, Outbox, Sender, backoff_delay

API = "/api/v1/agent/"


def event(n: int = 0) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": "window",
        "occurred_at": "2026-01-05T09:00:00+00:00",
        "user": "SCHOOL\\pupil",
        "data": {"title": f"Document {n}", "application": "winword.exe"},
    }


def capture_metadata() -> dict:
    return {"id": str(uuid.uuid4()), "keyword": "kms", "severity": "severe", "user": "SCHOOL\\pupil"}


@pytest.fixture
def outbox(tmp_path):
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def sender_for(outbox: Outbox, server: StubServer | str, **kwargs) -> Sender:
    url = server if isinstance(server, str) else server.url
    return Sender(outbox, ApiClient(url, "tok"), rng=random.Random(7), **kwargs)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- durability ----------------------------------------------------------------------------------------


def test_items_survive_closing_and_reopening(tmp_path):
    box = Outbox(tmp_path / "o.db")
    first = box.put("event", event(1))
    box.put("capture", capture_metadata(), {"screenshot": b"\x89PNG fake"})
    box.close()

    reopened = Outbox(tmp_path / "o.db")
    assert reopened.depth() == 2
    assert reopened.peek("event")[0].id == first
    assert reopened.peek("capture")[0].files == {"screenshot": b"\x89PNG fake"}
    reopened.close()


def test_a_put_that_returned_survives_kill_9(tmp_path):
    """A process killed with SIGKILL right after put returns keeps every item it put."""
    path = tmp_path / "o.db"
    script = textwrap.dedent(
        f"""
        import sys, os
        from safeguard_agent.outbox import Outbox
        box = Outbox({str(path)!r})
        for n in range(300):
            box.put("event", {{"n": n}}, item_id=f"e{{n}}")
        print("done", flush=True)
        sys.stdin.read()  # wait to be killed, connection still open
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "done"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)

    box = Outbox(path)
    assert box.depth() == 300
    assert [item.payload["n"] for item in box.peek("event", limit=1000)] == list(range(300))
    box.close()


def test_putting_the_same_id_twice_keeps_one_item(outbox):
    payload = event()
    outbox.put("event", payload, item_id=payload["id"])
    outbox.put("event", payload, item_id=payload["id"])
    assert outbox.depth() == 1


def test_put_many_adds_a_burst_in_one_transaction_and_skips_known_ids(outbox):
    first = event(0)
    outbox.put("event", first, item_id=first["id"])
    burst = [(e["id"], e) for e in (event(n) for n in range(1, 800))]
    assert outbox.put_many("event", [(first["id"], first), *burst]) == 799
    assert outbox.depth() == 800
    assert [item.id for item in outbox.peek("event", limit=1000)] == [first["id"]] + [i for i, _ in burst]
    with pytest.raises(ValueError):
        outbox.put_many("thumbnail", [])


def test_unknown_kind_is_refused(outbox):
    with pytest.raises(ValueError, match="unknown outbox kind"):
        outbox.put("keystrokes", {})


def test_only_the_newest_thumbnail_is_kept(outbox):
    outbox.put("thumbnail", {}, {"image": b"old"})
    outbox.put("thumbnail", {}, {"image": b"new"})
    assert outbox.depth("thumbnail") == 1
    assert outbox.peek("thumbnail")[0].files["image"] == b"new"


def test_a_recording_waits_for_its_capture_to_leave_the_outbox(outbox):
    capture = capture_metadata()
    outbox.put("capture", capture, {"screenshot": b"png"}, item_id=capture["id"])
    outbox.put("recording", {"capture_id": capture["id"]}, {"recording": b"mp4"})
    assert outbox.peek("recording") == []
    outbox.ack([capture["id"]])
    assert len(outbox.peek("recording")) == 1


# -- sending -------------------------------------------------------------------------------------------


def test_events_go_in_batches_of_at_most_500_and_are_deleted_after_the_2xx(outbox):
    for n in range(1200):
        outbox.put("event", event(n))
    with StubServer() as server:
        server.on("POST", API + "events", Reply(200, {"accepted": 1, "duplicates": []}))
        sender = sender_for(outbox, server)
        while sender.send_once() is not None:
            pass
    sizes = [len(r.json()["events"]) for r in server.sent(API + "events")]
    assert sizes == [500, 500, 200]
    assert outbox.depth() == 0
    assert server.sent(API + "events")[0].headers["Authorization"] == "Device tok"


def test_nothing_is_deleted_when_the_server_fails(outbox):
    for n in range(3):
        outbox.put("event", event(n))
    with StubServer() as server:
        server.on("POST", API + "events", Reply(503, {"error": "Down for maintenance.", "fields": {}}))
        sender = sender_for(outbox, server)
        before = outbox.clock()
        delay = sender.send_once()
    assert outbox.depth() == 3
    assert 0 <= delay <= 2.0  # first failure: uniform in [0, 2 * base]
    assert sender.failures == 1
    assert outbox.peek("event", limit=10, now=before) == []  # deferred on their own schedule too
    assert outbox.peek("event", limit=10, now=outbox.clock() + BACKOFF_CAP + 1)[0].attempts == 1


def test_network_errors_back_off_and_keep_everything(outbox):
    outbox.put("confide", {"id": str(uuid.uuid4()), "message": "help"})
    sender = sender_for(outbox, closed_port_url())
    delays = [sender.send_once() for _ in range(4)]
    assert outbox.depth() == 1
    assert sender.failures == 4
    for attempt, delay in enumerate(delays, start=1):
        assert 0 <= delay <= min(BACKOFF_CAP, 2**attempt)


def test_backoff_is_full_jitter_within_bounds_and_capped():
    rng = random.Random(1)
    for attempt in range(0, 15):
        ceiling = min(300.0, 2.0**attempt)
        samples = [backoff_delay(attempt, rng=rng) for _ in range(400)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # Full jitter spreads over the whole range, not just near the ceiling.
        assert min(samples) < 0.1 * ceiling
        assert max(samples) > 0.9 * ceiling
    assert max(backoff_delay(60, rng=rng) for _ in range(1000)) <= 300.0


def test_a_refused_item_is_moved_aside_and_the_next_one_still_goes(outbox, caplog):
    bad, good = capture_metadata(), capture_metadata()
    outbox.put("capture", bad, {"screenshot": b"not an image"}, item_id=bad["id"])
    outbox.put("capture", good, {"screenshot": b"\x89PNG"}, item_id=good["id"])

    def answer(request):
        metadata = request.multipart()["metadata"][1]
        if bad["id"].encode() in metadata:
            return Reply(400, {"error": "Invalid screenshot: not an image", "fields": {"screenshot": ["not an image"]}})
        return Reply(201, {"id": good["id"], "status": "new"})

    with StubServer() as server:
        server.on("POST", API + "captures", answer)
        sender = sender_for(outbox, server)
        assert sender.send_once() == 0
        assert sender.send_once() == 0
        assert sender.send_once() is None
    assert outbox.depth() == 0
    dead = outbox.dead_items()
    assert [(d["id"], d["status"]) for d in dead] == [(bad["id"], 400)]
    assert "not an image" in dead[0]["error"]
    assert "Invalid screenshot: not an image" in caplog.text


def test_a_409_for_a_capture_counts_as_moved_aside(outbox):
    capture = capture_metadata()
    outbox.put("capture", capture, {"screenshot": b"png"}, item_id=capture["id"])
    with StubServer() as server:
        server.on("POST", API + "captures", Reply(409, {"error": "This capture id is already in use.", "fields": {}}))
        sender_for(outbox, server).send_once()
    assert outbox.depth() == 0
    assert outbox.dead_items()[0]["status"] == 409


def test_only_the_events_the_server_names_are_moved_aside(outbox):
    events = [event(n) for n in range(6)]
    for item in events:
        outbox.put("event", item, item_id=item["id"])
    with StubServer() as server:
        server.on(
            "POST",
            API + "events",
            Reply(400, {"error": "Invalid events.3.occurred_at: bad", "fields": {"events.3.occurred_at": ["bad"]}}),
            Reply(200, {"accepted": 5, "duplicates": []}),
        )
        sender = sender_for(outbox, server)
        while sender.send_once() is not None:
            pass
        batches = [r.json()["events"] for r in server.sent(API + "events")]
    assert [d["id"] for d in outbox.dead_items()] == [events[3]["id"]]
    assert [e["id"] for e in batches[1]] == [e["id"] for i, e in enumerate(events) if i != 3]
    assert outbox.depth() == 0


def test_a_batch_refused_without_naming_an_event_is_retried_one_by_one(outbox):
    events = [event(n) for n in range(3)]
    for item in events:
        outbox.put("event", item, item_id=item["id"])

    def answer(request):
        batch = request.json()["events"]
        if len(batch) > 1 or batch[0]["id"] == events[1]["id"]:
            return Reply(413, {"error": "Request body too large.", "fields": {"body": ["too large"]}})
        return Reply(200, {"accepted": 1, "duplicates": []})

    with StubServer() as server:
        server.on("POST", API + "events", answer)
        sender = sender_for(outbox, server)
        while sender.send_once() is not None:
            pass
    assert [d["id"] for d in outbox.dead_items()] == [events[1]["id"]]
    assert outbox.depth() == 0


def test_401_keeps_everything_and_retries_slowly_until_a_new_token_appears(outbox):
    outbox.put("assistance", {"id": str(uuid.uuid4()), "user": "SCHOOL\\p"})
    tokens = iter([False, True])
    with StubServer() as server:
        server.on(
            "POST",
            API + "assistance",
            Reply(401, {"error": "Unknown or revoked device token.", "fields": {}}),
            Reply(401, {"error": "Unknown or revoked device token.", "fields": {}}),
            Reply(201, {"id": "x"}),
        )
        sender = sender_for(outbox, server, on_unauthorized=lambda: next(tokens))
        slow = sender.send_once()
        assert 240 <= slow <= 360
        assert outbox.depth() == 1 and outbox.dead_items() == []
        assert sender.send_once() == 0  # the callback found a new token: try again at once
        assert sender.send_once() == 0
    assert outbox.depth() == 0


def test_confide_goes_before_captures_and_captures_before_events(outbox):
    outbox.put("event", event())
    capture = capture_metadata()
    outbox.put("capture", capture, {"screenshot": b"png"}, item_id=capture["id"])
    outbox.put("recording", {"capture_id": capture["id"]}, {"recording": b"mp4"})
    outbox.put("confide", {"id": str(uuid.uuid4()), "message": "m"})
    with StubServer() as server:
        for path, status in (("confide", 201), ("captures", 201), ("events", 200)):
            server.on("POST", API + path, Reply(status, {}))
        server.on("POST", API + f"captures/{capture['id']}/recording", Reply(201, {}))
        sender = sender_for(outbox, server)
        while sender.send_once() is not None:
            pass
        order = [r.path.removeprefix(API) for r in server.requests]
    assert order == ["confide", "captures", f"captures/{capture['id']}/recording", "events"]


def test_a_recording_is_not_sent_while_its_capture_is_failing(outbox):
    capture = capture_metadata()
    outbox.put("capture", capture, {"screenshot": b"png"}, item_id=capture["id"])
    outbox.put("recording", {"capture_id": capture["id"]}, {"recording": b"mp4"})
    with StubServer() as server:
        server.on("POST", API + "captures", Reply(500, {"error": "Server error.", "fields": {}}))
        sender = sender_for(outbox, server)
        sender.send_once()
        assert sender.send_once() is None  # the capture waits for its back-off; the recording waits for it
        assert [r.path for r in server.requests] == [API + "captures"]
    assert outbox.depth() == 2


# -- the disk cap -------------------------------------------------------------------------------------------


def test_over_the_cap_thumbnails_go_first_then_old_events_and_never_captures(tmp_path, caplog):
    box = Outbox(tmp_path / "o.db", max_bytes=10_000)
    captures = []
    for _ in range(3):
        capture = capture_metadata()
        captures.append(box.put("capture", capture, {"screenshot": b"x" * 2000}, item_id=capture["id"]))
    events = [box.put("event", {"pad": "e" * 400, "n": n}) for n in range(5)]
    box.put("thumbnail", {}, {"image": b"t" * 1500})
    assert box.size_bytes() <= 10_000
    assert box.depth("thumbnail") == 1 and box.depth("event") == 5

    box.put("event", {"pad": "e" * 400, "n": 5})  # over the cap: the thumbnail goes first
    assert box.depth("thumbnail") == 0
    assert box.depth("event") == 6

    box.put("capture", capture_metadata(), {"screenshot": b"x" * 2000})  # over again: the oldest events go
    remaining = [item.payload["n"] for item in box.peek("event", limit=100)]
    assert remaining == sorted(remaining) and 0 not in remaining and 5 in remaining
    assert events[0] not in [item.id for item in box.peek("event", limit=100)]
    assert box.depth("capture") == 4
    assert box.size_bytes() <= 10_000

    for _ in range(3):  # captures alone exceed the cap: kept anyway, with a warning
        box.put("capture", capture_metadata(), {"screenshot": b"x" * 2000})
    assert box.depth("capture") == 7
    assert box.depth("event") == 0
    assert box.stats()["dropped"] >= 7
    assert "never dropped" in caplog.text
    box.close()


def test_items_moved_aside_are_dropped_before_events(tmp_path):
    box = Outbox(tmp_path / "o.db", max_bytes=6_000)
    refused = box.put("event", {"pad": "r" * 2000})
    box.move_aside([refused], status=400, error="bad")
    kept = box.put("event", {"pad": "k" * 2000})
    box.put("event", {"pad": "n" * 2000})
    assert box.dead_items() == []
    assert box.contains(kept)
    box.close()
