"""Reads for captures and recordings."""

import uuid

from django.db.models import Case, IntegerField, Value, When
from django.http import Http404

from safeguard.captures.models import Capture
from safeguard.groups.models import Device
from safeguard.policies.models import Keyword, Severity


def capture_get_for_device(*, device: Device, capture_uuid: uuid.UUID) -> Capture:
    """The capture with this UUID reported by `device`, else 404.

    Another device's capture answers 404 too, exactly like an unknown id: a device may only
    add to what it reported itself, and the answer must not confirm that the id exists.
    """
    capture = Capture.objects.select_related("person").filter(uuid=capture_uuid, device=device).first()
    if capture is None:
        raise Http404("No such capture.")
    return capture


def keyword_find_for_capture(*, text: str) -> Keyword | None:
    """The enabled keyword with this text (case-insensitive) that a capture without a policy belongs to.

    Several policies may list the same word; the most severe wins (then a keyword of an enabled
    policy, then the oldest), so the capture is never under-rated.
    """
    severity_rank = Case(
        *[When(severity=choice.value, then=Value(Severity.rank(choice.value))) for choice in Severity],
        default=Value(-1),
        output_field=IntegerField(),
    )
    return (
        Keyword.objects.select_related("policy")
        .filter(enabled=True, text__iexact=text.strip())
        .annotate(severity_rank=severity_rank)
        .order_by("-severity_rank", "-policy__enabled", "pk")
        .first()
    )
