"""Action rules: after N captures of at least severity S (within D days), move the person and/or tell staff.

Specification (safeguard.policies.actions): counted per person over their captures; fires exactly
once per (rule, person), also when two captures are evaluated at the same instant (PostgreSQL,
two connections); the move keeps the person's other groups and is audited by the system with the
rule named; the staff notice goes to the staff with access to the rule's group, once.
"""

import io
import json
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from PIL import Image

from safeguard.captures.models import ActionRuleFiring
from safeguard.groups.models import Membership
from safeguard.logs.models import AuditEntry
from safeguard.policies.actions import (
    SYSTEM_ACTOR,
    action_rule_apply,
    action_rule_count,
    action_rule_notify,
    action_rules_evaluate,
    action_rules_for_person,
)
from safeguard.policies.models import Severity
from tests.conftest import device_api_client
from tests.factories import (
    ActionRuleFactory,
    CaptureFactory,
    KeywordFactory,
    MembershipFactory,
    PersonFactory,
    StaffAccessFactory,
    StaffUserFactory,
    UserGroupFactory,
    enrolled_device,
)

NOW = timezone.now()


def captures(person, count: int, *, severity: str = Severity.SEVERE, ago: timedelta = timedelta(minutes=5)):
    keyword = KeywordFactory(severity=severity)
    return [CaptureFactory(person=person, keyword=keyword, occurred_at=NOW - ago, screenshot="") for _ in range(count)]


@pytest.fixture
def pupil_in_year9(db):
    year9 = UserGroupFactory(name="Year 9")
    pupil = PersonFactory(username="SCHOOL\\watched", display_name="Watched Pupil")
    MembershipFactory(group=year9, person=pupil)
    watch = UserGroupFactory(name="Watch Group", is_watch_group=True)
    return year9, pupil, watch


# --- the arithmetic (fast) ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_count_takes_captures_at_or_above_the_minimum_severity():
    person = PersonFactory()
    rule = ActionRuleFactory(min_severity=Severity.HIGH, threshold=3)
    captures(person, 2, severity=Severity.SEVERE)
    captures(person, 1, severity=Severity.HIGH)
    captures(person, 4, severity=Severity.MEDIUM)
    captures(PersonFactory(), 5, severity=Severity.SEVERE)  # someone else's

    assert action_rule_count(rule=rule, person=person, now=NOW) == 3


@pytest.mark.django_db
def test_within_days_counts_only_the_last_d_days_and_empty_means_all_time():
    person = PersonFactory()
    captures(person, 1, ago=timedelta(days=7) - timedelta(minutes=1))  # just inside 7 days
    captures(person, 1, ago=timedelta(days=7) + timedelta(minutes=1))  # just outside
    captures(person, 1, ago=timedelta(days=400))

    assert action_rule_count(rule=ActionRuleFactory(within_days=7), person=person, now=NOW) == 1
    assert action_rule_count(rule=ActionRuleFactory(within_days=8), person=person, now=NOW) == 2
    assert action_rule_count(rule=ActionRuleFactory(within_days=None), person=person, now=NOW) == 3


@pytest.mark.django_db
def test_the_rule_fires_at_the_threshold_not_before(pupil_in_year9):
    year9, pupil, watch = pupil_in_year9
    rule = ActionRuleFactory(group=year9, move_to_group=watch, threshold=3, min_severity=Severity.SEVERE)
    first_two = captures(pupil, 2)

    assert action_rules_evaluate(capture_id=first_two[-1].pk) == []
    assert not Membership.objects.filter(group=watch, person=pupil).exists()

    third = captures(pupil, 1)[0]
    [firing] = action_rules_evaluate(capture_id=third.pk)

    assert (firing.rule, firing.person, firing.capture, firing.capture_count) == (rule, pupil, third, 3)
    assert Membership.objects.filter(group=watch, person=pupil).exists()


@pytest.mark.django_db
def test_captures_outside_the_window_do_not_reach_the_threshold(pupil_in_year9):
    year9, pupil, watch = pupil_in_year9
    ActionRuleFactory(group=year9, move_to_group=watch, threshold=3, within_days=2)
    captures(pupil, 2, ago=timedelta(days=3))
    recent = captures(pupil, 2, ago=timedelta(hours=1))

    assert action_rules_evaluate(capture_id=recent[-1].pk) == []
    assert not Membership.objects.filter(group=watch, person=pupil).exists()


@pytest.mark.django_db
def test_the_move_keeps_the_year_group_and_is_audited_by_the_system_naming_the_rule(pupil_in_year9):
    year9, pupil, watch = pupil_in_year9
    rule = ActionRuleFactory(name="50 severe to Watch", group=year9, move_to_group=watch, threshold=2)
    last = captures(pupil, 2)[-1]

    action_rules_evaluate(capture_id=last.pk)

    assert set(Membership.objects.filter(person=pupil).values_list("group__name", flat=True)) == {
        "Year 9",
        "Watch Group",
    }
    moved = AuditEntry.objects.get(action="person.moved_to_group")
    assert moved.actor is None and moved.actor_name == SYSTEM_ACTOR
    assert moved.target_id == str(pupil.uuid)
    assert "50 severe to Watch" in moved.summary and "Watch Group" in moved.summary
    assert moved.after["rule"] == str(rule.uuid) and moved.after["capture_count"] == 2
    fired = AuditEntry.objects.get(action="action_rule.fired")
    assert fired.after["moved_to_group"] == str(watch.uuid)


@pytest.mark.django_db
def test_the_rule_fires_once_per_person_even_after_more_captures_or_removal(pupil_in_year9):
    year9, pupil, watch = pupil_in_year9
    ActionRuleFactory(group=year9, move_to_group=watch, threshold=2)
    action_rules_evaluate(capture_id=captures(pupil, 2)[-1].pk)
    # Staff take the pupil out of the Watch Group again; more captures follow.
    Membership.objects.filter(group=watch, person=pupil).delete()

    later = captures(pupil, 3)
    for capture in later:
        assert action_rules_evaluate(capture_id=capture.pk) == []

    assert ActionRuleFiring.objects.count() == 1
    assert not Membership.objects.filter(group=watch, person=pupil).exists()
    assert AuditEntry.objects.filter(action="person.moved_to_group").count() == 1


@pytest.mark.django_db
def test_deleting_the_firing_re_arms_the_rule(pupil_in_year9):
    year9, pupil, watch = pupil_in_year9
    rule = ActionRuleFactory(group=year9, move_to_group=watch, threshold=1)
    action_rules_evaluate(capture_id=captures(pupil, 1)[0].pk)
    ActionRuleFiring.objects.filter(rule=rule, person=pupil).delete()

    assert action_rule_apply(rule=rule, person=pupil) is not None
    assert ActionRuleFiring.objects.filter(rule=rule, person=pupil).count() == 1


@pytest.mark.django_db
def test_a_rule_on_a_parent_group_watches_the_people_of_its_subgroups():
    key_stage = UserGroupFactory(name="Key Stage 3")
    form = UserGroupFactory(name="Form 9A", parent=UserGroupFactory(name="Year 9", parent=key_stage))
    pupil = PersonFactory()
    MembershipFactory(group=form, person=pupil)
    on_parent = ActionRuleFactory(group=key_stage, threshold=1)
    ActionRuleFactory(group=UserGroupFactory(name="Year 10"), threshold=1)  # not theirs
    ActionRuleFactory(group=key_stage, threshold=1, enabled=False)

    assert list(action_rules_for_person(person=pupil)) == [on_parent]
    [firing] = action_rules_evaluate(capture_id=captures(pupil, 1)[0].pk)
    assert firing.rule == on_parent


@pytest.mark.django_db
def test_a_capture_below_the_rules_severity_does_not_fire_it(pupil_in_year9):
    year9, pupil, watch = pupil_in_year9
    ActionRuleFactory(group=year9, move_to_group=watch, threshold=2, min_severity=Severity.HIGH)
    captures(pupil, 2, severity=Severity.HIGH)
    low = captures(pupil, 1, severity=Severity.LOW)[0]

    # The low capture cannot change the count of a "high or above" rule: it does not evaluate it.
    assert action_rules_evaluate(capture_id=low.pk) == []
    high = captures(pupil, 1, severity=Severity.HIGH)[0]
    assert len(action_rules_evaluate(capture_id=high.pk)) == 1


@pytest.mark.django_db
def test_a_person_already_in_the_target_group_is_not_moved_again(pupil_in_year9):
    year9, pupil, watch = pupil_in_year9
    MembershipFactory(group=watch, person=pupil)
    ActionRuleFactory(group=year9, move_to_group=watch, threshold=1)

    [firing] = action_rules_evaluate(capture_id=captures(pupil, 1)[0].pk)

    assert firing.moved_to_group == watch
    assert not AuditEntry.objects.filter(action="person.moved_to_group").exists()
    assert "already in Watch Group" in AuditEntry.objects.get(action="action_rule.fired").summary


@pytest.mark.django_db
def test_an_unknown_capture_evaluates_nothing():
    assert action_rules_evaluate(capture_id=987654) == []


# --- notifying staff ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_with_access_to_the_group_are_emailed_once(
    pupil_in_year9, mailoutbox, django_capture_on_commit_callbacks
):
    year9, pupil, watch = pupil_in_year9
    school = UserGroupFactory(name="Whole school")
    year9.parent = school
    year9.save()
    tutor = StaffAccessFactory(user=StaffUserFactory(username="tutor"), group=year9).user
    head = StaffAccessFactory(user=StaffUserFactory(username="head"), group=school).user
    StaffAccessFactory(user=StaffUserFactory(username="y10"), group=UserGroupFactory(name="Year 10"))
    StaffAccessFactory(user=StaffUserFactory(username="noemail", email=""), group=year9)
    rule = ActionRuleFactory(
        name="Three severe", group=year9, move_to_group=watch, threshold=3, notify_staff=True, within_days=30
    )

    with django_capture_on_commit_callbacks(execute=True):
        [firing] = action_rules_evaluate(capture_id=captures(pupil, 3)[-1].pk)

    [mail] = mailoutbox
    assert sorted(mail.to) == sorted([tutor.email, head.email])
    assert "Watched Pupil" in mail.subject and "Three severe" in mail.subject
    assert "3 captures of severe severity or above in the last 30 days" in mail.body
    assert "Watch Group" in mail.body
    assert f"/console/captures/?person={pupil.uuid}" in mail.body
    firing.refresh_from_db()
    assert firing.notified_at is not None
    # A redelivered notice sends nothing more.
    assert action_rule_notify(firing_id=firing.pk) == 0
    assert len(mailoutbox) == 1
    assert rule.notify_staff


@pytest.mark.django_db
def test_a_failed_send_releases_the_claim_so_the_retry_sends(pupil_in_year9, mailoutbox, settings):
    year9, pupil, _watch = pupil_in_year9
    StaffAccessFactory(user=StaffUserFactory(username="tutor"), group=year9)
    rule = ActionRuleFactory(group=year9, move_to_group=None, notify_staff=True, threshold=1)
    captures(pupil, 1)
    firing = action_rule_apply(rule=rule, person=pupil)
    assert firing is not None
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens

    with pytest.raises(OSError):
        action_rule_notify(firing_id=firing.pk)
    firing.refresh_from_db()
    assert firing.notified_at is None

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert action_rule_notify(firing_id=firing.pk) == 1
    assert len(mailoutbox) == 1


# --- two captures at the same instant (PostgreSQL, two connections) -------------------------------


def _evaluate_in_thread(capture_id: int, barrier: threading.Barrier, results: dict, key: str) -> None:
    try:
        barrier.wait(timeout=10)
        results[key] = action_rules_evaluate(capture_id=capture_id)
    except BaseException as error:  # reported by the test
        results[key] = error
    finally:
        connection.close()


@pytest.mark.parametrize("round_", range(5))
def test_two_simultaneous_evaluations_move_the_person_exactly_once(postgresql_transactional_db, round_):
    year9 = UserGroupFactory(name="Year 9")
    watch = UserGroupFactory(name="Watch Group", is_watch_group=True)
    pupil = PersonFactory()
    MembershipFactory(group=year9, person=pupil)
    ActionRuleFactory(group=year9, move_to_group=watch, threshold=2, notify_staff=False)
    first, second = captures(pupil, 2)  # both committed: each evaluation counts 2
    barrier = threading.Barrier(2)
    results: dict = {}
    threads = [
        threading.Thread(target=_evaluate_in_thread, args=(capture.pk, barrier, results, name))
        for capture, name in ((first, "a"), (second, "b"))
    ]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    errors = [value for value in results.values() if isinstance(value, BaseException)]
    assert not errors, errors
    assert sorted(len(fired) for fired in results.values()) == [0, 1]
    assert ActionRuleFiring.objects.filter(person=pupil).count() == 1
    assert Membership.objects.filter(group=watch, person=pupil).count() == 1
    assert AuditEntry.objects.filter(action="person.moved_to_group", target_id=str(pupil.uuid)).count() == 1
    assert AuditEntry.objects.filter(action="action_rule.fired", target_id=str(pupil.uuid)).count() == 1


# --- the whole path on a real worker --------------------------------------------------------------


def _post_capture(token: str, barrier: threading.Barrier, results: list) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), "black").save(buffer, "PNG")
    from django.core.files.uploadedfile import SimpleUploadedFile

    metadata = {
        "id": str(uuid.uuid4()),
        "occurred_at": (timezone.now() - timedelta(seconds=2)).isoformat(),
        "user": "SCHOOL\\racing",
        "keyword": "razor blade",
        "severity": "severe",
    }
    try:
        barrier.wait(timeout=10)
        response = device_api_client(token).post(
            "/api/v1/agent/captures",
            {"metadata": json.dumps(metadata), "screenshot": SimpleUploadedFile("s.png", buffer.getvalue())},
            format="multipart",
        )
        results.append(response.status_code)
    finally:
        connection.close()


@pytest.mark.integration
def test_two_captures_arriving_together_move_the_pupil_once_on_a_real_worker(celery_worker):
    KeywordFactory(text="razor blade", severity=Severity.SEVERE)
    year9 = UserGroupFactory(name="Year 9")
    watch = UserGroupFactory(name="Watch Group", is_watch_group=True)
    pupil = PersonFactory(username="SCHOOL\\racing")
    MembershipFactory(group=year9, person=pupil)
    ActionRuleFactory(group=year9, move_to_group=watch, threshold=2)
    _, token = enrolled_device()
    barrier = threading.Barrier(2)
    statuses: list[int] = []
    threads = [threading.Thread(target=_post_capture, args=(token, barrier, statuses)) for _ in range(2)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert statuses == [201, 201]
    deadline = time.monotonic() + 30
    while not Membership.objects.filter(group=watch, person=pupil).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Membership.objects.filter(group=watch, person=pupil).exists(), celery_worker.log()[-3000:]
    # Both captures' evaluations ran (the log names the task twice) and only one moved the pupil.
    deadline = time.monotonic() + 30
    while celery_worker.log().count("action_rules_evaluate[") < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert celery_worker.log().count("action_rules_evaluate[") >= 4  # received + succeeded, twice
    assert ActionRuleFiring.objects.filter(person=pupil).count() == 1
    assert AuditEntry.objects.filter(action="person.moved_to_group", target_id=str(pupil.uuid)).count() == 1
