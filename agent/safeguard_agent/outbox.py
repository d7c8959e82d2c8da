"""The durable outbox: everything the agent reports goes here first, then to the server.

An item (an activity event, a capture with its screenshot, a recording, a thumbnail, a Confide
report, an assistance request) is written to a SQLite database in WAL mode with
`synchronous=FULL` before `put` returns, so a `kill -9` or a power cut at any moment loses
nothing that was accepted. The `Sender` then delivers items and deletes each one only after the
server answered 2xx for it. Every item carries the UUID the server stores under a unique
constraint, so sending it twice (killed after the server stored it but before we deleted it)
is harmless: the server answers "already stored".

Files (screenshots, recordings, thumbnails) are stored as blobs in the same database, in the
same transaction as their item: one fsync makes both durable and there is no orphan file to
clean up after a crash.

What the sender does with each answer (see `client.Outcome`):

* 2xx                   delete the item(s) ("ack");
* network error / 5xx   keep them and back off exponentially with full jitter (uniform in
                        [0, min(cap, base * 2**n)], cap 5 minutes); a 5xx also defers that
                        item on its own schedule, so one item the server chokes on does not hold
                        up the others;
* 4xx (not 401/408/429) log the server's error body and move the item aside into the `dead`
                        table: it will never succeed as it is, and must not block the queue.
                        For an event batch the server names the bad events (`events.<i>.<field>`);
                        only those are moved aside and the rest are sent again. A 409 for a
                        capture (its id is another device's) is a 4xx like any other;
* 401                   the device was revoked: keep everything, retry slowly (every 5 minutes)
                        and pick up a new token as soon as `safeguard-agent enrol` writes one.

Order: Confide reports and assistance requests first (a pupil is waiting), then captures,
then recordings (a recording waits until its capture has left the outbox, so it never reaches
the server before the capture it belongs to), then events in batches of up to 500 per POST,
then the live thumbnail.

Disk use is capped (`max_bytes`, 500 MB by default, counting payloads and files). Only the
newest thumbnail is ever kept (the server replaces its copy anyway). When a put takes the
outbox over the cap, items are dropped in this order until it fits again: thumbnails, then
items already moved aside (they will never be sent), then activity events, oldest first.
Captures, recordings, Confide reports and assistance requests are never dropped: if they
alone exceed the cap, the cap is exceeded and a warning is logged. Every drop is logged and
counted (`stats()["dropped"]`).
"""

from __future__ import annotations

import json
import logging
import random
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeguard_agent.client import ApiClient, ApiResult, Outcome

log = logging.getLogger(__name__)

KINDS = ("event", "capture", "recording", "thumbnail", "confide", "assistance")
NEVER_DROPPED = frozenset({"capture", "recording", "confide", "assistance"})
SEND_ORDER = ("confide", "assistance", "capture", "recording", "event", "thumbnail")
DEFAULT_MAX_BYTES = 500 * 1024 * 1024
EVENT_BATCH = 500
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
UNAUTHORIZED_DELAY = 300.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    depends_on TEXT,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS items_kind_seq ON items (kind, seq);
CREATE TABLE IF NOT EXISTS blobs (
    item_id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (item_id, name)
);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    moved_at REAL NOT NULL,
    status INTEGER,
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def backoff_delay(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP, rng=random) -> float:
    """Exponential back-off with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    Full jitter (rather than a fixed doubling) spreads a school's worth of agents that lost the
    server at the same moment, so they do not all come back at the same moment either.
    """
    ceiling = min(cap, base * (2 ** min(max(attempt, 0), 40)))
    return rng.uniform(0.0, ceiling)


@dataclass(frozen=True)
class Item:
    seq: int
    id: str
    kind: str
    payload: dict[str, Any]
    files: dict[str, bytes]
    attempts: int
    created_at: float


class Outbox:
    """A durable queue in one SQLite file. Safe to share between the agent's threads."""

    def __init__(self, path: Path | str, *, max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._work = threading.Condition(self._lock)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes effect on a new file: return freed pages
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # durable on commit, not only consistent
        self._db.execute("PRAGMA journal_size_limit=67108864")
        # A 512 KB page cache instead of SQLite's 2 MB: the queue is read head-first and its blobs
        # (screenshots, thumbnails) are read once, so a bigger cache only fills with pages never read again,
        # and it is resident memory on a pupil's computer. The OS's file cache serves the rest.
        self._db.execute("PRAGMA cache_size=-512")
        self._db.executescript(SCHEMA)
        if self.path.exists() and hasattr(self.path, "chmod"):
            try:
                self.path.chmod(0o600)
            except OSError:
                pass
        self._total = self._sum_sizes()
        self._over_cap_warned = False
        self._generation = 0

    # -- housekeeping ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _sum_sizes(self) -> int:
        row = self._db.execute(
            "SELECT (SELECT COALESCE(SUM(size), 0) FROM items) + (SELECT COALESCE(SUM(size), 0) FROM dead)"
        ).fetchone()
        return int(row[0])

    def _begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def _bump(self, key: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
            (key, str(by)),
        )

    # -- writing -----------------------------------------------------------------------------------

    def put(
        self,
        kind: str,
        payload: dict[str, Any],
        files: dict[str, bytes] | None = None,
        *,
        item_id: str | None = None,
    ) -> str:
        """Add an item; it is on disk (fsynced) when this returns. Returns its id.

        Putting an id that is already queued (or was moved aside) changes nothing: callers may
        retry a put without fear of sending twice.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown outbox kind {kind!r}; expected one of {KINDS}")
        item_id = item_id or str(uuid.uuid4())
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        files = files or {}
        size = len(text.encode("utf-8")) + sum(len(data) for data in files.values())
        depends_on = str(payload["capture_id"]) if kind == "recording" and payload.get("capture_id") else None
        with self._lock:
            self._begin()
            try:
                exists = self._db.execute(
                    "SELECT 1 FROM items WHERE id = ? UNION ALL SELECT 1 FROM dead WHERE id = ?", (item_id, item_id)
                ).fetchone()
                if exists:
                    self._db.execute("COMMIT")
                    return item_id
                if kind == "thumbnail":
                    # Only the newest thumbnail matters: the server keeps one per device.
                    self._delete_items(self._ids("SELECT id FROM items WHERE kind = 'thumbnail'"))
                self._db.execute(
                    "INSERT INTO items (id, kind, payload, depends_on, size, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (item_id, kind, text, depends_on, size, self.clock()),
                )
                self._db.executemany(
                    "INSERT INTO blobs (item_id, name, data) VALUES (?, ?, ?)",
                    [(item_id, name, sqlite3.Binary(data)) for name, data in files.items()],
                )
                self._total += size
                if self._total > self.max_bytes:
                    self._enforce_cap()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._total = self._sum_sizes()
                raise
            self._changed()
        return item_id

    def put_many(self, kind: str, payloads: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Add many file-less items (id, payload) in one durable transaction; ids already known are skipped.

        For bursts (an import, a backlog): one fsync instead of one per item. Returns how many were added.
        """
        if kind not in KINDS or kind in ("thumbnail", "recording"):
            raise ValueError(f"put_many takes file-less kinds, not {kind!r}")
        rows = []
        for item_id, payload in payloads:
            text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
            rows.append((item_id, kind, text, len(text.encode("utf-8")), self.clock()))
        with self._lock:
            self._begin()
            try:
                before = self._db.total_changes
                for row in rows:
                    if self._db.execute("SELECT 1 FROM dead WHERE id = ?", (row[0],)).fetchone() is None:
                        cursor = self._db.execute(
                            "INSERT OR IGNORE INTO items (id, kind, payload, size, created_at) VALUES (?, ?, ?, ?, ?)",
                            row,
                        )
                        if cursor.rowcount:
                            self._total += row[3]
                added = self._db.total_changes - before
                if self._total > self.max_bytes:
                    self._enforce_cap()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._total = self._sum_sizes()
                raise
            self._changed()
        return added

    def _ids(self, sql: str, params: Sequence[Any] = ()) -> list[str]:
        return [row[0] for row in self._db.execute(sql, params)]

    def _delete_items(self, ids: Sequence[str], table: str = "items") -> int:
        """Delete items (and their files) inside the caller's transaction; returns how many rows went."""
        deleted = 0
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            freed = self._db.execute(
                f"SELECT COALESCE(SUM(size), 0) FROM {table} WHERE id IN ({marks})",  # noqa: S608
                chunk,
            ).fetchone()[0]
            deleted += self._db.execute(f"DELETE FROM {table} WHERE id IN ({marks})", chunk).rowcount  # noqa: S608
            self._db.execute(f"DELETE FROM blobs WHERE item_id IN ({marks})", chunk)  # noqa: S608
            self._total -= freed
        return deleted

    def _enforce_cap(self) -> None:
        """Drop what may be dropped, least valuable first, until the outbox fits its cap again."""
        steps = [
            ("items", "kind = 'thumbnail'", "thumbnail"),
            ("dead", "1 = 1", "moved-aside item"),
            ("items", "kind = 'event'", "event"),
        ]
        for table, condition, label in steps:
            dropped = 0
            while self._total > self.max_bytes:
                rows = self._db.execute(
                    f"SELECT id, size FROM {table} WHERE {condition} ORDER BY seq LIMIT 200"  # noqa: S608
                ).fetchall()
                if not rows:
                    break
                excess = self._total - self.max_bytes
                chosen, freed = [], 0
                for item_id, size in rows:
                    chosen.append(item_id)
                    freed += size
                    if freed >= excess:
                        break
                self._delete_items(chosen, table)
                dropped += len(chosen)
            if dropped:
                self._bump("dropped", dropped)
                log.warning("Outbox over its %d-byte cap: dropped the %d oldest %s(s).", self.max_bytes, dropped, label)
            if self._total <= self.max_bytes:
                self._over_cap_warned = False
                return
        if not self._over_cap_warned:
            self._over_cap_warned = True
            log.warning(
                "Outbox holds %d bytes, over its %d-byte cap, in captures, recordings and reports that are "
                "never dropped; they stay until the server takes them.",
                self._total,
                self.max_bytes,
            )

    # -- reading -----------------------------------------------------------------------------------

    def depth(self, kind: str | None = None) -> int:
        """Items waiting to be sent (not counting those moved aside)."""
        with self._lock:
            if kind:
                return self._db.execute("SELECT COUNT(*) FROM items WHERE kind = ?", (kind,)).fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def size_bytes(self) -> int:
        with self._lock:
            return self._total

    def stats(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self._db.execute("SELECT kind, COUNT(*) FROM items GROUP BY kind").fetchall())
            dead = self._db.execute("SELECT COUNT(*) FROM dead").fetchone()[0]
            dropped = self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
            return {
                "depth": sum(counts.values()),
                **{f"depth_{kind}": counts.get(kind, 0) for kind in KINDS},
                "dead": dead,
                "dropped": int(dropped[0]) if dropped else 0,
                "bytes": self._total,
            }

    def contains(self, item_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is not None

    def peek(self, kind: str, *, limit: int = 1, now: float | None = None) -> list[Item]:
        """The oldest items of `kind` that are due, with their files; nothing is removed.

        A recording is due only once its capture has left the outbox (sent or moved aside).
        """
        now = self.clock() if now is None else now
        sql = "SELECT seq, id, kind, payload, attempts, created_at FROM items WHERE kind = ? AND next_attempt_at <= ?"
        if kind == "recording":
            sql += " AND (depends_on IS NULL OR depends_on NOT IN (SELECT id FROM items WHERE kind = 'capture'))"
        sql += " ORDER BY seq LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (kind, now, limit)).fetchall()
            items = []
            for seq, item_id, item_kind, payload, attempts, created_at in rows:
                files = {
                    name: bytes(data)
                    for name, data in self._db.execute("SELECT name, data FROM blobs WHERE item_id = ?", (item_id,))
                }
                items.append(Item(seq, item_id, item_kind, json.loads(payload), files, attempts, created_at))
            return items

    def next_due_at(self) -> float | None:
        """When the earliest deferred item becomes due (None when nothing waits)."""
        with self._lock:
            row = self._db.execute("SELECT MIN(next_attempt_at) FROM items").fetchone()
            return row[0]

    def dead_items(self) -> list[dict[str, Any]]:
        """Items the server refused (4xx), newest first, for diagnosis."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, status, error, moved_at, payload FROM dead ORDER BY moved_at DESC, seq DESC"
            ).fetchall()
        return [
            {"id": r[0], "kind": r[1], "status": r[2], "error": r[3], "moved_at": r[4], "payload": json.loads(r[5])}
            for r in rows
        ]

    # -- after sending -------------------------------------------------------------------------------

    def ack(self, ids: Iterable[str]) -> int:
        """The server stored these: delete them. Returns how many were deleted."""
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            self._begin()
            try:
                deleted = self._delete_items(ids)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._total = self._sum_sizes()
                raise
            self._maybe_vacuum()
            self._changed()  # a recording may have become due
        return deleted

    def defer(self, ids: Iterable[str], *, delay: float, error: str = "") -> None:
        """Keep these for later: count the attempt and do not offer them again for `delay` seconds."""
        ids = list(ids)
        with self._lock:
            self._begin()
            self._db.executemany(
                "UPDATE items SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
                [(self.clock() + delay, error[:500], item_id) for item_id in ids],
            )
            self._db.execute("COMMIT")

    def move_aside(self, ids: Iterable[str], *, status: int | None, error: str) -> int:
        """The server refused these for good (4xx): move them into `dead`, out of the queue's way."""
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            self._begin()
            moved = 0
            for item_id in ids:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO dead (seq, id, kind, payload, size, created_at, attempts, moved_at, status, error) "
                    "SELECT seq, id, kind, payload, size, created_at, attempts + 1, ?, ?, ? FROM items WHERE id = ?",
                    (self.clock(), status, error[:2000], item_id),
                )
                moved += cursor.rowcount
                self._db.execute("DELETE FROM items WHERE id = ?", (item_id,))
            self._db.execute("COMMIT")
            self._changed()
        return moved

    def _maybe_vacuum(self) -> None:
        """Give freed pages back to the file system once there are many (after big files were sent)."""
        free_pages = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        if free_pages * page_size > 16 * 1024 * 1024:
            self._db.execute("PRAGMA incremental_vacuum")

    # -- waiting -------------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Counts changes that may make work due; read it before looking for work, pass it to wait_for_work."""
        return self._generation

    def _changed(self) -> None:
        self._generation += 1
        self._work.notify_all()

    def wait_for_work(self, timeout: float, *, since: int | None = None) -> None:
        """Sleep until something is put (or acked/moved aside), `wake()` is called, or `timeout` passes.

        With `since` (a `generation` read earlier), return at once if anything changed since then,
        so a put that lands between looking for work and waiting is never slept through.
        """
        with self._work:
            if since is not None and self._generation != since:
                return
            self._work.wait(timeout)

    def wake(self) -> None:
        with self._work:
            self._changed()


EVENT_FIELD = re.compile(r"^events\.(\d+)(?:\.|$)")


class Sender:
    """Delivers the outbox to the server, one unit of work at a time (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        client: ApiClient,
        *,
        batch_size: int = EVENT_BATCH,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        unauthorized_delay: float = UNAUTHORIZED_DELAY,
        rng: random.Random | None = None,
        on_contact: Callable[[], None] | None = None,
        on_unauthorized: Callable[[], bool] | None = None,
        idle_wait: float = 30.0,
        token_check_seconds: float = 2.0,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.batch_size = batch_size
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.unauthorized_delay = unauthorized_delay
        self.rng = rng or random.Random()
        self.on_contact = on_contact
        self.on_unauthorized = on_unauthorized
        self.idle_wait = idle_wait
        self.token_check_seconds = token_check_seconds
        self.failures = 0  # consecutive network errors / 5xx: the exponent of the back-off
        self.unauthorized = False
        self.sent = 0
        self.moved_aside = 0

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_cap, rng=self.rng)

    # -- one unit of work ------------------------------------------------------------------------------

    def send_once(self) -> float | None:
        """Send the next due unit of work. Returns seconds to wait before the next call (0: carry on),
        or None when nothing is due."""
        now = self.outbox.clock()
        for kind in SEND_ORDER:
            limit = self.batch_size if kind == "event" else 1
            items = self.outbox.peek(kind, limit=limit, now=now)
            if items:
                if kind == "event":
                    return self._send_events(items)
                return self._handle(items, self._dispatch(items[0]))
        return None

    def _dispatch(self, item: Item) -> ApiResult:
        payload = item.payload
        if item.kind == "capture":
            return self.client.capture(payload, item.files.get("screenshot", b""))
        if item.kind == "recording":
            common = {
                "recording": item.files.get("recording", b""),
                "started_at": payload.get("started_at"),
                "duration_seconds": payload.get("duration_seconds"),
            }
            if payload.get("capture_id"):
                return self.client.recording(capture_id=payload["capture_id"], **common)
            return self.client.on_demand_recording(command_id=payload["command_id"], **common)
        if item.kind == "thumbnail":
            return self.client.thumbnail(item.files.get("image", b""))
        if item.kind == "confide":
            return self.client.confide(payload)
        if item.kind == "assistance":
            return self.client.assistance(payload)
        raise ValueError(f"cannot send outbox kind {item.kind!r} alone")

    def _send_events(self, items: list[Item]) -> float:
        result = self.client.events([item.payload for item in items])
        if result.outcome is not Outcome.REJECTED:
            return self._handle(items, result)
        # One bad event refuses the batch; the server names it (events.<index>.<field>).
        bad = sorted({int(m.group(1)) for key in result.fields if (m := EVENT_FIELD.match(key))})
        bad = [index for index in bad if index < len(items)]
        if bad:
            self._reject([items[index] for index in bad], result)
            return 0.0  # the others go again in the next batch
        if len(items) == 1:
            self._reject(items, result)
            return 0.0
        # The server refused the batch as a whole (e.g. too large): find the culprits one by one.
        log.info(
            "Event batch of %d refused without naming an event (%s); sending them one at a time.",
            len(items),
            result.describe(),
        )
        for item in items:
            delay = self._send_events([item])
            if delay:
                return delay
        return 0.0

    def _reject(self, items: list[Item], result: ApiResult) -> None:
        for item in items:
            log.warning("Server refused %s %s; moved aside: %s", item.kind, item.id, result.describe())
        self.moved_aside += self.outbox.move_aside(
            [item.id for item in items], status=result.status, error=result.describe()
        )

    def _handle(self, items: list[Item], result: ApiResult) -> float:
        ids = [item.id for item in items]
        if result.outcome in (Outcome.OK, Outcome.NOT_MODIFIED):
            self.outbox.ack(ids)
            self.sent += len(ids)
            self._reachable()
            return 0.0
        if result.outcome is Outcome.REJECTED:
            self._reject(items, result)
            self._reachable()
            return 0.0
        if result.outcome is Outcome.UNAUTHORIZED:
            self._contact()
            if not self.unauthorized:
                log.error(
                    "The server refused this device's token (401): the device was revoked or its token rotated. "
                    "Everything stays in the outbox (%d items); re-enrol with `safeguard-agent enrol`.",
                    self.outbox.depth(),
                )
            self.unauthorized = True
            if self.on_unauthorized is not None and self.on_unauthorized():
                log.info("A new device token was found; sending again.")
                self.unauthorized = False
                return 0.0
            return self.unauthorized_delay * self.rng.uniform(0.8, 1.2)
        # RETRY (5xx, 408, 429) or NETWORK: keep everything and back off.
        self.failures += 1
        delay = self._backoff(self.failures)
        if result.outcome is Outcome.RETRY:
            self._contact()
            self.outbox.defer(ids, delay=self._backoff(items[0].attempts + 1), error=result.describe())
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, self.backoff_cap))
        if self.failures in (1, 5) or self.failures % 20 == 0:
            log.warning(
                "Could not send %s (%s); %d items wait in the outbox; next try in %.1f s.",
                items[0].kind,
                result.describe(),
                self.outbox.depth(),
                delay,
            )
        return delay

    def _contact(self) -> None:
        if self.on_contact is not None:
            self.on_contact()

    def _reachable(self) -> None:
        """The server answered and took (or judged) our request: the back-off and 401 streak are over."""
        self.failures = 0
        self.unauthorized = False
        self._contact()

    # -- the loop -----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Send until `stop` is set. Waits on the outbox when idle, so a new item goes out at once."""
        while not stop.is_set():
            generation = self.outbox.generation
            try:
                delay = self.send_once()
            except Exception:
                log.exception("Unexpected error while sending the outbox")
                self.failures += 1
                delay = self._backoff(self.failures)
            if delay is None:
                due = self.outbox.next_due_at()
                wait = self.idle_wait if due is None else min(self.idle_wait, max(0.05, due - self.outbox.clock()))
                self.outbox.wait_for_work(wait, since=generation)
            elif delay > 0 and self.unauthorized and self.on_unauthorized is not None:
                self._wait_for_new_token(stop, delay)
            elif delay > 0:
                stop.wait(delay)

    def _wait_for_new_token(self, stop: threading.Event, delay: float) -> None:
        """While revoked: ask the server again only after `delay`, but look for a new token on disk
        (written by `safeguard-agent enrol`) every few seconds, so re-enrolling takes effect at once."""
        deadline = self.outbox.clock() + delay
        while not stop.is_set() and self.outbox.clock() < deadline:
            stop.wait(min(self.token_check_seconds, max(0.0, deadline - self.outbox.clock())))
            if self.on_unauthorized is not None and self.on_unauthorized():
                log.info("A new device token was found; sending again.")
                self.unauthorized = False
                return
