"""Email alerts about captures: which rules match, who may receive them, throttle, digests, and sending once.

On each new capture (policies.tasks.capture_alerts_send, enqueued by
captures.services.capture_dispatch_followups after the commit):

1. **Rules.** Every enabled `AlertRule` whose group holds the capture's person (a user group, or
   one above the person's group: access to "Year 9" covers "Form 9A") or the capture's device (a
   device group), or that has no group (the whole school); whose policies are empty (every policy)
   or include the capture's policy; and whose minimum severity the capture reaches.
2. **Recipients.** The rule's staff recipients who may see the capture by the access rule
   (safeguard.core.access: a rule never mails anyone about a pupil they could not open in the
   console), active and with an address; plus the rule's extra addresses, which the admin who
   typed them vouches for. One mail per address and rule, lower-cased.
3. **Throttle and digest.** A rule with an hourly or daily digest queues the capture for its next
   digest. An immediate rule sends at once, except that each address gets at most one immediate
   mail per person per rule in THROTTLE_WINDOW: later captures of that person wait for the next
   hourly digest. The decision is taken with the rule's row locked, so two captures arriving
   together cannot both pass the throttle.
4. **Exactly once.** Each (capture, rule, address) is one `AlertDelivery` row, unique, written and
   committed *before* the mail goes out: an immediate one as PENDING (claimed by the task), then
   SENT. A redelivered task finds the row and sends nothing, unless the row is still PENDING under
   its own task id: a message is redelivered only after the worker that ran it died (acks_late,
   reject_on_worker_lost), so that earlier attempt cannot still be sending. A PENDING row of any
   other claimant is left alone until CLAIM_STALE_AFTER has passed (a worker that died mid-send and
   whose message Redis has not yet handed back); then the retry sweep claims it again. An SMTP
   failure releases the claim and the task retries with backoff; after MAX_ATTEMPTS it is FAILED.

   After the "250" the SENT mark is written at once; a database that is restarting just then is
   waited for (MARK_SENT_WAITS, about half a minute) rather than failing the task, whose retry
   would send again.

   What is left is at-least-once, in one window: between the SMTP server's "250" and the commit
   of the SENT mark. A worker killed there (or a database down for longer than the wait), or a
   server that stored a message but whose "250" never reached the worker, means the email goes
   twice. Every email carries a Message-ID made from its delivery's UUID, so mail systems that
   drop duplicates (Gmail, Exchange) show it once. Killed anywhere before the "250", the server
   has not stored the email, and the redelivered task sends it once (tests/faults).

Illegal-content captures: their emails name the person, time and computer and give the link,
and nothing else: no screenshot, no keyword, no typed text, no window title or URL.
"""

import logging
import mimetypes
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import TypeVar
from urllib.parse import urljoin

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from safeguard.captures.models import Capture
from safeguard.core import access
from safeguard.groups.models import GroupKind, Membership, MonitoringGroup
from safeguard.groups.selectors import group_ancestor_chains
from safeguard.logs.services import audit_record
from safeguard.policies.models import (
    AlertDelivery,
    AlertDigest,
    AlertRule,
    CaptureFollowup,
    DeliveryStatus,
    DigestFrequency,
    KeywordPolicy,
    Severity,
)

logger = logging.getLogger(__name__)

THROTTLE_WINDOW = timedelta(minutes=10)
# A PENDING claim this old belongs to a worker that died: another may send it. Longer than a send
# can take (EMAIL_TIMEOUT per SMTP step), so a slow but living worker is never overtaken.
CLAIM_STALE_AFTER = timedelta(minutes=15)
MAX_ATTEMPTS = 20
SUBJECT_PREFIX = "[Safeguard]"


# --- who and what ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    address: str  # lower-cased
    user: object | None = None  # the staff account, or None for an extra address


def new_claim_token() -> str:
    return uuid.uuid4().hex


def severities_reached_by(severity: str) -> list[str]:
    """The minimum severities a capture of `severity` reaches (itself and every lower one)."""
    rank = Severity.rank(severity)
    return [value for value in Severity.values if Severity.rank(value) <= rank]


def capture_group_ids(*, capture: Capture) -> set[int]:
    """Every group the capture is "in": its person's user groups, its device's device groups, and all above them."""
    direct = set(
        Membership.objects.filter(
            Q(person_id=capture.person_id, group__kind=GroupKind.USER)
            | Q(device_id=capture.device_id, group__kind=GroupKind.DEVICE)
        ).values_list("group_id", flat=True)
    )
    return {group_id for chain in group_ancestor_chains(group_ids=direct).values() for group_id in chain}


def alert_rules_for_capture(*, capture: Capture) -> list[AlertRule]:
    """The enabled rules the capture matches (group, policies, minimum severity), oldest rule first."""
    through = AlertRule.policies.through
    has_policies = Exists(through.objects.filter(alertrule_id=OuterRef("pk")))
    has_this_policy = Exists(through.objects.filter(alertrule_id=OuterRef("pk"), keywordpolicy_id=capture.policy_id))
    rules = AlertRule.objects.filter(
        Q(group__isnull=True) | Q(group_id__in=capture_group_ids(capture=capture)),
        enabled=True,
        min_severity__in=severities_reached_by(capture.severity),
    )
    policy_match = ~has_policies | has_this_policy if capture.policy_id else ~has_policies
    return list(rules.filter(policy_match).order_by("pk"))


def parse_addresses(text: str) -> list[str]:
    """The valid addresses in `text` (one per line; commas and semicolons also separate), lower-cased, once each."""
    result: list[str] = []
    for raw in (text or "").replace(",", "\n").replace(";", "\n").splitlines():
        address = parseaddr(raw.strip())[1].strip().lower()
        if not address:
            continue
        try:
            validate_email(address)
        except ValidationError:
            logger.warning("Ignoring an invalid alert address: %r", raw.strip())
            continue
        if address not in result:
            result.append(address)
    return result


def capture_viewer_ids(*, capture: Capture) -> set[int]:
    """The staff accounts who may open the capture in the console (the access rule, read backwards)."""
    return set(
        access.staff_with_right_over(person=capture.person, device=capture.device, right="view_captures").values_list(
            "pk", flat=True
        )
    )


def alert_rule_recipients(*, rule: AlertRule, capture: Capture, viewer_ids: set[int] | None = None) -> list[Recipient]:
    """Who gets the rule's mail about `capture`: staff recipients who may see it, then the extra addresses."""
    if viewer_ids is None:
        viewer_ids = capture_viewer_ids(capture=capture)
    recipients: dict[str, Recipient] = {}
    for user in rule.recipients.filter(is_active=True).exclude(email="").order_by("pk"):
        if user.pk not in viewer_ids:
            logger.info("Alert rule %s: %s may not see capture %s; not emailed", rule.pk, user.pk, capture.pk)
            continue
        address = user.email.strip().lower()
        recipients.setdefault(address, Recipient(address=address, user=user))
    for address in parse_addresses(rule.extra_addresses):
        recipients.setdefault(address, Recipient(address=address))
    return list(recipients.values())


# --- digest times ---------------------------------------------------------------------------------


def digest_due_at(*, frequency: str, now: datetime) -> datetime:
    """When a capture queued at `now` goes out: the next full hour, or the next daily digest hour (local time)."""
    local = timezone.localtime(now)
    if frequency == DigestFrequency.HOURLY:
        return local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    hour = settings.SAFEGUARD_DAILY_DIGEST_HOUR
    day = local.date()
    candidate = timezone.make_aware(datetime.combine(day, datetime.min.time().replace(hour=hour)))
    if candidate <= local:
        candidate = timezone.make_aware(
            datetime.combine(day + timedelta(days=1), datetime.min.time().replace(hour=hour))
        )
    return candidate


def throttle_applies(*, rule: AlertRule, person_id: int, address: str, now: datetime) -> bool:
    """Whether `address` already had an immediate mail about this person from this rule within THROTTLE_WINDOW."""
    return AlertDelivery.objects.filter(
        rule=rule,
        person_id=person_id,
        address=address,
        mode=AlertDelivery.Mode.IMMEDIATE,
        decided_at__gt=now - THROTTLE_WINDOW,
    ).exists()


# --- claims ---------------------------------------------------------------------------------------


def claim_again(model, row, *, token: str, claimant: str, now: datetime) -> bool:
    """Take over a PENDING row whose earlier attempt is over; True if this caller now holds the claim.

    Over means: released after a failure (no claimant), claimed by this very task (a redelivered
    message: the worker that ran it first is gone), or claimed longer ago than CLAIM_STALE_AFTER.
    The conditional update is the lock: of two callers, one changes the row, the other finds it changed.
    """
    if row.status != DeliveryStatus.PENDING:
        return False
    ours = bool(claimant) and row.claimed_by == claimant
    stale = row.claimed_at is None or row.claimed_at <= now - CLAIM_STALE_AFTER
    if not (ours or stale or row.claimed_by == ""):
        return False
    taken = model.objects.filter(
        pk=row.pk, status=DeliveryStatus.PENDING, claimed_by=row.claimed_by, claimed_at=row.claimed_at
    ).update(claimed_by=token, claimed_at=now)
    if taken:
        row.claimed_by, row.claimed_at = token, now
    return bool(taken)


T = TypeVar("T")

# Waits (seconds) between tries of the SENT mark while the database is unreachable: about half a
# minute in all, as long as a PostgreSQL restart takes.
MARK_SENT_WAITS = (1, 2, 4, 8, 8)


def after_send_durably(write: Callable[[], T]) -> T:
    """Run the write that records a sent email, waiting for a database that is restarting.

    The SMTP server has accepted the email: if this write failed and the task retried, the retry
    would send it again. So a lost connection is retried here, on a new connection, for about
    half a minute first. Inside an atomic block (tests, eager tasks) a new connection would break
    the transaction, so there it is one try.
    """
    waits = () if connection.in_atomic_block else MARK_SENT_WAITS
    for wait in waits:
        try:
            return write()
        except (OperationalError, InterfaceError) as error:
            logger.warning("Recording a sent email failed (%s); trying again in %s s", error, wait)
            connection.close()  # the next query opens a new connection
            time.sleep(wait)
    return write()


def claim_mark_sent(model, row, *, token: str, extra: dict | None = None) -> bool:
    return after_send_durably(
        lambda: bool(
            model.objects.filter(pk=row.pk, status=DeliveryStatus.PENDING, claimed_by=token).update(
                status=DeliveryStatus.SENT, sent_at=timezone.now(), attempts=F("attempts") + 1, **(extra or {})
            )
        )
    )


def claim_release(model, row, *, token: str) -> None:
    """After a failed send: let a retry claim the row again, or give up after MAX_ATTEMPTS."""
    status = DeliveryStatus.FAILED if row.attempts + 1 >= MAX_ATTEMPTS else DeliveryStatus.PENDING
    model.objects.filter(pk=row.pk, status=DeliveryStatus.PENDING, claimed_by=token).update(
        claimed_by="", attempts=F("attempts") + 1, status=status
    )
    if status == DeliveryStatus.FAILED:
        logger.error("Gave up sending %s %s after %s attempts", model.__name__, row.pk, MAX_ATTEMPTS)


# --- the emails -----------------------------------------------------------------------------------


def console_url(path: str) -> str:
    """An absolute console address for emails, from SAFEGUARD_CONSOLE_URL (its scheme and host)."""
    return urljoin(settings.SAFEGUARD_CONSOLE_URL, path)


def capture_console_url(capture: Capture) -> str:
    return console_url(reverse("console:capture", args=[capture.uuid]))


def _message_domain() -> str:
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    return address.rsplit("@", 1)[-1] if "@" in address else "safeguard.invalid"


def message_id(kind: str, key: uuid.UUID | str) -> str:
    """A Message-ID fixed by what the mail is, so a resend of the same mail is recognisably the same."""
    return f"<{kind}.{key}@{_message_domain()}>"


def is_illegal_content(capture: Capture) -> bool:
    return bool(capture.policy_id and capture.policy.is_illegal_content)


def capture_facts(capture: Capture) -> dict:
    """What an email says about a capture. For illegal content: who, when, where and the link only."""
    person = capture.person
    illegal = is_illegal_content(capture)
    facts = {
        "illegal": illegal,
        "uuid": str(capture.uuid),
        "person": person.display_name or person.username,
        "username": person.username,
        "device": capture.device.hostname,
        "severity": capture.get_severity_display(),
        "policy": capture.policy.name if capture.policy_id else "",
        "occurred_at": timezone.localtime(capture.occurred_at),
        "link": capture_console_url(capture),
    }
    if not illegal:
        facts.update(
            {
                "keyword": capture.keyword_text,
                "category": capture.policy.get_category_display() if capture.policy_id else "",
                "application": capture.application,
                "window_title": capture.window_title,
                "url": capture.url,
                "context": capture.context,
            }
        )
    return facts


def capture_subject(capture: Capture, *, prefix: str = "") -> str:
    facts = capture_facts(capture)
    lead = f"{prefix} " if prefix else ""
    if facts["illegal"]:
        return f"{SUBJECT_PREFIX} {lead}{facts['severity']} capture to review (illegal-content policy)"
    # The names come from the agent: a line break in a hostname would make Django refuse the whole
    # email (BadHeaderError), so the alert would never go. Any run of whitespace becomes one space.
    subject = f"{SUBJECT_PREFIX} {lead}{facts['severity']} capture: {facts['person']} on {facts['device']}"
    return " ".join(subject.split())


def _attach_screenshot(message: EmailMultiAlternatives, capture: Capture) -> bool:
    """Attach the screenshot unless it is illegal content, missing or too big to mail; True if attached."""
    if is_illegal_content(capture) or not capture.screenshot:
        return False
    try:
        size = capture.screenshot.size
        if size > settings.SAFEGUARD_ALERT_ATTACHMENT_MAX_BYTES:
            return False
        with capture.screenshot.open("rb") as stored:
            content = stored.read()
    except (FileNotFoundError, OSError):
        logger.warning("Capture %s: the screenshot could not be read for its alert", capture.pk)
        return False
    extension = capture.screenshot.name.rsplit(".", 1)[-1].lower() if "." in capture.screenshot.name else "png"
    mimetype = mimetypes.types_map.get(f".{extension}", "application/octet-stream")
    message.attach(f"capture-{str(capture.uuid)[:8]}.{extension}", content, mimetype)
    return True


def capture_email(
    *, capture: Capture, to: str, kind: str, key: uuid.UUID | str, subject_prefix: str = "", intro: str = ""
) -> EmailMultiAlternatives:
    """The email about one capture (alert or escalation): plain text and HTML, the screenshot attached when allowed."""
    message = EmailMultiAlternatives(
        subject=capture_subject(capture, prefix=subject_prefix),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={"Message-ID": message_id(kind, key), "Auto-Submitted": "auto-generated"},
    )
    context = {
        "capture": capture_facts(capture),
        "intro": intro,
        "screenshot_attached": _attach_screenshot(message, capture),
    }
    message.body = render_to_string("emails/capture_alert.txt", context)
    message.attach_alternative(render_to_string("emails/capture_alert.html", context), "text/html")
    return message


def _capture_for_email(capture_id: int) -> Capture | None:
    return Capture.objects.select_related("person", "device", "policy").filter(pk=capture_id).first()


# --- a new capture ------------------------------------------------------------------------------


def _mailed_under_another_rule(*, capture: Capture, rule: AlertRule, address: str) -> bool:
    return (
        AlertDelivery.objects.filter(capture=capture, address=address, mode=AlertDelivery.Mode.IMMEDIATE)
        .exclude(rule=rule)
        .exclude(status=DeliveryStatus.DUPLICATE)
        .exists()
    )


def _delivery_decide(
    *, capture: Capture, rule: AlertRule, recipient: Recipient, now: datetime, token: str, claimant: str
) -> AlertDelivery | None:
    """The capture's delivery for (rule, address), decided once; returned if this caller must send it now."""
    existing = AlertDelivery.objects.filter(capture=capture, rule=rule, address=recipient.address).first()
    if existing is None:
        try:
            with transaction.atomic():
                # One decision at a time per rule, so two captures of one person cannot both pass the throttle.
                AlertRule.objects.select_for_update().filter(pk=rule.pk).values_list("pk", flat=True).first()
                delivery = AlertDelivery(
                    capture=capture,
                    rule=rule,
                    person_id=capture.person_id,
                    address=recipient.address,
                    recipient=recipient.user,
                    decided_at=now,
                )
                if rule.digest != AlertRule.Digest.IMMEDIATE:
                    frequency = rule.digest
                elif throttle_applies(rule=rule, person_id=capture.person_id, address=recipient.address, now=now):
                    frequency = DigestFrequency.HOURLY
                    delivery.throttled = True
                else:
                    frequency = ""
                if not frequency and _mailed_under_another_rule(capture=capture, rule=rule, address=recipient.address):
                    # Two immediate rules naming one address (the school's and a personal one, or
                    # a year group's and the whole school's): one email about the capture is enough.
                    delivery.mode = AlertDelivery.Mode.IMMEDIATE
                    delivery.status = DeliveryStatus.DUPLICATE
                elif frequency:
                    delivery.mode = AlertDelivery.Mode.DIGEST
                    delivery.status = DeliveryStatus.QUEUED
                    delivery.digest_frequency = frequency
                    delivery.digest_due_at = digest_due_at(frequency=frequency, now=now)
                else:
                    delivery.mode = AlertDelivery.Mode.IMMEDIATE
                    delivery.status = DeliveryStatus.PENDING
                    delivery.claimed_at = now
                    delivery.claimed_by = token
                delivery.save(force_insert=True)
        except IntegrityError:  # decided meanwhile by another run: look again
            existing = AlertDelivery.objects.filter(capture=capture, rule=rule, address=recipient.address).first()
            if existing is None:
                raise
        else:
            return delivery if delivery.status == DeliveryStatus.PENDING else None
    return existing if claim_again(AlertDelivery, existing, token=token, claimant=claimant, now=now) else None


def _delivery_send(delivery: AlertDelivery, capture: Capture, *, token: str) -> bool:
    message = capture_email(capture=capture, to=delivery.address, kind="alert", key=delivery.uuid)
    try:
        message.send()
    except Exception:
        claim_release(AlertDelivery, delivery, token=token)
        raise
    return claim_mark_sent(AlertDelivery, delivery, token=token)


def capture_alerts_send(*, capture_id: int, claimant: str = "", now: datetime | None = None) -> int:
    """Decide and send the alerts of one capture; returns how many emails this call sent.

    `claimant` is the running task's id (see the module docstring); `now` is for tests. Safe to
    call any number of times: each (rule, address) is decided once and mailed once. When an email
    fails, the others are still sent and the first error is raised afterwards (the task retries).
    """
    now = now or timezone.now()
    capture = _capture_for_email(capture_id)
    if capture is None:
        return 0
    rules = alert_rules_for_capture(capture=capture)
    if not rules:
        _alerts_decided(capture_id=capture_id, now=now)
        return 0
    viewer_ids = capture_viewer_ids(capture=capture)
    token = claimant or new_claim_token()
    to_send: list[AlertDelivery] = []
    for rule in rules:
        for recipient in alert_rule_recipients(rule=rule, capture=capture, viewer_ids=viewer_ids):
            delivery = _delivery_decide(
                capture=capture, rule=rule, recipient=recipient, now=now, token=token, claimant=claimant
            )
            if delivery is not None:
                to_send.append(delivery)
    # Every email is a committed row now (claimed, queued for a digest, or a duplicate): whatever
    # happens to this task from here, the claims sweep finishes them. The follow-up sweep need not.
    _alerts_decided(capture_id=capture_id, now=now)
    return _send_all(to_send, lambda delivery: _delivery_send(delivery, capture, token=token))


def _alerts_decided(*, capture_id: int, now: datetime) -> None:
    CaptureFollowup.objects.filter(capture_id=capture_id, alerts_decided_at__isnull=True).update(alerts_decided_at=now)


def _send_all(rows: Iterable, send) -> int:
    sent = 0
    first_error: Exception | None = None
    for row in rows:
        try:
            sent += int(send(row))
        except Exception as error:
            logger.warning("Sending %s %s failed: %s", type(row).__name__, row.pk, error)
            first_error = first_error or error
    if first_error is not None:
        raise first_error
    return sent


# --- digests ------------------------------------------------------------------------------------


def digest_email(*, digest: AlertDigest, deliveries: list[AlertDelivery]) -> EmailMultiAlternatives:
    captures = [capture_facts(delivery.capture) for delivery in deliveries]
    frequencies = {delivery.digest_frequency for delivery in deliveries}
    label = "Daily" if frequencies == {DigestFrequency.DAILY} else "Hourly"
    context = {
        "rule": digest.rule.name,
        "captures": captures,
        "label": label,
        "throttled": any(delivery.throttled for delivery in deliveries),
        "console": console_url(reverse("console:captures")),
    }
    count = len(captures)
    message = EmailMultiAlternatives(
        subject=f"{SUBJECT_PREFIX} {label} digest: {count} capture{'s' if count != 1 else ''} ({digest.rule.name})",
        body=render_to_string("emails/capture_digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[digest.address],
        headers={"Message-ID": message_id("digest", digest.uuid), "Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_to_string("emails/capture_digest.html", context), "text/html")
    return message


def _digest_deliveries(digest: AlertDigest) -> list[AlertDelivery]:
    return list(
        digest.deliveries.select_related("capture__person", "capture__device", "capture__policy").order_by(
            "capture__occurred_at", "pk"
        )
    )


def _digest_send(digest: AlertDigest, *, token: str) -> bool:
    deliveries = _digest_deliveries(digest)
    if deliveries:
        try:
            digest_email(digest=digest, deliveries=deliveries).send()
        except Exception:
            claim_release(AlertDigest, digest, token=token)
            raise

    def mark() -> bool:
        with transaction.atomic():
            marked = claim_mark_sent(AlertDigest, digest, token=token)
            if marked:
                AlertDelivery.objects.filter(digest=digest, status=DeliveryStatus.IN_DIGEST).update(
                    status=DeliveryStatus.SENT, sent_at=timezone.now()
                )
        return marked

    return after_send_durably(mark) and bool(deliveries)


def alert_digests_send(*, now: datetime | None = None, claimant: str = "") -> int:
    """Send every digest that is due: one email per rule and address listing its queued captures.

    The claim is the conditional move of the queued deliveries into a new AlertDigest (QUEUED ->
    IN_DIGEST, in one transaction): a concurrent sweep moves none of the same rows, so each capture
    is listed in exactly one digest. Returns how many digests this call sent.
    """
    now = now or timezone.now()
    token = claimant or new_claim_token()
    # A redelivered task (its worker died mid-send) finishes the digests it had claimed, at once
    # rather than after CLAIM_STALE_AFTER: the worker that claimed them is gone.
    resumed = (
        list(AlertDigest.objects.filter(status=DeliveryStatus.PENDING, claimed_by=claimant).order_by("pk"))
        if claimant
        else []
    )
    due = (
        AlertDelivery.objects.filter(status=DeliveryStatus.QUEUED, digest_due_at__lte=now)
        .order_by()
        .values_list("rule_id", "address")
        .distinct()
    )
    digests: list[AlertDigest] = []
    for rule_id, address in list(due):
        with transaction.atomic():
            first = (
                AlertDelivery.objects.filter(
                    rule_id=rule_id, address=address, status=DeliveryStatus.QUEUED, digest_due_at__lte=now
                )
                .order_by("pk")
                .first()
            )
            if first is None:
                continue
            digest = AlertDigest.objects.create(
                rule_id=rule_id,
                address=address,
                recipient_id=first.recipient_id,
                status=DeliveryStatus.PENDING,
                claimed_at=now,
                claimed_by=token,
            )
            moved = AlertDelivery.objects.filter(
                rule_id=rule_id, address=address, status=DeliveryStatus.QUEUED, digest_due_at__lte=now
            ).update(status=DeliveryStatus.IN_DIGEST, digest=digest)
            if not moved:
                digest.delete()
                continue
        digests.append(digest)
    digests = resumed + digests
    for digest in digests:
        digest.rule = AlertRule.objects.get(pk=digest.rule_id)
    return _send_all(digests, lambda digest: _digest_send(digest, token=token))


# --- the retry sweep ----------------------------------------------------------------------------


def alert_claims_retry(*, now: datetime | None = None) -> int:
    """Send again what a dead worker left PENDING (claimed over CLAIM_STALE_AFTER ago); returns emails sent."""
    now = now or timezone.now()
    token = new_claim_token()
    stale = Q(claimed_at__lte=now - CLAIM_STALE_AFTER) | Q(claimed_at__isnull=True)
    sent = 0
    deliveries = AlertDelivery.objects.filter(stale, status=DeliveryStatus.PENDING).order_by("pk")[:200]
    claimed = [d for d in deliveries if claim_again(AlertDelivery, d, token=token, claimant="", now=now)]
    errors: list[Exception] = []
    for delivery in claimed:
        capture = _capture_for_email(delivery.capture_id)
        try:
            sent += int(_delivery_send(delivery, capture, token=token))
        except Exception as error:
            errors.append(error)
    digests = AlertDigest.objects.filter(stale, status=DeliveryStatus.PENDING).select_related("rule").order_by("pk")
    for digest in list(digests[:50]):
        if claim_again(AlertDigest, digest, token=token, claimant="", now=now):
            try:
                sent += int(_digest_send(digest, token=token))
            except Exception as error:
                errors.append(error)
    if errors:
        raise errors[0]
    return sent


# --- personal rules, set by staff in the console ------------------------------------------------


def alert_rule_create_personal(
    *,
    owner,
    name: str,
    group: MonitoringGroup,
    policies: Iterable[KeywordPolicy] = (),
    min_severity: str = Severity.HIGH,
    digest: str = AlertRule.Digest.IMMEDIATE,
) -> AlertRule:
    """A rule on one of `owner`'s personal groups that emails `owner` only. Audited "alert_rule.created"."""
    if group.owner_id != owner.pk:
        raise ValidationError({"group": "Choose one of your own groups."})
    if not (owner.email or "").strip():
        raise ValidationError("Your account has no email address: ask an administrator to add one.")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the rule a name."})
    if min_severity not in Severity.values:
        raise ValidationError({"min_severity": "Choose a valid severity."})
    if digest not in AlertRule.Digest.values:
        raise ValidationError({"digest": "Choose how often to be emailed."})
    with transaction.atomic():
        rule = AlertRule.objects.create(
            name=name[:255], group=group, min_severity=min_severity, digest=digest, owner=owner, enabled=True
        )
        rule.policies.set(list(policies))
        rule.recipients.set([owner])
        audit_record(
            action="alert_rule.created",
            target=rule,
            actor=owner,
            summary=f"Alert rule '{rule.name}' on {group.name}",
            after={"group": str(group.uuid), "min_severity": min_severity, "digest": digest},
        )
    return rule


def alert_rule_delete_personal(*, owner, rule: AlertRule) -> None:
    """Delete one of `owner`'s own rules. Audited "alert_rule.deleted"."""
    if rule.owner_id != owner.pk:
        raise ValidationError("This is not your rule.")
    with transaction.atomic():
        audit_record(action="alert_rule.deleted", target=rule, actor=owner, summary=f"Alert rule '{rule.name}' deleted")
        rule.delete()


def alert_rules_owned_by(*, user):
    return AlertRule.objects.filter(owner=user).select_related("group").prefetch_related("policies").order_by("name")


def alert_rules_emailing(*, user):
    """The school's rules (set by an admin) that email `user`."""
    return (
        AlertRule.objects.filter(recipients=user, owner__isnull=True, enabled=True)
        .select_related("group")
        .order_by("name")
    )


def personal_groups_of(*, user):
    return MonitoringGroup.objects.filter(owner=user).order_by("name")
