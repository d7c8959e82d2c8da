"""Fault: the worker is killed while it sends an email. The email is delivered exactly once.

A real `celery worker` (tests/workers.py) sends to the test SMTP server (tests/smtp.py), which is
made to stall on DATA: the worker is mid-email, the server has not said "250", and then the
worker is SIGKILLed. Like a real mail server, ours drops a message whose client went away before
the "250". What brings the email back, and why it goes once:

- the task is acknowledged late (CELERY_TASK_ACKS_LATE), so a killed worker leaves it unacknowledged
  in Redis, which hands it to a worker again (the whole worker killed: after the visibility timeout;
  only its pool process killed, as the OOM killer does: at once, as CELERY_TASK_REJECT_ON_WORKER_LOST
  requeues it);
- the email's claim row (AlertDelivery / AlertDigest, PENDING, claimed by the task's id) was
  committed before the SMTP conversation began; the redelivered task, having the same id, may finish
  its own claim, and marks the row SENT after the "250". Any later run finds SENT and sends nothing.

Alerts, digests and escalation rounds each have their test.
"""

import os
import signal
import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from safeguard.captures.models import Capture
from safeguard.policies import tasks
from safeguard.policies.alerts import capture_alerts_send
from safeguard.policies.models import (
    AlertDelivery,
    AlertDigest,
    AlertRule,
    DeliveryStatus,
    EscalationRound,
    EscalationSettings,
    Keyword,
)
from tests.factories import CaptureFactory, EscalationContactFactory, EscalationSettingsFactory, KeywordFactory
from tests.faults.flow import KEYWORD, alert_rule, post_capture
from tests.faults.servers import wait_until
from tests.workers import REDIS_URL, _descendants, kill_worker, new_queue_name, sending_to, start_worker, stop_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def queue():
    """A queue of this test's own on the shared Redis; its keys are removed afterwards."""
    name = new_queue_name()
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        leftovers = client.keys(f"*{name}*")
        if leftovers:
            client.delete(*leftovers)
    finally:
        client.close()


@pytest.fixture
def workers(queue, smtp, settings, tmp_path):
    """Start workers on `queue` (sending there too); every one is stopped (or killed) at the end."""
    started = []

    def start(name: str, **extra_env: str):
        worker = start_worker(
            queue=queue,
            media_root=settings.MEDIA_ROOT,
            log_path=tmp_path / f"{name}.log",
            extra_env={**smtp.worker_env(), **extra_env},
        )
        started.append(worker)
        return worker

    with sending_to(queue):
        yield start
        for worker in started:
            if worker.process.poll() is None:
                stop_worker(worker)


def wait_until_dropped(smtp, worker) -> None:
    """The killed worker's connection closed: the server dropped the stalled message, nothing delivered."""
    wait_until(lambda: smtp.dropped == 1, timeout=20, what="the server to drop the stalled DATA", log=worker.log)
    assert smtp.messages == []


def restart_after_visibility_timeout(queue: str, start):
    """Start a second worker once Redis may hand it the dead worker's unacknowledged task.

    The second worker's visibility timeout is 1 s: Redis restores a task that has been
    unacknowledged for longer than that, so wait (on Redis's own clock) until that is true.
    """
    client = redis.Redis.from_url(REDIS_URL)
    try:
        taken = client.zrange(f"unacked-{queue}_index", 0, -1, withscores=True)
    finally:
        client.close()
    assert taken, "the killed worker's task is not unacknowledged in Redis: it would be lost"
    latest = max(score for _tag, score in taken)
    while time.time() < latest + 1.5:
        time.sleep(0.1)
    return start("second", CELERY_VISIBILITY_TIMEOUT="1")


def test_worker_killed_mid_alert_email_a_new_worker_sends_it_exactly_once(
    postgresql_transactional_db, smtp, cast, queue, workers
):
    """From the agent's POST to the mailbox: the whole worker dies while the SMTP server holds the DATA."""
    alert_rule(cast.year9, cast.teacher9)
    stalling = smtp.stall_next_data()
    first = workers("first")

    status, capture = post_capture(cast.device_token, user=cast.pupil9.username)

    assert status == 201
    assert stalling.wait(60), f"the worker never reached DATA:\n{first.log()[-3000:]}"
    delivery = AlertDelivery.objects.get(capture=capture)
    assert delivery.status == DeliveryStatus.PENDING and delivery.claimed_by  # claimed before the SMTP talk
    kill_worker(first)
    wait_until_dropped(smtp, first)

    second = restart_after_visibility_timeout(queue, workers)

    [mail] = smtp.wait_for(1, log=second.log)
    assert mail.recipients == ["teacher9@school.test"]
    assert mail.message["Message-ID"] == f"<alert.{delivery.uuid}@school.test>"
    line = second.wait_for_task(delivery.claimed_by)  # the same task, redelivered
    assert " succeeded in " in line, line
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)
    # Whatever runs later (the stale-claim sweep, the follow-up sweep, the task again) sends nothing.
    for later in (
        tasks.alert_claims_retry.delay(),
        tasks.capture_followups_redispatch.delay(),
        tasks.capture_alerts_send.delay(capture.pk),
    ):
        second.wait_for_task(later.id)
    assert len(smtp.messages) == 1


def test_pool_process_killed_mid_email_the_task_is_requeued_at_once_and_sent_once(
    postgresql_transactional_db, smtp, cast, workers
):
    """The OOM killer takes the pool process, not the worker: the worker requeues the task (reject on worker lost)."""
    alert_rule(cast.year9, cast.teacher9)
    capture_id = capture_of(cast)
    stalling = smtp.stall_next_data()
    worker = workers("only")

    result = tasks.capture_alerts_send.delay(capture_id)
    assert stalling.wait(60), f"the worker never reached DATA:\n{worker.log()[-3000:]}"
    [pool_process] = _descendants(worker.process.pid)
    os.kill(pool_process, signal.SIGKILL)
    wait_until_dropped(smtp, worker)

    [mail] = smtp.wait_for(1, log=worker.log)  # the same worker, a new pool process, the same task
    assert mail.recipients == ["teacher9@school.test"]
    wait_until(
        lambda: any(f"[{result.id}]" in line and " succeeded in " in line for line in worker.log().splitlines()),
        timeout=30,
        what="the requeued task to succeed",
        log=worker.log,
    )
    assert "WorkerLostError" in worker.log()
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.claimed_by) == (DeliveryStatus.SENT, 1, result.id)
    assert worker.process.poll() is None  # the worker itself lived on
    assert len(smtp.messages) == 1


def capture_of(cast) -> int:
    """A stored capture of the cast's Year 9 pupil matching the rule (its alert task is the test's to send)."""
    keyword = Keyword.objects.get(text=KEYWORD)
    return CaptureFactory(person=cast.pupil9, keyword=keyword, device=cast.device).pk


def test_worker_killed_mid_digest_email_the_redelivered_task_sends_that_digest_once(
    postgresql_transactional_db, smtp, cast, queue, workers
):
    """An hourly digest: the redelivered sweep finishes the digest it had claimed, at once, not 15 minutes later."""
    rule = alert_rule(cast.year9, cast.teacher9)
    AlertRule.objects.filter(pk=rule.pk).update(digest=AlertRule.Digest.HOURLY)
    captures = [capture_of(cast) for _ in range(2)]
    for capture_id in captures:
        capture_alerts_send(capture_id=capture_id)  # queued for the digest, nothing sent
    assert smtp.messages == []
    # The next full hour arrives (moved here rather than waited for).
    AlertDelivery.objects.update(digest_due_at=timezone.now())
    stalling = smtp.stall_next_data()
    first = workers("first")

    result = tasks.alert_digests_send.delay()
    assert stalling.wait(60), f"the worker never reached DATA:\n{first.log()[-3000:]}"
    digest = AlertDigest.objects.get()
    assert (digest.status, digest.claimed_by) == (DeliveryStatus.PENDING, result.id)
    kill_worker(first)
    wait_until_dropped(smtp, first)

    second = restart_after_visibility_timeout(queue, workers)

    line = second.wait_for_task(result.id)
    assert " succeeded in " in line, line
    [mail] = smtp.wait_for(1, log=second.log)
    assert mail.subject == f"[Safeguard] Hourly digest: 2 captures ({rule.name})"
    digest.refresh_from_db()
    assert (digest.status, digest.attempts) == (DeliveryStatus.SENT, 1)
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    for later in (tasks.alert_digests_send.delay(), tasks.alert_claims_retry.delay()):
        second.wait_for_task(later.id)
    assert len(smtp.messages) == 1


def test_worker_killed_mid_escalation_email_the_redelivered_task_sends_that_round_once(
    postgresql_transactional_db, smtp, cast, queue, workers
):
    escalation = EscalationSettingsFactory(group=cast.year9, minutes=15, max_rounds=3)
    EscalationContactFactory(escalation=escalation, user=cast.lead, order=1)
    capture = CaptureFactory(person=cast.pupil9, keyword=KeywordFactory(severity="severe"), device=cast.device)
    # Time passes by moving the past back: escalation set up an hour ago, the capture 16 minutes ago.
    now = timezone.now()
    EscalationSettings.objects.filter(pk=escalation.pk).update(created_at=now - timedelta(hours=1))
    Capture.objects.filter(pk=capture.pk).update(received_at=now - timedelta(minutes=16))
    stalling = smtp.stall_next_data()
    first = workers("first")

    result = tasks.escalations_send_due.delay()
    assert stalling.wait(60), f"the worker never reached DATA:\n{first.log()[-3000:]}"
    escalation_round = EscalationRound.objects.get()
    assert (escalation_round.round, escalation_round.status, escalation_round.claimed_by) == (
        1,
        DeliveryStatus.PENDING,
        result.id,
    )
    kill_worker(first)
    wait_until_dropped(smtp, first)

    second = restart_after_visibility_timeout(queue, workers)

    line = second.wait_for_task(result.id)
    assert " succeeded in " in line, line
    [mail] = smtp.wait_for(1, log=second.log)
    assert mail.recipients == ["lead@school.test"] and "ESCALATION" in mail.subject
    escalation_round.refresh_from_db()
    assert (escalation_round.status, escalation_round.attempts) == (DeliveryStatus.SENT, 1)
    second.wait_for_task(tasks.escalations_send_due.delay().id)  # the next sweep: round 2 is not due yet
    assert len(smtp.messages) == 1
    assert EscalationRound.objects.count() == 1
