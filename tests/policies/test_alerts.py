"""Email alerts: which rules match, who may receive them, throttle, digests, exactly-once sending.

The fast tests call the services (and the API, with tasks run in-process) against a real SMTP
server in this process (tests/smtp.py). The integration tests run a real `celery worker` on
Redis and PostgreSQL, including one that kills the worker in the middle of sending.
"""

import json
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from safeguard.captures.models import Capture
from safeguard.captures.services import capture_dispatch_followups
from safeguard.celery import app as celery_app
from safeguard.logs.models import AuditEntry
from safeguard.policies import tasks
from safeguard.policies.alerts import (
    CLAIM_STALE_AFTER,
    THROTTLE_WINDOW,
    alert_claims_retry,
    alert_digests_send,
    alert_rule_recipients,
    alert_rules_for_capture,
    capture_alerts_send,
    digest_due_at,
    parse_addresses,
)
from safeguard.policies.followups import capture_followups_redispatch
from safeguard.policies.models import (
    AlertDelivery,
    AlertDigest,
    AlertRule,
    CaptureFollowup,
    Category,
    DeliveryStatus,
    DigestFrequency,
    Severity,
)
from tests.conftest import device_api_client
from tests.factories import (
    AlertRuleFactory,
    CaptureFactory,
    DeviceGroupFactory,
    KeywordFactory,
    KeywordPolicyFactory,
    MembershipFactory,
    PersonFactory,
    StaffAccessFactory,
    StaffUserFactory,
    UserGroupFactory,
    png_bytes,
)
from tests.smtp import CONSOLE_URL
from tests.workers import REDIS_URL, kill_worker, new_queue_name, sending_to, start_worker, stop_worker

LONDON = ZoneInfo("Europe/London")


def rule_for(group, *recipients, **fields) -> AlertRule:
    rule = AlertRuleFactory(group=group, **fields)
    rule.recipients.set(recipients)
    return rule


def capture_of(person, *, severity=Severity.SEVERE, policy=None, keyword=None, device=None, **fields) -> Capture:
    """A capture of `person` on Y9-PC01 (the cast's enrolled device) unless `device` is given."""
    from safeguard.groups.models import Device

    keyword = keyword or KeywordFactory(severity=severity, **({"policy": policy} if policy else {}))
    device = device or Device.objects.get(hostname="Y9-PC01")
    return CaptureFactory(person=person, keyword=keyword, device=device, **fields)


def deliveries(**filters) -> list[AlertDelivery]:
    return list(AlertDelivery.objects.filter(**filters).order_by("pk"))


# --- which rules match ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rule_matches_people_of_its_group_and_of_its_subgroups_only(cast):
    form9a = UserGroupFactory(name="Form 9A", parent=cast.year9)
    in_form = PersonFactory()
    MembershipFactory(group=form9a, person=in_form)
    on_year9 = AlertRuleFactory(group=cast.year9, min_severity=Severity.LOW)
    on_year10 = AlertRuleFactory(group=cast.year10, min_severity=Severity.LOW)

    assert alert_rules_for_capture(capture=capture_of(cast.pupil9)) == [on_year9]
    assert alert_rules_for_capture(capture=capture_of(in_form)) == [on_year9]
    assert alert_rules_for_capture(capture=capture_of(cast.pupil10)) == [on_year10]
    assert alert_rules_for_capture(capture=capture_of(PersonFactory())) == []


@pytest.mark.django_db
def test_a_device_group_rule_matches_captures_on_its_devices_and_a_rule_without_group_matches_all(cast):
    suite = DeviceGroupFactory(name="IT Suite")
    MembershipFactory(group=suite, person=None, device=cast.device10)
    on_suite = AlertRuleFactory(group=suite, min_severity=Severity.LOW)
    everywhere = AlertRuleFactory(group=None, min_severity=Severity.LOW)

    assert alert_rules_for_capture(capture=capture_of(PersonFactory(), device=cast.device10)) == [on_suite, everywhere]
    assert alert_rules_for_capture(capture=capture_of(PersonFactory(), device=cast.device9)) == [everywhere]


@pytest.mark.django_db
def test_policies_empty_means_every_policy_and_severity_must_reach_the_minimum(cast):
    self_harm = KeywordPolicyFactory(category=Category.SELF_HARM)
    drugs = KeywordPolicyFactory(category=Category.DRUGS)
    any_policy = AlertRuleFactory(group=cast.year9, min_severity=Severity.HIGH)
    self_harm_only = AlertRuleFactory(group=cast.year9, min_severity=Severity.MEDIUM)
    self_harm_only.policies.set([self_harm])
    AlertRuleFactory(group=cast.year9, min_severity=Severity.LOW, enabled=False)

    assert alert_rules_for_capture(capture=capture_of(cast.pupil9, severity="high", policy=self_harm)) == [
        any_policy,
        self_harm_only,
    ]
    assert alert_rules_for_capture(capture=capture_of(cast.pupil9, severity="high", policy=drugs)) == [any_policy]
    assert alert_rules_for_capture(capture=capture_of(cast.pupil9, severity="medium", policy=self_harm)) == [
        self_harm_only
    ]
    assert alert_rules_for_capture(capture=capture_of(cast.pupil9, severity="low", policy=self_harm)) == []


# --- who may receive them -----------------------------------------------------------------------


@pytest.mark.django_db
def test_staff_recipients_get_mail_only_about_pupils_they_may_see(cast):
    inactive = StaffAccessFactory(group=cast.year9, user=StaffUserFactory(is_active=False)).user
    no_address = StaffAccessFactory(group=cast.year9, user=StaffUserFactory(email="")).user
    rule = rule_for(cast.year9, cast.lead, cast.teacher9, cast.teacher10, cast.outsider, inactive, no_address)
    rule.extra_addresses = "DSL.Deputy@School.test\nnot an address\nteacher9@school.test"
    rule.save()

    recipients = alert_rule_recipients(rule=rule, capture=capture_of(cast.pupil9))

    assert [(r.address, r.user) for r in recipients] == [
        ("lead@school.test", cast.lead),
        ("teacher9@school.test", cast.teacher9),
        ("dsl.deputy@school.test", None),  # an extra address is trusted: the admin typed it
    ]


@pytest.mark.django_db
def test_a_personal_group_grants_nothing_its_owner_cannot_see_is_not_mailed(cast, smtp):
    mine = UserGroupFactory(name="My watch list", owner=cast.teacher9)
    MembershipFactory(group=mine, person=cast.pupil10)  # a Year 10 pupil teacher9 may not see
    rule_for(mine, cast.teacher9, owner=cast.teacher9)
    capture = capture_of(cast.pupil10)

    assert capture_alerts_send(capture_id=capture.pk) == 0
    assert smtp.messages == [] and not AlertDelivery.objects.exists()


def test_extra_addresses_are_parsed_one_per_line_commas_too_lower_cased_once_each():
    assert parse_addresses("A@x.test, b@x.test;\n\n  a@X.test\nBad Person <c@x.test>\nnope") == [
        "a@x.test",
        "b@x.test",
        "c@x.test",
    ]


# --- the email ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_email_has_who_what_when_where_the_link_and_the_screenshot(cast, smtp):
    rule_for(cast.year9, cast.teacher9)
    capture = capture_of(
        cast.pupil9,
        keyword=KeywordFactory(text="hurt myself", severity="severe"),
        context="i want to hurt myself tonight",
        window_title="Notes - Word",
        url="https://example.test/page",
        occurred_at=datetime(2025, 11, 3, 14, 2, tzinfo=LONDON),
    )

    assert capture_alerts_send(capture_id=capture.pk) == 1

    [mail] = smtp.messages
    assert mail.recipients == ["teacher9@school.test"]
    assert mail.subject == "[Safeguard] Severe capture: Nine Pupil on Y9-PC01"
    link = f"{CONSOLE_URL.removesuffix('/console/')}/console/captures/{capture.uuid}/"
    for part in (mail.text(), mail.html()):
        assert link in part
        assert "Nine Pupil" in part and "SCHOOL\\y9pupil" in part
        assert "hurt myself" in part and "i want to hurt myself tonight" in part
        assert "Monday 3 November 2025, 14:02" in part and "Y9-PC01" in part and "Notes - Word" in part
    [screenshot] = mail.attachments()
    assert screenshot.get_content_type() == "image/png"
    assert screenshot.get_filename() == f"capture-{str(capture.uuid)[:8]}.png"
    assert screenshot.get_content() == png_bytes()
    delivery = AlertDelivery.objects.get()
    assert mail.message["Message-ID"] == f"<alert.{delivery.uuid}@school.test>"
    assert (delivery.status, delivery.mode) == (DeliveryStatus.SENT, AlertDelivery.Mode.IMMEDIATE)


@pytest.mark.django_db
def test_an_illegal_content_capture_is_mailed_with_the_link_only(cast, smtp):
    illegal = KeywordPolicyFactory(category=Category.ILLEGAL_CONTENT, is_illegal_content=True, name="IWF terms")
    rule_for(cast.year9, cast.teacher9)
    capture = capture_of(
        cast.pupil9,
        policy=illegal,
        context="the secret typed words",
        window_title="a telling window title",
        url="https://bad.example/x",
    )

    capture_alerts_send(capture_id=capture.pk)

    [mail] = smtp.messages
    assert mail.attachments() == []
    assert "illegal-content policy" in mail.subject
    for part in (mail.subject, mail.text(), mail.html()):
        for secret in (capture.keyword_text, "the secret typed words", "a telling window title", "bad.example"):
            assert secret not in part
    assert f"/console/captures/{capture.uuid}/" in mail.text() and f"/console/captures/{capture.uuid}/" in mail.html()


@pytest.mark.django_db
def test_each_rule_mails_each_address_once_however_often_it_runs(cast, smtp):
    rule_for(cast.year9, cast.teacher9, cast.lead)
    capture = capture_of(cast.pupil9)

    assert capture_alerts_send(capture_id=capture.pk, claimant="task-1") == 2
    assert capture_alerts_send(capture_id=capture.pk, claimant="task-1") == 0  # a redelivery: rows are SENT
    assert capture_alerts_send(capture_id=capture.pk, claimant="task-2") == 0

    assert sorted(m.recipients[0] for m in smtp.messages) == ["lead@school.test", "teacher9@school.test"]


@pytest.mark.django_db
def test_two_immediate_rules_naming_one_address_send_one_email(cast, smtp):
    rule_for(cast.year9, cast.lead)
    rule_for(None, cast.lead, min_severity=Severity.SEVERE)
    capture = capture_of(cast.pupil9)

    assert capture_alerts_send(capture_id=capture.pk) == 1

    assert len(smtp.messages) == 1
    assert sorted(d.status for d in deliveries()) == [DeliveryStatus.DUPLICATE, DeliveryStatus.SENT]


# --- claims: a worker that died ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_claim_left_by_a_dead_worker_is_finished_by_its_redelivered_task_not_by_another(cast, smtp):
    rule_for(cast.year9, cast.teacher9)
    capture = capture_of(cast.pupil9)
    now = timezone.now()
    # As a worker leaves it when killed after the claim and before (or during) the send:
    AlertDelivery.objects.create(
        capture=capture,
        rule=AlertRule.objects.get(),
        person=cast.pupil9,
        address="teacher9@school.test",
        mode=AlertDelivery.Mode.IMMEDIATE,
        decided_at=now,
        status=DeliveryStatus.PENDING,
        claimed_at=now,
        claimed_by="task-that-died",
    )

    assert capture_alerts_send(capture_id=capture.pk, claimant="another-task", now=now) == 0
    assert alert_claims_retry(now=now + CLAIM_STALE_AFTER - timedelta(seconds=1)) == 0
    assert smtp.messages == []

    assert capture_alerts_send(capture_id=capture.pk, claimant="task-that-died", now=now) == 1

    assert len(smtp.messages) == 1
    assert AlertDelivery.objects.get().status == DeliveryStatus.SENT


@pytest.mark.django_db
def test_the_retry_sweep_sends_a_stale_claim_once(cast, smtp):
    rule_for(cast.year9, cast.teacher9)
    capture = capture_of(cast.pupil9)
    then = timezone.now() - CLAIM_STALE_AFTER - timedelta(minutes=1)
    AlertDelivery.objects.create(
        capture=capture,
        rule=AlertRule.objects.get(),
        person=cast.pupil9,
        address="teacher9@school.test",
        mode=AlertDelivery.Mode.IMMEDIATE,
        decided_at=then,
        status=DeliveryStatus.PENDING,
        claimed_at=then,
        claimed_by="task-that-died",
    )

    assert alert_claims_retry() == 1
    assert alert_claims_retry() == 0

    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_an_smtp_failure_releases_the_claim_and_a_retry_sends(cast, smtp, settings):
    rule_for(cast.year9, cast.teacher9)
    capture = capture_of(cast.pupil9)
    settings.EMAIL_PORT = 1  # nothing listens: connection refused

    with pytest.raises(OSError):
        capture_alerts_send(capture_id=capture.pk, claimant="task-1")

    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.claimed_by, delivery.attempts) == (DeliveryStatus.PENDING, "", 1)
    settings.EMAIL_PORT = smtp.port
    assert capture_alerts_send(capture_id=capture.pk, claimant="task-1") == 1
    assert len(smtp.messages) == 1


# --- throttle and digests ------------------------------------------------------------------------


def test_hourly_digests_go_at_the_next_full_hour_and_daily_ones_at_the_digest_hour(settings):
    settings.SAFEGUARD_DAILY_DIGEST_HOUR = 7
    at = datetime(2025, 11, 3, 14, 2, 30, tzinfo=LONDON)
    assert digest_due_at(frequency=DigestFrequency.HOURLY, now=at) == datetime(2025, 11, 3, 15, 0, tzinfo=LONDON)
    assert digest_due_at(frequency=DigestFrequency.HOURLY, now=at.replace(minute=0, second=0)) == datetime(
        2025, 11, 3, 15, 0, tzinfo=LONDON
    )
    assert digest_due_at(frequency=DigestFrequency.DAILY, now=at) == datetime(2025, 11, 4, 7, 0, tzinfo=LONDON)
    assert digest_due_at(frequency=DigestFrequency.DAILY, now=at.replace(hour=6)) == datetime(
        2025, 11, 3, 7, 0, tzinfo=LONDON
    )
    # The clocks change on 26 October 2025: the digest is still at 07:00 local time.
    assert digest_due_at(frequency=DigestFrequency.DAILY, now=datetime(2025, 10, 25, 20, 0, tzinfo=LONDON)) == (
        datetime(2025, 10, 26, 7, 0, tzinfo=LONDON)
    )


@pytest.mark.django_db
def test_the_throttle_allows_one_immediate_mail_per_person_per_rule_in_ten_minutes(cast, smtp):
    rule = rule_for(cast.year9, cast.teacher9)
    other_rule = rule_for(cast.year9, cast.teacher9, min_severity=Severity.SEVERE)
    other_pupil = PersonFactory()
    MembershipFactory(group=cast.year9, person=other_pupil)
    start = datetime(2025, 11, 3, 14, 2, tzinfo=LONDON)

    def send(person, at):
        capture = capture_of(person)
        capture_alerts_send(capture_id=capture.pk, now=at)
        return {d.rule_id: d for d in deliveries(capture=capture)}

    first = send(cast.pupil9, start)
    burst = send(cast.pupil9, start + THROTTLE_WINDOW - timedelta(seconds=1))
    someone_else = send(other_pupil, start + timedelta(minutes=1))
    after_window = send(cast.pupil9, start + THROTTLE_WINDOW + timedelta(seconds=1))

    assert first[rule.pk].mode == AlertDelivery.Mode.IMMEDIATE
    assert first[other_rule.pk].status == DeliveryStatus.DUPLICATE  # one email per capture and address
    throttled = burst[rule.pk]
    assert (throttled.mode, throttled.throttled, throttled.status) == ("digest", True, DeliveryStatus.QUEUED)
    assert throttled.digest_frequency == DigestFrequency.HOURLY
    assert throttled.digest_due_at == datetime(2025, 11, 3, 15, 0, tzinfo=LONDON)
    assert someone_else[rule.pk].mode == AlertDelivery.Mode.IMMEDIATE
    assert after_window[rule.pk].mode == AlertDelivery.Mode.IMMEDIATE
    assert len(smtp.messages) == 3


@pytest.mark.django_db
def test_a_digest_rule_sends_one_mail_listing_its_captures_when_due_and_never_again(cast, smtp):
    rule = rule_for(cast.year9, cast.teacher9, digest=AlertRule.Digest.DAILY, min_severity=Severity.HIGH)
    illegal = KeywordPolicyFactory(category=Category.ILLEGAL_CONTENT, is_illegal_content=True)
    queued_at = datetime(2025, 11, 3, 14, 2, tzinfo=LONDON)
    captures = [
        capture_of(cast.pupil9, keyword=KeywordFactory(text="first word", severity="high")),
        capture_of(cast.pupil9, keyword=KeywordFactory(text="second word", severity="severe")),
        capture_of(cast.pupil9, policy=illegal),
    ]
    for capture in captures:
        assert capture_alerts_send(capture_id=capture.pk, now=queued_at) == 0
    due = datetime(2025, 11, 4, 7, 0, tzinfo=LONDON)

    assert alert_digests_send(now=due - timedelta(seconds=1)) == 0
    assert smtp.messages == []
    assert alert_digests_send(now=due) == 1
    assert alert_digests_send(now=due + timedelta(hours=1)) == 0

    [mail] = smtp.messages
    assert mail.subject == f"[Safeguard] Daily digest: 3 captures ({rule.name})"
    text = mail.text()
    assert "first word" in text and "second word" in text
    assert captures[2].keyword_text not in text and "illegal-content policy" in text
    for capture in captures:
        assert f"/console/captures/{capture.uuid}/" in text and f"/console/captures/{capture.uuid}/" in mail.html()
    assert mail.attachments() == []
    digest = AlertDigest.objects.get()
    assert digest.status == DeliveryStatus.SENT
    assert {d.status for d in deliveries()} == {DeliveryStatus.SENT}
    assert {d.digest_id for d in deliveries()} == {digest.pk}


# --- from the agent API to the mailbox, and when Redis is down -----------------------------------


def post_capture(token: str, *, user: str, keyword: str, severity: str, context: str = "") -> Capture:
    metadata = {
        "id": str(uuid.uuid4()),
        "occurred_at": (timezone.now() - timedelta(seconds=5)).isoformat(),
        "user": user,
        "keyword": keyword,
        "severity": severity,
        "context": context,
        "application": "chrome.exe",
        "window_title": "Search - Google Chrome",
    }
    response = device_api_client(token).post(
        "/api/v1/agent/captures",
        {"metadata": json.dumps(metadata), "screenshot": SimpleUploadedFile("s.png", png_bytes(), "image/png")},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return Capture.objects.get(uuid=metadata["id"])


@pytest.mark.django_db
def test_a_capture_from_an_agent_is_mailed_after_its_commit(cast, smtp, django_capture_on_commit_callbacks):
    KeywordFactory(text="blade", severity="severe")
    rule_for(cast.year9, cast.teacher9)

    with django_capture_on_commit_callbacks(execute=True):
        capture = post_capture(cast.device_token, user=cast.pupil9.username, keyword="blade", severity="severe")

    [mail] = smtp.messages
    assert f"/console/captures/{capture.uuid}/" in mail.text()
    assert CaptureFollowup.objects.get(capture=capture).dispatched_at is not None


@pytest.mark.django_db
def test_with_the_broker_down_the_capture_is_kept_and_its_alert_goes_once_the_broker_is_back(
    cast, smtp, django_capture_on_commit_callbacks
):
    KeywordFactory(text="blade", severity="severe")
    rule_for(cast.year9, cast.teacher9)
    # Nothing listens on port 1: every enqueue fails as it does when Redis is down.
    with sending_to(new_queue_name(), broker_url="redis://127.0.0.1:1/0"):
        with django_capture_on_commit_callbacks(execute=True):
            capture = post_capture(cast.device_token, user=cast.pupil9.username, keyword="blade", severity="severe")
    assert celery_app.conf.task_always_eager  # the broker is "back": tasks run in-process again

    followup = CaptureFollowup.objects.get(capture=capture)
    assert followup.dispatched_at is None
    assert smtp.messages == []
    assert capture_followups_redispatch(now=followup.created_at + timedelta(seconds=30)) == 0  # not yet a minute

    assert capture_followups_redispatch(now=followup.created_at + timedelta(minutes=1)) == 1

    assert len(smtp.messages) == 1
    assert CaptureFollowup.objects.get(capture=capture).dispatched_at is not None
    capture_dispatch_followups(capture)  # dispatched twice by mistake: still one email
    assert len(smtp.messages) == 1


# --- the console page for personal rules ------------------------------------------------------


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_staff_set_alerts_on_their_own_personal_groups_and_receive_them(cast, smtp):
    mine = UserGroupFactory(name="My tutees", owner=cast.teacher9)
    MembershipFactory(group=mine, person=cast.pupil9)
    theirs = UserGroupFactory(name="Someone else's list", owner=cast.teacher10)
    client = client_for(cast.teacher9)

    page = client.get("/console/alerts/").content.decode()
    assert "My tutees" in page and "Someone else&#x27;s list" not in page and "Someone else's list" not in page
    refused = client.post("/console/alerts/", {"name": "Not mine", "group": theirs.pk, "min_severity": "high"})
    assert refused.status_code == 400 and not AlertRule.objects.exists()

    response = client.post(
        "/console/alerts/",
        {"name": "Tutees, severe", "group": mine.pk, "min_severity": "severe", "digest": "immediate"},
    )

    assert response.status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.owner, rule.group, list(rule.recipients.all())) == (cast.teacher9, mine, [cast.teacher9])
    assert AuditEntry.objects.get(action="alert_rule.created").actor == cast.teacher9
    capture_alerts_send(capture_id=capture_of(cast.pupil9).pk)
    assert [m.recipients for m in smtp.messages] == [["teacher9@school.test"]]
    assert "Tutees, severe" in client.get("/console/alerts/").content.decode()


@pytest.mark.django_db
def test_staff_can_delete_their_own_rules_and_not_anyone_elses(cast):
    mine = rule_for(UserGroupFactory(owner=cast.teacher9), cast.teacher9, owner=cast.teacher9)
    theirs = rule_for(UserGroupFactory(owner=cast.teacher10), cast.teacher10, owner=cast.teacher10)
    school = rule_for(cast.year9, cast.teacher9)
    client = client_for(cast.teacher9)

    assert client.post(f"/console/alerts/{theirs.uuid}/delete").status_code == 404
    assert client.post(f"/console/alerts/{school.uuid}/delete").status_code == 404
    assert client.get(f"/console/alerts/{mine.uuid}/delete").status_code == 405
    assert client.post(f"/console/alerts/{mine.uuid}/delete").status_code == 302

    assert set(AlertRule.objects.all()) == {theirs, school}
    assert AuditEntry.objects.get(action="alert_rule.deleted").target_id == str(mine.uuid)


def test_the_alerts_page_needs_a_login(client, db):
    response = client.get("/console/alerts/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# --- a real worker ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_module_worker_env(smtp_server) -> dict[str, str]:
    return smtp_server.worker_env()


@pytest.mark.integration
def test_a_real_worker_mails_a_capture_from_an_agent(module_celery_worker, smtp, cast):
    KeywordFactory(text="blade", severity="severe")
    rule_for(cast.year9, cast.teacher9)

    capture = post_capture(cast.device_token, user=cast.pupil9.username, keyword="blade", severity="severe")

    [mail] = smtp.wait_for(1, log=module_celery_worker.log)
    assert mail.subject == "[Safeguard] Severe capture: Nine Pupil on Y9-PC01"
    assert f"https://safeguard.test/console/captures/{capture.uuid}/" in mail.text()
    assert f'href="https://safeguard.test/console/captures/{capture.uuid}/"' in mail.html()
    [screenshot] = mail.attachments()
    assert screenshot.get_content() == png_bytes()
    assert "capture_alerts_send[" in module_celery_worker.log()


@pytest.mark.integration
def test_a_real_worker_mails_an_illegal_content_capture_without_screenshot_or_context(module_celery_worker, smtp, cast):
    illegal = KeywordPolicyFactory(category=Category.ILLEGAL_CONTENT, is_illegal_content=True)
    KeywordFactory(policy=illegal, text="forbidden term", severity="severe")
    rule_for(cast.year9, cast.teacher9)

    capture = post_capture(
        cast.device_token, user=cast.pupil9.username, keyword="forbidden term", severity="severe", context="ctx words"
    )

    [mail] = smtp.wait_for(1, log=module_celery_worker.log)
    assert mail.attachments() == []
    for part in (mail.subject, mail.text(), mail.html()):
        assert "forbidden term" not in part and "ctx words" not in part and "Search - Google Chrome" not in part
    assert f"/console/captures/{capture.uuid}/" in mail.text()


@pytest.mark.integration
def test_a_task_delivered_twice_to_a_real_worker_mails_once(module_celery_worker, smtp, cast):
    rule_for(cast.year9, cast.teacher9)
    capture = capture_of(cast.pupil9)

    first = tasks.capture_alerts_send.delay(capture.pk)
    second = tasks.capture_alerts_send.delay(capture.pk)
    module_celery_worker.wait_for_task(first.id)
    module_celery_worker.wait_for_task(second.id)

    assert len(smtp.messages) == 1
    assert AlertDelivery.objects.get().status == DeliveryStatus.SENT


@pytest.mark.integration
def test_a_real_worker_throttles_a_burst_and_sends_the_rest_in_the_digest(module_celery_worker, smtp, cast):
    rule = rule_for(cast.year9, cast.teacher9)
    captures = [capture_of(cast.pupil9) for _ in range(3)]

    results = [tasks.capture_alerts_send.delay(capture.pk) for capture in captures]
    for result in results:
        module_celery_worker.wait_for_task(result.id)

    assert len(smtp.messages) == 1
    queued = deliveries(status=DeliveryStatus.QUEUED)
    assert len(queued) == 2 and all(d.throttled for d in queued)
    # Time passes: the next full hour arrives (moved here rather than waited for).
    AlertDelivery.objects.filter(pk__in=[d.pk for d in queued]).update(
        digest_due_at=timezone.now() - timedelta(seconds=1)
    )
    digest_run = tasks.alert_digests_send.delay()
    module_celery_worker.wait_for_task(digest_run.id)
    module_celery_worker.wait_for_task(tasks.alert_digests_send.delay().id)  # a second sweep: nothing more

    immediate, digest = smtp.wait_for(2, log=module_celery_worker.log)
    assert digest.subject == f"[Safeguard] Hourly digest: 2 captures ({rule.name})"
    throttled_uuids = {str(d.capture.uuid) for d in queued}
    assert all(f"/console/captures/{u}/" in digest.text() for u in throttled_uuids)
    assert len(smtp.messages) == 2


@pytest.mark.integration
def test_killed_mid_send_the_redelivered_task_sends_exactly_one_email(
    postgresql_transactional_db, smtp, cast, settings, tmp_path
):
    """The worker dies while the SMTP server holds its DATA; a new worker gets the task back and sends it once."""
    queue = new_queue_name()
    rule_for(cast.year9, cast.teacher9)
    capture = capture_of(cast.pupil9)
    stalling = smtp.stall_next_data()
    client = redis.Redis.from_url(REDIS_URL)
    with sending_to(queue):
        first = start_worker(
            queue=queue, media_root=settings.MEDIA_ROOT, log_path=tmp_path / "first.log", extra_env=smtp.worker_env()
        )
        second = None
        try:
            result = tasks.capture_alerts_send.delay(capture.pk)
            assert stalling.wait(30), f"the worker never reached DATA:\n{first.log()[-3000:]}"
            delivery = AlertDelivery.objects.get()
            assert (delivery.status, delivery.claimed_by) == (DeliveryStatus.PENDING, result.id)

            kill_worker(first)

            deadline = time.monotonic() + 10
            while smtp.dropped == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert smtp.dropped == 1 and smtp.messages == []  # the server never said 250: nothing delivered
            assert f"[{result.id}] succeeded" not in first.log()
            # Redis gives the unacknowledged task to another worker once it is older than that worker's
            # visibility timeout (1 s for the second worker below).
            [(_tag, taken_at)] = client.zrange(f"unacked-{queue}_index", 0, -1, withscores=True)
            while time.time() < taken_at + 1.5:
                time.sleep(0.1)
            second = start_worker(
                queue=queue,
                media_root=settings.MEDIA_ROOT,
                log_path=tmp_path / "second.log",
                extra_env={**smtp.worker_env(), "CELERY_VISIBILITY_TIMEOUT": "1"},
            )
            line = second.wait_for_task(result.id)
            assert " succeeded in " in line, line

            [mail] = smtp.wait_for(1, log=second.log)
            assert mail.recipients == ["teacher9@school.test"]
            assert mail.message["Message-ID"] == f"<alert.{delivery.uuid}@school.test>"
            delivery.refresh_from_db()
            assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 1)
            # Later sweeps and deliveries change nothing.
            module_run = tasks.alert_claims_retry.delay()
            second.wait_for_task(module_run.id)
            again = tasks.capture_alerts_send.delay(capture.pk)
            second.wait_for_task(again.id)
            assert len(smtp.messages) == 1
        finally:
            if second is not None:
                stop_worker(second)
            if first.process.poll() is None:
                kill_worker(first)
            leftovers = client.keys(f"*{queue}*")
            if leftovers:
                client.delete(*leftovers)
            client.close()


# --- the demo ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_demo_rule_emails_the_demo_lead_about_a_severe_capture_anywhere_once(smtp, settings, tmp_path):
    from safeguard.core.demo import DEMO_LEAD_EMAIL, seed_demo
    from safeguard.groups.models import Person

    seed_demo()
    pupil = Person.objects.get(display_name="Amelia Jones")  # Year 9
    watched = Person.objects.get(display_name="Poppy Walker")  # Year 9 and the Watch Group
    ungrouped = PersonFactory()  # in no group: no member of staff may see them, so nobody is emailed

    for person in (pupil, watched, ungrouped):
        capture = CaptureFactory(person=person, keyword=KeywordFactory(severity=Severity.SEVERE))
        capture_alerts_send(capture_id=capture.pk)
    capture_alerts_send(capture_id=CaptureFactory(person=pupil, keyword=KeywordFactory(severity="medium")).pk)

    assert DEMO_LEAD_EMAIL == "lead@demo.school"
    # Year 9's own demo rule names the lead too: one email per capture all the same.
    assert [m.recipients for m in smtp.messages] == [["lead@demo.school"], ["lead@demo.school"]]
    rule = AlertRule.objects.get(group=None)
    assert {d.capture.person for d in deliveries(rule=rule)} == {pupil, watched}
