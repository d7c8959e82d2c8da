"""Escalation: severe captures nobody opens go to the next contact, one round per interval, up to N rounds.

The service takes `now`, so the fast tests move time by hand. The integration test runs the beat
task on a real worker, moving the capture's times back instead of waiting.
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from safeguard.captures.models import CaptureStatus
from safeguard.captures.services import capture_add_note, capture_set_status
from safeguard.policies import tasks
from safeguard.policies.escalation import capture_record_view, escalations_send_due
from safeguard.policies.models import CaptureView, DeliveryStatus, EscalationRound, EscalationSettings, Severity
from tests.factories import (
    CaptureFactory,
    EscalationContactFactory,
    EscalationSettingsFactory,
    KeywordFactory,
    PersonFactory,
)

STEP = timedelta(minutes=15)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def escalation_for(group, *contacts, **fields) -> EscalationSettings:
    escalation = EscalationSettingsFactory(group=group, **fields)
    for order, user in enumerate(contacts, start=1):
        EscalationContactFactory(escalation=escalation, user=user, order=order)
    return escalation


def severe_capture(person, severity=Severity.SEVERE):
    return CaptureFactory(person=person, keyword=KeywordFactory(severity=severity))


def rounds(capture) -> list[tuple[int, str, str]]:
    return [(r.round, r.address, r.status) for r in EscalationRound.objects.filter(capture=capture).order_by("round")]


@pytest.mark.django_db
def test_each_round_emails_the_next_contact_one_interval_after_the_last_up_to_max_rounds(cast, smtp):
    escalation_for(cast.year9, cast.lead, cast.teacher9, minutes=15, max_rounds=3)
    capture = severe_capture(cast.pupil9)
    t0 = capture.received_at

    assert escalations_send_due(now=t0 + STEP - timedelta(seconds=1)) == 0
    assert escalations_send_due(now=t0 + STEP) == 1
    assert escalations_send_due(now=t0 + STEP) == 0  # the same sweep twice: the round is claimed once
    assert escalations_send_due(now=t0 + 2 * STEP - timedelta(seconds=1)) == 0
    assert escalations_send_due(now=t0 + 2 * STEP) == 1
    assert escalations_send_due(now=t0 + 3 * STEP) == 1  # the list starts over
    assert escalations_send_due(now=t0 + 4 * STEP) == 0  # three rounds at most
    assert escalations_send_due(now=t0 + 10 * STEP) == 0

    assert [m.recipients for m in smtp.messages] == [
        ["lead@school.test"],
        ["teacher9@school.test"],
        ["lead@school.test"],
    ]
    first, second, _ = smtp.messages
    assert first.subject == "[Safeguard] ESCALATION: Severe capture: Nine Pupil on " + capture.device.hostname
    assert "nobody has opened this capture in the 15 minutes since it arrived" in first.text()
    assert "round 2 of 3" in second.text() and "round 2 of 3" in second.html()
    assert f"/console/captures/{capture.uuid}/" in second.text()
    assert len(first.attachments()) == 1
    assert rounds(capture) == [
        (1, "lead@school.test", DeliveryStatus.SENT),
        (2, "teacher9@school.test", DeliveryStatus.SENT),
        (3, "lead@school.test", DeliveryStatus.SENT),
    ]


@pytest.mark.django_db
def test_opening_the_capture_page_stops_the_escalation(cast, smtp):
    escalation_for(cast.year9, cast.lead, cast.teacher9)
    capture = severe_capture(cast.pupil9)
    t0 = capture.received_at
    escalations_send_due(now=t0 + STEP)

    assert client_for(cast.teacher9).get(f"/console/captures/{capture.uuid}/").status_code == 200

    assert CaptureView.objects.filter(capture=capture, user=cast.teacher9).exists()
    assert escalations_send_due(now=t0 + 5 * STEP) == 0
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_a_page_view_is_recorded_once_per_person(cast):
    capture = severe_capture(cast.pupil9)
    assert capture_record_view(capture=capture, user=cast.lead) is True
    assert capture_record_view(capture=capture, user=cast.lead) is False
    assert capture_record_view(capture=capture, user=cast.teacher9) is True
    assert CaptureView.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["status", "note"])
def test_changing_the_capture_stops_the_escalation(cast, smtp, change):
    escalation_for(cast.year9, cast.teacher9)
    opened_by_status = severe_capture(cast.pupil9)
    t0 = opened_by_status.received_at
    if change == "status":
        capture_set_status(capture=opened_by_status, status=CaptureStatus.UNDER_REVIEW, actor=cast.lead)
    else:
        capture_add_note(capture=opened_by_status, author=cast.lead, text="Spoke to her at break.")

    assert escalations_send_due(now=t0 + STEP) == 0
    assert smtp.messages == []


@pytest.mark.django_db
def test_contacts_who_may_not_see_the_capture_are_skipped(cast, smtp):
    escalation_for(cast.year9, cast.teacher10, cast.outsider, cast.teacher9)
    capture = severe_capture(cast.pupil9)

    assert escalations_send_due(now=capture.received_at + STEP) == 1
    assert escalations_send_due(now=capture.received_at + 2 * STEP) == 1

    assert [m.recipients for m in smtp.messages] == [["teacher9@school.test"], ["teacher9@school.test"]]


@pytest.mark.django_db
def test_only_new_severe_enough_captures_of_the_group_since_escalation_was_set_escalate(cast, smtp):
    before = severe_capture(cast.pupil9)
    EscalationRound.objects.all().delete()
    escalation = escalation_for(cast.year9, cast.lead, min_severity=Severity.SEVERE)
    # The capture arrived before escalation was set up for the group:
    type(before).objects.filter(pk=before.pk).update(received_at=escalation.created_at - timedelta(seconds=1))
    high = severe_capture(cast.pupil9, severity=Severity.HIGH)
    elsewhere = severe_capture(cast.pupil10)
    outside_any_group = severe_capture(PersonFactory())
    later = max(c.received_at for c in (high, elsewhere, outside_any_group)) + STEP

    assert escalations_send_due(now=later) == 0
    escalation.enabled = False
    escalation.save()
    assert escalations_send_due(now=later + STEP) == 0
    assert smtp.messages == [] and not EscalationRound.objects.exists()


@pytest.mark.django_db
def test_a_subgroup_capture_escalates_in_the_parent_group(cast, smtp):
    from tests.factories import MembershipFactory, UserGroupFactory

    form = UserGroupFactory(name="9A", parent=cast.year9)
    pupil = PersonFactory()
    MembershipFactory(group=form, person=pupil)
    escalation_for(cast.year9, cast.lead)
    capture = severe_capture(pupil)

    assert escalations_send_due(now=capture.received_at + STEP) == 1


@pytest.mark.django_db
def test_a_round_whose_sender_died_is_sent_again_once_its_claim_is_stale(cast, smtp):
    escalation = escalation_for(cast.year9, cast.lead, max_rounds=1)
    capture = severe_capture(cast.pupil9)
    begun = capture.received_at + STEP
    EscalationRound.objects.create(
        capture=capture,
        group=escalation.group,
        round=1,
        contact=cast.lead,
        address="lead@school.test",
        started_at=begun,
        status=DeliveryStatus.PENDING,
        claimed_at=begun,
        claimed_by="dead-task",
    )

    assert escalations_send_due(now=begun + timedelta(minutes=1)) == 0
    assert escalations_send_due(now=begun + timedelta(minutes=16)) == 1
    assert escalations_send_due(now=begun + timedelta(minutes=16)) == 0

    assert len(smtp.messages) == 1
    assert rounds(capture) == [(1, "lead@school.test", DeliveryStatus.SENT)]


# --- a real worker ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_module_worker_env(smtp_server) -> dict[str, str]:
    return smtp_server.worker_env()


@pytest.mark.integration
def test_the_beat_task_escalates_on_a_real_worker_round_by_round_until_opened(module_celery_worker, smtp, cast):
    escalation = escalation_for(cast.year9, cast.lead, cast.teacher9)
    capture = severe_capture(cast.pupil9)
    # Time passes by moving the past back: escalation set up an hour ago, the capture 16 minutes ago.
    now = timezone.now()
    EscalationSettings.objects.filter(pk=escalation.pk).update(created_at=now - timedelta(hours=1))
    type(capture).objects.filter(pk=capture.pk).update(received_at=now - STEP - timedelta(minutes=1))

    def sweep():
        module_celery_worker.wait_for_task(tasks.escalations_send_due.delay().id)

    sweep()
    sweep()
    [first] = smtp.wait_for(1, log=module_celery_worker.log)
    assert first.recipients == ["lead@school.test"] and "ESCALATION" in first.subject

    EscalationRound.objects.filter(capture=capture, round=1).update(started_at=now - STEP - timedelta(minutes=1))
    sweep()
    _, second = smtp.wait_for(2, log=module_celery_worker.log)
    assert second.recipients == ["teacher9@school.test"] and "round 2 of 3" in second.text()

    client_for(cast.teacher9).get(f"/console/captures/{capture.uuid}/")
    EscalationRound.objects.filter(capture=capture, round=2).update(started_at=now - STEP - timedelta(minutes=1))
    sweep()
    assert len(smtp.messages) == 2
    assert [r[0] for r in rounds(capture)] == [1, 2]
