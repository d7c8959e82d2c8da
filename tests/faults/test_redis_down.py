"""Fault: Redis is down when a capture arrives. The capture is stored, and its alert goes out once, when Redis is back.

A redis-server of this test's own (never the shared one) is the broker of a real `celery worker`.
The test kills Redis, an agent posts a capture (through the real API), Redis comes back empty
(nothing was saved: the worst case, every queued message lost), and the beat sweep
(`capture_followups_redispatch`, sent as `celery beat` would send it) finds the capture's
follow-up row, written undispatched in the capture's own transaction, and dispatches its work.
The second case: Redis took the capture's tasks and lost them before any worker ran them.
"""

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from safeguard.celery import app as celery_app
from safeguard.policies import tasks
from safeguard.policies.followups import REDISPATCH_AFTER, lost_after
from safeguard.policies.models import AlertDelivery, CaptureFollowup, DeliveryStatus
from tests.faults.flow import alert_rule, post_capture
from tests.faults.servers import PrivateRedis, free_port, wait_until
from tests.workers import new_queue_name, sending_to, start_worker, stop_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(port=free_port(), log_path=tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def answers_ping(node: str) -> bool:
    try:
        return any(node in reply for reply in celery_app.control.ping(destination=[node], timeout=1.0))
    except (OperationalError, RedisError, OSError):  # Redis not reachable yet
        return False


def test_a_capture_stored_while_redis_is_down_is_alerted_once_when_redis_is_back(
    postgresql_transactional_db, smtp, cast, private_redis, tmp_path
):
    alert_rule(cast.year9, cast.teacher9)
    queue = new_queue_name()
    with sending_to(queue, broker_url=private_redis.url):
        worker = start_worker(
            queue=queue,
            media_root=django_settings.MEDIA_ROOT,
            log_path=tmp_path / "worker.log",
            extra_env={**smtp.worker_env(), "REDIS_URL": private_redis.url},
        )
        try:
            private_redis.stop()

            status, capture = post_capture(cast.device_token, user=cast.pupil9.username)

            # Stored and answered: the agent deletes it from its outbox; nothing may be lost now.
            assert status == 201
            assert capture is not None
            followup = CaptureFollowup.objects.get(capture=capture)
            assert (followup.dispatched_at, followup.attempts) == (None, 1)  # one attempt, refused
            assert AlertDelivery.objects.count() == 0
            assert smtp.messages == []

            private_redis.start()  # back, and empty
            wait_until(lambda: answers_ping(worker.node), timeout=60, what="the worker to reconnect", log=worker.log)
            # A sweep before the row is REDISPATCH_AFTER old leaves it (its request may still be enqueueing).
            early = tasks.capture_followups_redispatch.delay()
            assert " succeeded in " in worker.wait_for_task(early.id)
            assert CaptureFollowup.objects.get(capture=capture).dispatched_at is None
            assert smtp.messages == []

            # Time passes (moved rather than waited for); beat's next sweep dispatches the work.
            CaptureFollowup.objects.filter(capture=capture).update(created_at=timezone.now() - REDISPATCH_AFTER)
            sweep = tasks.capture_followups_redispatch.delay()
            assert " succeeded in " in worker.wait_for_task(sweep.id)

            [mail] = smtp.wait_for(1, log=worker.log)
            assert mail.recipients == ["teacher9@school.test"]
            assert f"/console/captures/{capture.uuid}/" in mail.text()
            delivery = AlertDelivery.objects.get()
            wait_until(
                lambda: AlertDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENT).exists(),
                timeout=30,
                what="the delivery to be marked sent",
                log=worker.log,
            )
            followup.refresh_from_db()
            assert followup.dispatched_at is not None and followup.attempts == 2
            # The preview is part of the capture's follow-ups: made too, though Redis was down at ingest.
            wait_until(
                lambda: type(capture).objects.get(pk=capture.pk).screenshot_preview,
                timeout=30,
                what="the preview",
                log=worker.log,
            )

            # Later sweeps find nothing to do; nothing is sent twice.
            again = tasks.capture_followups_redispatch.delay()
            worker.wait_for_task(again.id)
            retry = tasks.alert_claims_retry.delay()
            worker.wait_for_task(retry.id)
            assert len(smtp.messages) == 1
            assert AlertDelivery.objects.count() == 1
        finally:
            stop_worker(worker)


def test_the_sweep_is_on_the_beat_schedule_every_minute():
    entry = django_settings.CELERY_BEAT_SCHEDULE["capture-followups-redispatch"]
    assert entry["task"] == tasks.capture_followups_redispatch.name
    assert entry["schedule"] == 60.0


def test_a_capture_whose_queued_tasks_redis_lost_is_alerted_once_by_the_sweep(
    postgresql_transactional_db, smtp, cast, private_redis, tmp_path
):
    """Redis took the capture's tasks, then restarted without them (no append-only file) before a worker ran them."""
    alert_rule(cast.year9, cast.teacher9)
    queue = new_queue_name()
    with sending_to(queue, broker_url=private_redis.url):
        status, capture = post_capture(cast.device_token, user=cast.pupil9.username)  # no worker running yet
        assert status == 201
        followup = CaptureFollowup.objects.get(capture=capture)
        assert followup.dispatched_at is not None and followup.alerts_decided_at is None

        private_redis.stop()
        private_redis.start()  # empty: the queued tasks are gone
        worker = start_worker(
            queue=queue,
            media_root=django_settings.MEDIA_ROOT,
            log_path=tmp_path / "worker.log",
            extra_env={**smtp.worker_env(), "REDIS_URL": private_redis.url},
        )
        try:
            early = tasks.capture_followups_redispatch.delay()  # late is not lost: nothing yet
            worker.wait_for_task(early.id)
            assert smtp.messages == []

            # Time passes (moved rather than waited for) beyond the point where Redis would have
            # handed a dead worker's task back; the sweep counts the tasks as lost.
            CaptureFollowup.objects.filter(capture=capture).update(dispatched_at=timezone.now() - lost_after())
            sweep = tasks.capture_followups_redispatch.delay()
            assert " succeeded in " in worker.wait_for_task(sweep.id)

            [mail] = smtp.wait_for(1, log=worker.log)
            assert f"/console/captures/{capture.uuid}/" in mail.text()
            wait_until(
                lambda: CaptureFollowup.objects.filter(capture=capture, alerts_decided_at__isnull=False).exists(),
                timeout=30,
                what="the alerts to be decided",
                log=worker.log,
            )
            again = tasks.capture_followups_redispatch.delay()
            worker.wait_for_task(again.id)
            assert len(smtp.messages) == 1
        finally:
            stop_worker(worker)
