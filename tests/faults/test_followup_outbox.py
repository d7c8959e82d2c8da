"""The transactional outbox of a capture's background work: written with the capture, swept if never dispatched.

The fault here is the web process dying in the instant after a capture's commit, before it could
enqueue anything (a deploy's SIGKILL, the OOM killer). Simulated exactly: the capture's on-commit
callbacks are captured and never run. Tasks run in-process (eager), the email goes to a real SMTP
server (tests/smtp.py). Runs on SQLite and PostgreSQL.
"""

from datetime import timedelta

import pytest

from safeguard.captures.models import Capture
from safeguard.captures.services import capture_dispatch_followups
from safeguard.policies.followups import (
    MAX_DISPATCHES,
    REDISPATCH_AFTER,
    capture_followups_record,
    capture_followups_redispatch,
    lost_after,
)
from safeguard.policies.models import AlertDelivery, CaptureFollowup, DeliveryStatus
from tests.factories import CaptureFactory, KeywordFactory
from tests.faults.flow import alert_rule, post_capture
from tests.workers import new_queue_name, sending_to


@pytest.mark.django_db
def test_a_capture_whose_process_died_after_the_commit_is_swept_and_alerted_once(
    cast, smtp, django_capture_on_commit_callbacks
):
    alert_rule(cast.year9, cast.teacher9)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        status, capture = post_capture(cast.device_token, user=cast.pupil9.username)

    assert status == 201
    assert len(callbacks) == 1  # the dispatch that never ran
    followup = CaptureFollowup.objects.get(capture=capture)  # committed with the capture itself
    assert (followup.dispatched_at, followup.attempts) == (None, 0)
    assert smtp.messages == [] and not capture.screenshot_preview

    assert capture_followups_redispatch(now=followup.created_at + REDISPATCH_AFTER - timedelta(seconds=1)) == 0
    assert smtp.messages == []
    assert capture_followups_redispatch(now=followup.created_at + REDISPATCH_AFTER) == 1

    [mail] = smtp.messages
    assert f"/console/captures/{capture.uuid}/" in mail.text()
    assert AlertDelivery.objects.get().status == DeliveryStatus.SENT
    followup.refresh_from_db()
    assert followup.dispatched_at is not None and followup.attempts == 1
    capture.refresh_from_db()
    assert capture.screenshot_preview  # the preview is one of the follow-ups

    # Swept again, dispatched again by mistake: still one email.
    assert capture_followups_redispatch(now=followup.created_at + 2 * REDISPATCH_AFTER) == 0
    capture_dispatch_followups(capture)
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_each_stored_capture_has_one_followup_row_and_a_resend_adds_none(
    cast, smtp, django_capture_on_commit_callbacks
):
    alert_rule(cast.year9, cast.teacher9)
    with django_capture_on_commit_callbacks(execute=True):
        status, capture = post_capture(cast.device_token, user=cast.pupil9.username)
    assert status == 201
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again, _ = post_capture(cast.device_token, user=cast.pupil9.username, capture_id=str(capture.uuid))
    assert (again, callbacks) == (200, [])  # a resend: stored already, nothing to dispatch

    followup = CaptureFollowup.objects.get()
    assert followup.capture_id == capture.pk
    assert followup.dispatched_at is not None and followup.attempts == 1
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_a_capture_stored_without_a_followup_row_gets_one_when_dispatched(smtp):
    capture = CaptureFactory()  # e.g. stored by a script, not through capture_ingest
    assert not CaptureFollowup.objects.filter(capture=capture).exists()

    capture_dispatch_followups(capture)

    followup = CaptureFollowup.objects.get(capture=capture)
    assert followup.dispatched_at is not None and followup.attempts == 1
    assert Capture.objects.get(pk=capture.pk).screenshot_preview


@pytest.mark.django_db
def test_a_capture_whose_dispatched_tasks_were_lost_is_dispatched_again_after_lost_after(
    cast, smtp, django_capture_on_commit_callbacks
):
    alert_rule(cast.year9, cast.teacher9)
    with django_capture_on_commit_callbacks(execute=False):
        status, capture = post_capture(cast.device_token, user=cast.pupil9.username)
    assert status == 201
    # Its tasks reached Redis, which then lost them (restarted without its append-only file).
    capture_followups_record(capture_id=capture.pk, dispatched=True)
    followup = CaptureFollowup.objects.get(capture=capture)
    assert followup.dispatched_at is not None and followup.alerts_decided_at is None

    # Late is not lost: Redis may still hand a dead worker's task to another.
    assert capture_followups_redispatch(now=followup.dispatched_at + lost_after() - timedelta(seconds=1)) == 0
    assert capture_followups_redispatch(now=followup.dispatched_at + lost_after()) == 1

    assert len(smtp.messages) == 1
    followup.refresh_from_db()
    assert followup.alerts_decided_at is not None and followup.attempts == 2
    # Decided: never dispatched again, however late the sweep.
    assert capture_followups_redispatch(now=followup.dispatched_at + 10 * lost_after()) == 0
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_a_capture_with_no_matching_rule_counts_as_decided(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        KeywordFactory(text="blade", severity="severe")  # no alert rule
        status, capture = post_capture(cast.device_token, user=cast.pupil9.username)
    assert status == 201

    followup = CaptureFollowup.objects.get(capture=capture)
    assert followup.alerts_decided_at is not None
    assert capture_followups_redispatch(now=followup.dispatched_at + 10 * lost_after()) == 0


@pytest.mark.django_db
def test_lost_work_is_dispatched_at_most_max_dispatches_times(cast):
    capture = CaptureFactory()
    capture_followups_record(capture_id=capture.pk, dispatched=True)
    CaptureFollowup.objects.filter(capture=capture).update(attempts=MAX_DISPATCHES)
    followup = CaptureFollowup.objects.get(capture=capture)

    assert capture_followups_redispatch(now=followup.dispatched_at + lost_after()) == 0


@pytest.mark.django_db
def test_with_the_broker_unreachable_the_request_tries_it_once_and_leaves_the_rest_to_the_sweep(
    cast, smtp, caplog, django_capture_on_commit_callbacks
):
    alert_rule(cast.year9, cast.teacher9)
    # Nothing listens on port 1: every enqueue fails, as when Redis is down.
    with sending_to(new_queue_name(), broker_url="redis://127.0.0.1:1/0"):
        with django_capture_on_commit_callbacks(execute=True):
            status, capture = post_capture(cast.device_token, user=cast.pupil9.username)

    assert status == 201
    refused = [record for record in caplog.records if record.getMessage().startswith("Could not enqueue")]
    assert len(refused) == 1  # not once per task: each try costs the agent's request about a second
    followup = CaptureFollowup.objects.get(capture=capture)
    assert (followup.dispatched_at, followup.attempts) == (None, 1)
    assert smtp.messages == []
