"""Action rules ("actions to perform"): after N captures of at least severity S, act on the person.

An `ActionRule` on a group watches the people of that group and of its subgroups. After each
new capture (captures.tasks.action_rules_evaluate, enqueued by capture_dispatch_followups once
the capture is committed) the person's rules are evaluated: when the person has at least
`threshold` captures of severity `min_severity` or above (within the last `within_days` days,
when set, counted back from the evaluation), the rule fires:

- "move" puts the person into `move_to_group` through groups.services.person_move_to_group:
  they JOIN the group (e.g. the Watch Group) and keep their other memberships, so the form
  tutor and head of year who see them through their year group still do;
- "notify" emails the staff with access to the rule's group (captures.tasks.action_rule_notify).

Exactly once per (rule, person), also when two captures of one person arrive at the same instant
or a task is redelivered: each evaluation locks the person's row (SELECT ... FOR UPDATE), so the
evaluations of one person run one after the other, and the claim is a unique ActionRuleFiring
(rule, person) row inserted in the same transaction as the move and its audit rows. The second
evaluation finds the row and does nothing; should anything get past the lock, the unique
constraint refuses the second row. On SQLite (the embedded mode) IMMEDIATE transactions take the
write lock at BEGIN, which serialises the evaluations the same way. Deleting the firing row (in
the admin) re-arms the rule for that person.

A capture below a rule's severity cannot change that rule's count, so it does not evaluate it.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from safeguard.captures.models import ActionRuleFiring, Capture
from safeguard.groups.models import GroupKind, Membership, Person, StaffAccess
from safeguard.groups.selectors import group_ancestor_chains
from safeguard.groups.services import person_move_to_group
from safeguard.logs.services import audit_record
from safeguard.policies.models import ActionRule, Severity

logger = logging.getLogger(__name__)

# Who the audit log names for what a rule did: no staff member acted.
SYSTEM_ACTOR = "Safeguard (action rule)"


def action_rules_for_person(*, person: Person) -> QuerySet[ActionRule]:
    """The enabled rules watching `person`: on one of their user groups or on a group above one."""
    direct = set(
        Membership.objects.filter(person=person, group__kind=GroupKind.USER).values_list("group_id", flat=True)
    )
    covering = {group_id for chain in group_ancestor_chains(group_ids=direct).values() for group_id in chain}
    return (
        ActionRule.objects.filter(enabled=True, group_id__in=covering)
        .select_related("group", "move_to_group")
        .order_by("pk")
    )


def action_rule_window_start(*, rule: ActionRule, now: datetime) -> datetime | None:
    """The earliest capture time the rule counts (None: all time)."""
    return now - timedelta(days=rule.within_days) if rule.within_days else None


def action_rule_count(*, rule: ActionRule, person: Person, now: datetime | None = None) -> int:
    """How many of `person`'s captures count towards `rule`: severity at least S, within D days when set."""
    captures = Capture.objects.filter(person=person, severity__in=Severity.at_least(rule.min_severity))
    start = action_rule_window_start(rule=rule, now=now or timezone.now())
    if start is not None:
        captures = captures.filter(occurred_at__gte=start)
    return captures.count()


def _describe(rule: ActionRule, count: int) -> str:
    window = f" in {rule.within_days} day{'s' if rule.within_days != 1 else ''}" if rule.within_days else ""
    severity = Severity(rule.min_severity).label.lower()
    return f"action rule '{rule.name}': {count} captures of {severity} severity or above{window}"


def action_rule_apply(
    *, rule: ActionRule, person: Person, capture: Capture | None = None, now: datetime | None = None
) -> ActionRuleFiring | None:
    """Fire `rule` for `person` if they reached its threshold and it never fired for them; else None.

    In one transaction: lock the person, check no firing exists, count, claim the firing row,
    move the person (audited "person.moved_to_group" by the system, naming the rule), and audit
    "action_rule.fired". The staff notice is enqueued after the commit.
    """
    now = now or timezone.now()
    with transaction.atomic():
        list(Person.objects.select_for_update().filter(pk=person.pk).values_list("pk", flat=True))
        if ActionRuleFiring.objects.filter(rule=rule, person=person).exists():
            return None
        count = action_rule_count(rule=rule, person=person, now=now)
        if count < rule.threshold:
            return None
        target = rule.move_to_group
        if target is not None and target.kind != GroupKind.USER:
            logger.warning("Action rule %s moves people into a device group (%s): not moving", rule.pk, target)
            target = None
        firing, created = ActionRuleFiring.objects.get_or_create(
            rule=rule,
            person=person,
            defaults={"capture": capture, "capture_count": count, "moved_to_group": target},
        )
        if not created:  # the unique row was claimed by someone else meanwhile
            return None
        description = _describe(rule, count)
        moved = False
        if target is not None:
            moved = person_move_to_group(
                person=person,
                group=target,
                actor_name=SYSTEM_ACTOR,
                reason=description,
                details={"rule": str(rule.uuid), "rule_name": rule.name, "capture_count": count},
            )
        audit_record(
            action="action_rule.fired",
            target=person,
            actor_name=SYSTEM_ACTOR,
            summary=f"{person} reached the threshold of {description}"
            + (f"; moved to {target}" if moved else f"; already in {target}" if target is not None else ""),
            after={
                "rule": str(rule.uuid),
                "rule_name": rule.name,
                "capture_count": count,
                "threshold": rule.threshold,
                "capture": str(capture.uuid) if capture is not None else None,
                "moved_to_group": str(target.uuid) if moved else None,
                "notify_staff": rule.notify_staff,
            },
        )
        if rule.notify_staff:
            transaction.on_commit(lambda: _enqueue_notice(firing.pk), robust=True)
    return firing


def _enqueue_notice(firing_id: int) -> None:
    from safeguard.captures.tasks import action_rule_notify

    action_rule_notify.delay(firing_id)


def action_rules_evaluate(*, capture_id: int, now: datetime | None = None) -> list[ActionRuleFiring]:
    """Evaluate the rules watching the capture's person; returns the firings this call made."""
    capture = Capture.objects.select_related("person").filter(pk=capture_id).first()
    if capture is None:  # deleted meanwhile (retention): nothing to count for
        return []
    rank = Severity.rank(capture.severity)
    fired = []
    for rule in action_rules_for_person(person=capture.person):
        if Severity.rank(rule.min_severity) > rank:
            continue
        firing = action_rule_apply(rule=rule, person=capture.person, capture=capture, now=now)
        if firing is not None:
            fired.append(firing)
    return fired


def action_rule_staff(*, rule: ActionRule) -> QuerySet:
    """The staff with access to the rule's group (a grant on the group or on one above it), with an email."""
    chain = group_ancestor_chains(group_ids={rule.group_id}).get(rule.group_id, [])
    granted = StaffAccess.objects.filter(group_id__in=chain, can_view_captures=True).values("user_id")
    return get_user_model().objects.filter(pk__in=granted, is_active=True).exclude(email="").order_by("username")


def action_rule_notify(*, firing_id: int) -> int:
    """Email the rule's staff that the person reached its threshold; returns how many were emailed.

    Sent once: the firing's `notified_at` is claimed with a conditional update before sending and
    released again if the mail cannot be sent (the task then retries). All recipients share one
    message, so it goes out whole or not at all. The email names the person, the rule and the
    count, and links to the console; it holds no capture text or screenshot.
    """
    firing = (
        ActionRuleFiring.objects.select_related("rule__group", "person", "moved_to_group").filter(pk=firing_id).first()
    )
    if firing is None:
        return 0
    recipients = [user.email for user in action_rule_staff(rule=firing.rule)]
    if not recipients:
        logger.info(
            "Action rule %s fired for person %s: no staff with an email to notify", firing.rule_id, firing.person_id
        )
        return 0
    claimed = ActionRuleFiring.objects.filter(pk=firing.pk, notified_at__isnull=True).update(notified_at=timezone.now())
    if not claimed:
        return 0
    context = {
        "firing": firing,
        "rule": firing.rule,
        "person": firing.person,
        "severity": Severity(firing.rule.min_severity).label.lower(),
        "captures_url": settings.SAFEGUARD_CONSOLE_URL.rstrip("/") + f"/captures/?person={firing.person.uuid}",
    }
    subject = f"Safeguard: {firing.person} reached the threshold of '{firing.rule.name}'"
    body = render_to_string("policies/action_rule_email.txt", context)
    try:
        EmailMessage(subject=subject[:200], body=body, to=recipients).send()
    except BaseException:
        ActionRuleFiring.objects.filter(pk=firing.pk).update(notified_at=None)
        raise
    return len(recipients)
