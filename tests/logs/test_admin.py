"""The logs admin: activity events and audit entries are read-only for everyone, superusers included."""

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone

from safeguard.logs.models import ActivityEvent, AuditEntry, EventType, RetentionSettings
from tests.admin_pages import AdminPagesContract, admin_url
from tests.factories import ActivityEventFactory, AuditEntryFactory

# One saved object of each registered model. A newly registered model without an entry fails
# test_every_registered_model_is_covered.
OBJECT_MAKERS = {
    ActivityEvent: lambda: ActivityEventFactory(),
    AuditEntry: lambda: AuditEntryFactory(),
    RetentionSettings: lambda: RetentionSettings.load(),
}
# Events come from agents and audit rows from services: neither is ever added by hand. The
# retention settings are one row, made on first use and then changed.
ADD_DISABLED = {ActivityEvent, AuditEntry, RetentionSettings}


class TestAdminPages(AdminPagesContract):
    app_label = "logs"
    object_makers = OBJECT_MAKERS
    add_disabled = frozenset(ADD_DISABLED)


def test_audit_entries_cannot_be_changed_or_deleted_through_the_admin(superuser_client):
    entry = AuditEntryFactory(summary="Status changed from New to Escalated")
    change_url = admin_url(AuditEntry, "change", entry.pk)

    page = superuser_client.get(change_url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert b"deletelink" not in page.content

    changed = superuser_client.post(change_url, {"summary": "Nothing happened", "action": "tampered"})
    assert changed.status_code == 403
    assert superuser_client.get(admin_url(AuditEntry, "delete", entry.pk)).status_code == 403
    assert superuser_client.post(admin_url(AuditEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    assert superuser_client.post(admin_url(AuditEntry, "add"), {"action": "forged"}).status_code == 403

    # The bulk "delete selected" action is not offered, and asking for it deletes nothing.
    changelist = superuser_client.get(admin_url(AuditEntry, "changelist"))
    assert "delete_selected" not in changelist.context["cl"].model_admin.get_actions(changelist.wsgi_request)
    superuser_client.post(
        admin_url(AuditEntry, "changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )

    entry.refresh_from_db()
    assert (entry.summary, entry.action) == ("Status changed from New to Escalated", "capture.status_changed")
    assert AuditEntry.objects.count() == 1


def test_audit_admin_refuses_even_superusers_every_write_permission(rf, cast):
    request = rf.get("/")
    request.user = cast.admin
    model_admin = admin.site._registry[AuditEntry]
    entry = AuditEntryFactory()
    assert model_admin.has_view_permission(request, entry)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, entry)
    assert not model_admin.has_delete_permission(request, entry)


def test_audit_list_search_and_filter(superuser_client):
    status = AuditEntryFactory(action="capture.status_changed", summary="Status changed for vape capture")
    revoked = AuditEntryFactory(action="device.revoked", target_type="device", summary="Revoked device LAB-PC01")
    url = admin_url(AuditEntry, "changelist")
    assert list(superuser_client.get(url, {"q": "LAB-PC01"}).context["cl"].result_list) == [revoked]
    assert list(superuser_client.get(url, {"action": "capture.status_changed"}).context["cl"].result_list) == [status]


def test_activity_events_filter_by_type_and_date(superuser_client):
    window = ActivityEventFactory(type=EventType.WINDOW)
    website = ActivityEventFactory(type=EventType.WEBSITE, data={"url": "https://example.org/", "title": "Example"})
    old = ActivityEventFactory(type=EventType.WEBSITE, occurred_at=timezone.now() - timedelta(days=400))
    url = admin_url(ActivityEvent, "changelist")
    assert set(superuser_client.get(url, {"type__exact": "website"}).context["cl"].result_list) == {website, old}
    local = timezone.localtime(window.occurred_at)
    dated = superuser_client.get(url, {"occurred_at__year": local.year, "occurred_at__month": local.month})
    assert old not in dated.context["cl"].result_list
    assert {window, website} <= set(dated.context["cl"].result_list)


def test_activity_events_are_read_only(superuser_client):
    event = ActivityEventFactory()
    change_url = admin_url(ActivityEvent, "change", event.pk)
    page = superuser_client.get(change_url).content.decode()
    assert "Untitled - Notepad" in page
    assert superuser_client.post(change_url, {"type": "print"}).status_code == 403
    assert superuser_client.post(admin_url(ActivityEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.type == EventType.WINDOW
