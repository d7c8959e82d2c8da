"""Reads for Confide reports and assistance requests, scoped to the staff member.

Who reads Confide: staff with the Confide right (StaffAccess.is_confide_viewer) on some group.
They read every anonymous report (it has no person, so no group), and a named report when its
person is in a group where they hold the Confide right. Everyone else: 404.
"""

import uuid

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from safeguard.confide.models import AssistanceRequest, ConfideReport
from safeguard.core import access
from safeguard.groups.models import StaffAccess


def confide_report_list_for_staff(*, user, status: str | None = None) -> QuerySet[ConfideReport]:
    """The reports `user` may read, newest first; none without the Confide right."""
    if not access.has_right(user, "confide"):
        return ConfideReport.objects.none()
    reports = ConfideReport.objects.filter(
        Q(is_anonymous=True) | Q(is_anonymous=False, person_id__in=access.visible_people(user, "confide").values("pk"))
    )
    if status:
        reports = reports.filter(status=status)
    return reports.select_related("person", "handler").order_by("-reported_at", "-id")


def confide_report_get_for_staff(*, user, report_uuid: uuid.UUID) -> ConfideReport:
    """One report `user` may read, else 404 (never 403)."""
    return access.get_or_404(confide_report_list_for_staff(user=user), uuid=report_uuid)


def confide_handler_choices() -> list:
    """Staff who may handle a report: active accounts with the Confide right somewhere, and superusers."""
    viewers = StaffAccess.objects.filter(is_confide_viewer=True).values("user_id")
    return list(
        get_user_model()
        .objects.filter(Q(pk__in=viewers) | Q(is_superuser=True), is_active=True)
        .order_by("first_name", "last_name", "username")
    )


def assistance_request_open_for_staff(*, user, include_acknowledged: bool = False) -> QuerySet[AssistanceRequest]:
    """Assistance requests from people `user` sees, newest first; only unacknowledged ones unless asked."""
    requests = AssistanceRequest.objects.filter(person_id__in=access.visible_people(user).values("pk"))
    if not include_acknowledged:
        requests = requests.filter(acknowledged_at__isnull=True)
    return requests.select_related("person", "device").order_by("-requested_at", "-id")
