"""The groups admin: every page loads, bulk add, device revoke/rotate, enrolment codes, search and filters."""

import re

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIClient

from safeguard.core.tokens import hash_secret
from safeguard.groups.models import (
    Device,
    DeviceCommand,
    DeviceToken,
    EnrolmentCode,
    Membership,
    MonitoringGroup,
    Person,
    StaffAccess,
)
from safeguard.groups.services import device_revoke, enrolment_code_create
from safeguard.logs.models import AuditEntry
from tests.admin_pages import AdminPagesContract, admin_url
from tests.conftest import device_api_client
from tests.factories import (
    DeviceCommandFactory,
    DeviceFactory,
    DeviceGroupFactory,
    MembershipFactory,
    PersonFactory,
    StaffAccessFactory,
    StaffUserFactory,
    UserGroupFactory,
    enrolled_device,
)

# One saved object of each registered model, so its change page can be opened. A model registered
# in the admin without an entry here fails test_every_registered_model_is_covered.
OBJECT_MAKERS = {
    MonitoringGroup: lambda: UserGroupFactory(parent=UserGroupFactory(name="Whole school")),
    Membership: lambda: MembershipFactory(),
    Person: lambda: PersonFactory(),
    Device: lambda: enrolled_device()[0],
    EnrolmentCode: lambda: enrolment_code_create(label="Lab rollout", max_uses=5)[0],
    StaffAccess: lambda: StaffAccessFactory(),
    DeviceCommand: lambda: DeviceCommandFactory(),
}
# Add pages refused on purpose: devices appear by enrolling; commands are made in the console.
ADD_DISABLED = {Device, DeviceCommand}


class TestAdminPages(AdminPagesContract):
    app_label = "groups"
    object_makers = OBJECT_MAKERS
    add_disabled = frozenset(ADD_DISABLED)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_site_header(superuser_client):
    response = superuser_client.get(reverse("admin:index"))
    assert b"Safeguard administration" in response.content


# --- Groups: the tree, filters and search --------------------------------------------------------


def test_group_list_shows_the_parent_path(superuser_client):
    school = UserGroupFactory(name="Whole school")
    year9 = UserGroupFactory(name="Year 9", parent=school)
    UserGroupFactory(name="9A", parent=year9)
    response = superuser_client.get(admin_url(MonitoringGroup, "changelist"))
    assert "Whole school › Year 9 › 9A" in response.content.decode()


def test_group_list_filters_by_kind_watch_and_personal(superuser_client, cast):
    room = DeviceGroupFactory(name="ICT Suite")
    watch = UserGroupFactory(name="Watch group", is_watch_group=True)
    personal = UserGroupFactory(name="My tutor group", owner=cast.teacher9)
    url = admin_url(MonitoringGroup, "changelist")

    def listed(query: str) -> set:
        return set(superuser_client.get(f"{url}?{query}").context["cl"].result_list)

    assert listed("kind__exact=device") == {room}
    assert listed("is_watch_group__exact=1") == {watch}
    assert listed("personal=yes") == {personal}
    assert personal not in listed("personal=no")
    assert room in listed("personal=no")


def test_group_search_by_name(superuser_client, cast):
    response = superuser_client.get(admin_url(MonitoringGroup, "changelist"), {"q": "year 1"})
    assert list(response.context["cl"].result_list) == [cast.year10]


def test_group_cannot_be_moved_under_its_own_subgroup(superuser_client):
    parent = UserGroupFactory(name="Key stage 3")
    child = UserGroupFactory(name="Year 7", parent=parent)
    response = superuser_client.post(
        admin_url(MonitoringGroup, "change", parent.pk),
        {
            "name": "Key stage 3",
            "kind": "user",
            "parent": child.pk,
            "description": "",
            **empty_inline_management("memberships"),
            **empty_inline_management("staff_access"),
        },
    )
    assert response.status_code == 200
    assert "cannot be inside itself" in response.content.decode()
    parent.refresh_from_db()
    assert parent.parent is None


def empty_inline_management(prefix: str) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": "0",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def test_membership_inline_adds_a_person_and_records_who_added_them(superuser_client, cast):
    pupil = PersonFactory(username="SCHOOL\\newpupil")
    response = superuser_client.post(
        admin_url(MonitoringGroup, "change", cast.year9.pk),
        {
            "name": "Year 9",
            "kind": "user",
            "description": "",
            "memberships-TOTAL_FORMS": "2",
            "memberships-INITIAL_FORMS": "1",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": Membership.objects.get(group=cast.year9).pk,
            "memberships-0-group": cast.year9.pk,
            "memberships-0-person": cast.pupil9.pk,
            "memberships-1-group": cast.year9.pk,
            "memberships-1-person": pupil.pk,
            **empty_inline_management("staff_access"),
        },
    )
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    membership = Membership.objects.get(group=cast.year9, person=pupil)
    assert membership.added_by == cast.admin


def test_a_device_cannot_join_a_user_group(superuser_client, cast):
    response = superuser_client.post(admin_url(Membership, "add"), {"group": cast.year9.pk, "device": cast.device.pk})
    assert response.status_code == 200
    assert "holds people, not devices" in response.content.decode()
    assert not Membership.objects.filter(group=cast.year9, device=cast.device).exists()


# --- Bulk add ---------------------------------------------------------------------------------------


def test_bulk_add_creates_unknown_people_and_skips_existing_members(superuser_client, cast):
    known = PersonFactory(username="SCHOOL\\known")
    pasted = "\n".join(["SCHOOL\\y9pupil", "school\\KNOWN", "", "  SCHOOL\\newkid  ", "SCHOOL\\NewKid"])
    response = superuser_client.post(admin_url(MonitoringGroup, "bulk_add", cast.year9.pk), {"names": pasted})
    assert response.status_code == 302
    assert response["Location"] == admin_url(MonitoringGroup, "change", cast.year9.pk)
    assert messages_of(response) == ["Year 9: 2 added, 1 already in the group, 1 new people created."]
    newkid = Person.objects.get(username__iexact="SCHOOL\\newkid")
    assert newkid.username == "SCHOOL\\newkid"
    members = Membership.objects.filter(group=cast.year9)
    assert set(members.values_list("person", flat=True)) == {cast.pupil9.pk, known.pk, newkid.pk}
    assert members.filter(person=cast.pupil9).count() == 1
    assert set(members.exclude(person=cast.pupil9).values_list("added_by", flat=True)) == {cast.admin.pk}
    assert AuditEntry.objects.filter(action="group.members_added", target_id=str(cast.year9.uuid)).count() == 1


def test_bulk_add_picked_people(superuser_client, cast):
    picked = [PersonFactory(), PersonFactory()]
    response = superuser_client.post(
        admin_url(MonitoringGroup, "bulk_add", cast.year10.pk),
        {"names": "", "people": [picked[0].pk, picked[1].pk, cast.pupil10.pk]},
    )
    assert response.status_code == 302
    assert messages_of(response) == ["Year 10: 2 added, 1 already in the group, 0 new people created."]
    assert Membership.objects.filter(group=cast.year10).count() == 3


def test_bulk_add_is_all_or_nothing(superuser_client, cast):
    before = set(Membership.objects.values_list("pk", flat=True))
    people_before = Person.objects.count()
    pasted = "\n".join(["SCHOOL\\fresh", "SCHOOL\\" + "x" * 300, "SCHOOL\\y10pupil"])
    response = superuser_client.post(admin_url(MonitoringGroup, "bulk_add", cast.year9.pk), {"names": pasted})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing was added" in page
    assert "Line 2: the username is longer than 255 characters." in page
    assert set(Membership.objects.values_list("pk", flat=True)) == before
    assert Person.objects.count() == people_before
    assert not Person.objects.filter(username__iexact="SCHOOL\\fresh").exists()


def test_bulk_add_devices_by_hostname_refuses_unknown_hostnames(superuser_client):
    room = DeviceGroupFactory(name="Library")
    pc1, pc2 = DeviceFactory(hostname="LIB-PC01"), DeviceFactory(hostname="LIB-PC02")
    url = admin_url(MonitoringGroup, "bulk_add", room.pk)

    refused = superuser_client.post(url, {"names": "LIB-PC01\nLIB-PC99"})
    assert refused.status_code == 200
    assert "Line 2: no enrolled device is called LIB-PC99." in refused.content.decode()
    assert not Membership.objects.filter(group=room).exists()

    added = superuser_client.post(url, {"names": "lib-pc01\nLIB-PC02"})
    assert added.status_code == 302
    assert messages_of(added) == ["Library: 2 added, 0 already in the group."]
    assert set(Membership.objects.filter(group=room).values_list("device", flat=True)) == {pc1.pk, pc2.pk}


def test_bulk_add_page_offers_the_fields_of_the_group_kind(superuser_client, cast):
    user_page = superuser_client.get(admin_url(MonitoringGroup, "bulk_add", cast.year9.pk))
    assert user_page.status_code == 200
    assert "Usernames, one per line" in user_page.content.decode()
    assert set(user_page.context["form"].fields) == {"names", "people"}
    device_page = superuser_client.get(admin_url(MonitoringGroup, "bulk_add", DeviceGroupFactory().pk))
    assert set(device_page.context["form"].fields) == {"names", "devices"}


def test_bulk_add_needs_change_permission(client, cast):
    viewer = StaffUserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_monitoringgroup"))
    client.force_login(viewer)
    response = client.post(admin_url(MonitoringGroup, "bulk_add", cast.year9.pk), {"names": "SCHOOL\\sneaky"})
    assert response.status_code == 403
    assert not Person.objects.filter(username__iexact="SCHOOL\\sneaky").exists()


# --- People and devices -----------------------------------------------------------------------------


def test_person_search_by_username_and_display_name(superuser_client, cast):
    url = admin_url(Person, "changelist")
    assert list(superuser_client.get(url, {"q": "y10pupil"}).context["cl"].result_list) == [cast.pupil10]
    assert list(superuser_client.get(url, {"q": "Nine Pup"}).context["cl"].result_list) == [cast.pupil9]


def test_person_list_filters_by_group(superuser_client, cast):
    response = superuser_client.get(admin_url(Person, "changelist"), {"group": cast.year10.pk})
    assert list(response.context["cl"].result_list) == [cast.pupil10]


def agent_config_status(token: str) -> int:
    return device_api_client(token).get("/api/v1/agent/config").status_code


def test_revoke_action_stops_the_device_token(superuser_client, cast):
    assert agent_config_status(cast.device_token) == 200
    response = superuser_client.post(
        admin_url(Device, "changelist"), {"action": "revoke_devices", "_selected_action": [cast.device.pk]}
    )
    assert response.status_code == 302
    cast.device.refresh_from_db()
    assert cast.device.revoked_at is not None
    assert agent_config_status(cast.device_token) == 401
    assert AuditEntry.objects.filter(action="device.revoked", target_id=str(cast.device.uuid)).exists()


def test_rotate_action_shows_the_new_token_once_and_the_old_one_stops(superuser_client, cast):
    response = superuser_client.post(
        admin_url(Device, "changelist"), {"action": "rotate_tokens", "_selected_action": [cast.device.pk]}
    )
    assert response.status_code == 302
    [message] = messages_of(response)
    assert "shown only this once" in message
    new_token = re.search(r"New token for Y9-PC01: (\S+) ", message).group(1)
    assert agent_config_status(cast.device_token) == 401
    assert agent_config_status(new_token) == 200
    # Only the hash is stored, and the token is not shown again.
    assert DeviceToken.objects.filter(device=cast.device, token_hash=hash_secret(new_token)).exists()
    assert not DeviceToken.objects.filter(token_hash=new_token).exists()
    device_page = admin_url(Device, "change", cast.device.pk)
    first = superuser_client.get(device_page).content.decode()
    assert new_token in first  # the message, on the first page after the action
    again = superuser_client.get(device_page).content.decode()
    assert new_token not in again
    assert hash_secret(new_token) not in first + again


def test_rotate_refuses_a_revoked_device(superuser_client, cast):
    device_revoke(device=cast.device)
    response = superuser_client.post(
        admin_url(Device, "changelist"), {"action": "rotate_tokens", "_selected_action": [cast.device.pk]}
    )
    assert messages_of(response) == ["Y9-PC01 is revoked: enrol it again with a new code."]
    assert not DeviceToken.objects.filter(device=cast.device, revoked_at__isnull=True).exists()


def test_device_list_search_and_revoked_filter(superuser_client, cast):
    url = admin_url(Device, "changelist")
    assert list(superuser_client.get(url, {"q": "y10-pc"}).context["cl"].result_list) == [cast.device10]
    superuser_client.post(url, {"action": "revoke_devices", "_selected_action": [cast.device10.pk]})
    assert list(superuser_client.get(url, {"revoked": "yes"}).context["cl"].result_list) == [cast.device10]
    assert cast.device10 not in superuser_client.get(url, {"revoked": "no"}).context["cl"].result_list


def test_device_page_shows_tokens_without_their_hash(superuser_client, cast):
    page = superuser_client.get(admin_url(Device, "change", cast.device.pk)).content.decode()
    assert "tokens" in page.lower()
    assert DeviceToken.objects.get(device=cast.device).token_hash not in page


# --- Enrolment codes --------------------------------------------------------------------------------


def test_enrolment_code_add_shows_the_code_once_and_stores_only_its_hash(superuser_client):
    room = DeviceGroupFactory(name="ICT Suite")
    response = superuser_client.post(
        admin_url(EnrolmentCode, "add"),
        {"label": "ICT rollout", "max_uses": "30", "expires_at_0": "", "expires_at_1": "", "device_group": room.pk},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    code = re.search(r"Enrolment code: <strong><code>([A-Z0-9-]{19})</code></strong>", page).group(1)
    assert "shown only this once" in page

    record = EnrolmentCode.objects.get()
    assert record.code_hash == hash_secret(code)
    assert record.code_hint == code[:4]
    assert record.label == "ICT rollout" and record.max_uses == 30 and record.device_group == room
    stored = [str(getattr(record, f.attname)) for f in EnrolmentCode._meta.concrete_fields]
    assert not any(code in value for value in stored)

    # Never again: not on the list, not on the code's own page.
    for url in (admin_url(EnrolmentCode, "changelist"), admin_url(EnrolmentCode, "change", record.pk)):
        again = superuser_client.get(url).content.decode()
        assert code not in again
        assert record.code_hash not in again

    # The code shown is the working one: a device enrols with it and joins the group.
    enrol = APIClient().post(
        "/api/v1/agent/enrol",
        {"code": code, "hostname": "ICT-PC01", "os": "Windows 11", "agent_version": "1.0.0"},
        format="json",
    )
    assert enrol.status_code == 201, enrol.content
    assert Membership.objects.filter(group=room, device__hostname="ICT-PC01").exists()


def test_enrolment_code_list_shows_hint_uses_and_expiry(superuser_client):
    record, code = enrolment_code_create(label="Library", max_uses=4)
    EnrolmentCode.objects.filter(pk=record.pk).update(uses=1)
    page = superuser_client.get(admin_url(EnrolmentCode, "changelist")).content.decode()
    assert f"{record.code_hint}-…" in page
    assert "1 / 4" in page
    assert code not in page


def test_enrolment_code_cannot_allow_fewer_uses_than_used(superuser_client):
    record, _ = enrolment_code_create(label="Library", max_uses=4)
    EnrolmentCode.objects.filter(pk=record.pk).update(uses=3)
    response = superuser_client.post(
        admin_url(EnrolmentCode, "change", record.pk),
        {"label": "Library", "max_uses": "2", "expires_at_0": "", "expires_at_1": "", "device_group": ""},
    )
    assert response.status_code == 200
    assert "already been used 3 times" in response.content.decode()


def test_revoke_enrolment_code_action(superuser_client):
    record, code = enrolment_code_create(label="Lost code", max_uses=10)
    response = superuser_client.post(
        admin_url(EnrolmentCode, "changelist"), {"action": "revoke_codes", "_selected_action": [record.pk]}
    )
    assert response.status_code == 302
    record.refresh_from_db()
    assert record.revoked_at is not None
    enrol = APIClient().post(
        "/api/v1/agent/enrol",
        {"code": code, "hostname": "PC", "os": "Windows 11", "agent_version": "1.0.0"},
        format="json",
    )
    assert enrol.status_code == 400


# --- Staff access -----------------------------------------------------------------------------------


def test_staff_access_list_filters_by_group_and_rights(superuser_client, cast):
    url = admin_url(StaffAccess, "changelist")
    year10_access = set(superuser_client.get(url, {"group__id__exact": cast.year10.pk}).context["cl"].result_list)
    assert {access.user for access in year10_access} == {cast.lead, cast.teacher10, cast.confide_viewer}
    confide = set(superuser_client.get(url, {"is_confide_viewer__exact": "1"}).context["cl"].result_list)
    assert {access.user for access in confide} == {cast.lead, cast.confide_viewer}


def test_user_admin_edits_staff_access_inline(superuser_client, cast):
    user_model = get_user_model()
    url = reverse("admin:auth_user_change", args=[cast.outsider.pk])
    page = superuser_client.get(url)
    assert page.status_code == 200
    assert "group_access-TOTAL_FORMS" in page.content.decode()

    outsider = cast.outsider
    response = superuser_client.post(
        url,
        {
            "username": outsider.username,
            "first_name": "",
            "last_name": "",
            "email": outsider.email,
            "is_active": "on",
            "date_joined_0": outsider.date_joined.strftime("%d/%m/%Y"),
            "date_joined_1": outsider.date_joined.strftime("%H:%M:%S"),
            "initial-date_joined_0": outsider.date_joined.strftime("%d/%m/%Y"),
            "initial-date_joined_1": outsider.date_joined.strftime("%H:%M:%S"),
            "group_access-TOTAL_FORMS": "1",
            "group_access-INITIAL_FORMS": "0",
            "group_access-MIN_NUM_FORMS": "0",
            "group_access-MAX_NUM_FORMS": "1000",
            "group_access-0-group": cast.year9.pk,
            "group_access-0-can_view_captures": "on",
        },
    )
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    access = StaffAccess.objects.get(user=outsider)
    assert access.group == cast.year9
    assert access.can_view_captures and not access.can_manage_captures
    assert user_model.objects.get(pk=outsider.pk).username == "outsider"


def test_device_commands_are_read_only(superuser_client):
    command = DeviceCommandFactory()
    url = admin_url(DeviceCommand, "change", command.pk)
    page = superuser_client.get(url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert superuser_client.post(url, {"type": "record_screen"}).status_code == 403
    assert superuser_client.post(admin_url(DeviceCommand, "delete", command.pk), {"post": "yes"}).status_code == 403
    assert DeviceCommand.objects.filter(pk=command.pk).exists()


def test_bulk_add_with_nothing_entered_is_refused(superuser_client, cast):
    response = superuser_client.post(admin_url(MonitoringGroup, "bulk_add", cast.year9.pk), {"names": "\n  \n"})
    assert response.status_code == 200
    assert "Paste at least one name or pick at least one member." in response.content.decode()


def test_bulk_add_people_picker_searches_people(superuser_client, cast):
    response = superuser_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "groups", "model_name": "membership", "field_name": "person", "term": "nine"},
    )
    assert response.json()["results"] == [{"id": str(cast.pupil9.pk), "text": "Nine Pupil"}]


def test_enrolment_code_group_picker_offers_only_device_groups(superuser_client, cast):
    room = DeviceGroupFactory(name="Year 9 laptops")
    response = superuser_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "groups", "model_name": "enrolmentcode", "field_name": "device_group", "term": "year 9"},
    )
    assert response.json()["results"] == [{"id": str(room.pk), "text": "Year 9 laptops"}]


def test_device_list_filters_revoked_and_active(superuser_client, cast):
    revoked = enrolled_device(hostname="OLD-PC")[0]
    device_revoke(device=revoked)
    url = admin_url(Device, "changelist")

    def listed(query: str) -> set:
        return set(superuser_client.get(f"{url}?{query}").context["cl"].result_list)

    assert listed("revoked=yes") == {revoked}
    assert revoked not in listed("revoked=no")
    assert cast.device in listed("revoked=no")
