"""Who may open what: every URL pattern of the project × every role, allowed or denied.

The patterns are read from the URL resolver at collection time, so each (pattern, role) pair is a
test of its own (`test_cell[console/captures/<uuid:capture_uuid>/-teacher10]`). A pattern that has
no entry in SPEC (or, for the admin, in the admin rule below) fails `test_cell[...]` naming it:
adding a URL means deciding here who may open it.

Objects in URLs are real: a capture, recording, device, Confide report and assistance request of
the Year 9 pupil, an export and an alert rule belonging to the Year 9 teacher. So one row shows both
sides of the access rule (safeguard.core.access): the Year 9 teacher opens them, the Year 10
teacher gets 404 (not 403: staff learn nothing of what they cannot see). Files are included
(screenshots, previews, PDFs, thumbnails, videos, export downloads).

The roles are the cast of tests/conftest.py, plus `it_admin`: a staff account with every Django
model permission but no group access, the IT technician who configures the admin.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import Client, RequestFactory, override_settings
from django.urls import URLPattern, URLResolver, get_resolver

from safeguard.captures.models import Capture, CaptureNote, ExportJob, Recording
from safeguard.confide.models import ConfideNote, ConfideReport
from safeguard.logs.models import ActivityEvent
from tests.conftest import build_cast
from tests.factories import (
    AlertRuleFactory,
    AssistanceRequestFactory,
    CaptureFactory,
    ConfideReportFactory,
    ExportJobFactory,
    RecordingFactory,
    StaffUserFactory,
    UserGroupFactory,
    png_bytes,
)

ROLES = ("anonymous", "device", "teacher9", "teacher10", "lead", "confide_viewer", "admin", "it_admin")
STAFF = ROLES[2:]

# Outcomes a cell can expect.
OK = "ok"  # 200/204/206, or a redirect that is not to a login page (a POST's "done, go back")
NOT_FOUND = "404"
LOGIN = "login"  # 302 to the console's login page
ADMIN_LOGIN = "admin-login"  # 302 to the admin's login page
UNAUTHORIZED = "401"  # the agent API without a device token
REFUSED = "403"
REACHED = "reached"  # an API call got past authentication: 2xx, or 400 for the empty body the matrix sends
ADMIN_INDEX = "admin-index"  # 302 to the admin's index: how the admin answers "no such object"


# --- the objects URLs point at --------------------------------------------------------------------


class World:
    """The cast plus the Year 9 objects each URL names, and one object of every admin model.

    Built once for the module inside a transaction that is rolled back at its end; each cell runs
    in its own savepoint, so a cell that changes something (deletes the alert rule, acknowledges
    the request) leaves the next cell the same world.
    """

    def __init__(self, cast, media_root):
        self.cast = cast
        self.media_root = media_root
        self.it_admin = StaffUserFactory(username="it.technician", is_staff=True)
        self.it_admin.user_permissions.set(Permission.objects.all())
        device = cast.device9
        device.current_person = cast.pupil9  # in use by the Year 9 pupil: Year 9 staff see it
        device.thumbnail.save("live.png", ContentFile(png_bytes()), save=False)
        device.save()
        self.device9 = device
        self.capture9 = CaptureFactory(person=cast.pupil9, device=device)
        self.capture9.screenshot_preview.save("preview.png", ContentFile(png_bytes(32, 24)))
        self.recording9 = RecordingFactory(capture=self.capture9)
        self.report9 = ConfideReportFactory(person=cast.pupil9, device=device)
        self.assistance9 = AssistanceRequestFactory(person=cast.pupil9, device=device)
        self.export9 = ExportJobFactory(requested_by=cast.teacher9, status=ExportJob.Status.DONE, capture_count=1)
        self.export9.file.save("report.pdf", ContentFile(b"%PDF-1.4\n%%EOF\n"))
        self.alert9 = AlertRuleFactory(owner=cast.teacher9, group=UserGroupFactory(name="Mine"))
        for model in admin.site._registry:
            _admin_object(self, model)

    def user(self, role: str):
        return self.it_admin if role == "it_admin" else getattr(self.cast, role)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    media_root = tmp_path_factory.mktemp("media")
    fast_hashing = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with django_db_blocker.unblock(), override_settings(MEDIA_ROOT=media_root, PASSWORD_HASHERS=fast_hashing):
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield World(build_cast(), media_root)
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _isolated_media(settings, world):
    """Overrides the suite's per-test media folder: the world's files live as long as the module."""
    settings.MEDIA_ROOT = world.media_root


# --- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """How to call one URL pattern and what each role gets."""

    outcomes: dict[str, str]
    method: str = "get"
    kwargs: Callable[[World], dict] = lambda world: {}
    query: str = ""
    json: bool = False
    # Admin rows decide some outcomes from the ModelAdmin itself (an add page refused on purpose).
    refine: Callable[[World, str, str], str] | None = field(default=None)


def public(**overrides) -> dict[str, str]:
    return {role: overrides.get(role, OK) for role in ROLES}


def console(ok=STAFF, not_found=()) -> dict[str, str]:
    """A console page: anonymous visitors and devices (no session) are sent to log in."""
    outcomes = {"anonymous": LOGIN, "device": LOGIN}
    outcomes |= {role: OK for role in ok}
    outcomes |= {role: NOT_FOUND for role in not_found}
    assert set(outcomes) == set(ROLES), f"roles missing: {set(ROLES) - set(outcomes)}"
    return outcomes


def agent_api() -> dict[str, str]:
    """The agent API: a device token, nothing else. A staff session is not a device."""
    return {role: (REACHED if role == "device" else UNAUTHORIZED) for role in ROLES}


# Year 9 objects: seen by whoever holds the right over Year 9.
CAPTURES_9 = console(ok=("teacher9", "lead", "admin"), not_found=("teacher10", "confide_viewer", "it_admin"))
CONFIDE_9 = console(ok=("lead", "confide_viewer", "admin"), not_found=("teacher9", "teacher10", "it_admin"))
CONFIDE_PAGES = CONFIDE_9  # the list itself needs the Confide right somewhere
OWN_9 = console(ok=("teacher9",), not_found=tuple(r for r in STAFF if r != "teacher9"))


def capture(world: World) -> dict:
    return {"capture_uuid": world.capture9.uuid}


def device(world: World) -> dict:
    return {"device_uuid": world.device9.uuid}


def recording(world: World) -> dict:
    return {"recording_uuid": world.recording9.uuid}


def report(world: World) -> dict:
    return {"report_uuid": world.report9.uuid}


def export(world: World) -> dict:
    return {"job_uuid": world.export9.uuid}


SPEC: dict[str, Row] = {
    # The root only redirects to the console, which then asks who you are.
    "": Row(public()),
    # Django's account pages: the login and password reset are for people not logged in.
    "accounts/login/": Row(public()),
    "accounts/logout/": Row({role: LOGIN for role in ROLES}, method="post"),  # then back to the login page
    "accounts/password_change/": Row(console()),
    "accounts/password_change/done/": Row(console()),
    "accounts/password_reset/": Row(public()),
    "accounts/password_reset/done/": Row(public()),
    "accounts/reset/<uidb64>/<token>/": Row(public(), kwargs=lambda w: {"uidb64": "MQ", "token": "bad-token"}),
    "accounts/reset/done/": Row(public()),
    # Two-factor set-up and verification: for a logged-in account (safeguard.core.twofactor).
    "accounts/2fa/setup/": Row(console()),
    "accounts/2fa/verify/": Row(console()),
    # The API description is public: it holds no data, and agents are built from it.
    "api/schema/": Row(public()),
    "api/docs/": Row(public()),
    # Enrolment is the one agent call without a token (it takes an enrolment code instead).
    "api/v1/agent/enrol": Row(public(**{r: REACHED for r in ROLES}), method="post", json=True),
    "api/v1/agent/heartbeat": Row(agent_api(), method="post", json=True),
    "api/v1/agent/thumbnail": Row(agent_api(), method="post"),
    "api/v1/agent/pause": Row(agent_api(), method="post", json=True),
    "api/v1/agent/config": Row(agent_api()),
    "api/v1/agent/events": Row(agent_api(), method="post", json=True),
    "api/v1/agent/captures": Row(agent_api(), method="post"),
    # Another device's capture answers 404: tests/captures/test_api_recording.py.
    "api/v1/agent/captures/<uuid:capture_uuid>/recording": Row(agent_api(), method="post", kwargs=capture),
    "api/v1/agent/recordings": Row(agent_api(), method="post"),
    "api/v1/agent/confide": Row(agent_api(), method="post", json=True),
    "api/v1/agent/assistance": Row(agent_api(), method="post", json=True),
    # Console pages that list only what the staff member sees (empty for someone with no group).
    "console/": Row(console()),
    "console/captures/": Row(console()),
    "console/logs/": Row(console()),
    "console/exports/": Row(console()),
    "console/exports/new": Row(console(), method="post"),
    "console/insight/": Row(console()),
    "console/insight/summary.pdf": Row(console()),
    "console/thumbnails/": Row(console()),
    "console/thumbnails/grid": Row(console()),
    "console/recordings/": Row(console()),
    "console/assistance/": Row(console()),
    "console/alerts/": Row(console()),
    # One capture and its files: the view-captures right over Year 9; the changes need manage-captures.
    "console/captures/<uuid:capture_uuid>/": Row(CAPTURES_9, kwargs=capture),
    "console/captures/<uuid:capture_uuid>/screenshot": Row(CAPTURES_9, kwargs=capture),
    "console/captures/<uuid:capture_uuid>/preview": Row(CAPTURES_9, kwargs=capture),
    "console/captures/<uuid:capture_uuid>/pdf": Row(CAPTURES_9, kwargs=capture),
    "console/captures/<uuid:capture_uuid>/status": Row(CAPTURES_9, method="post", kwargs=capture),
    "console/captures/<uuid:capture_uuid>/assign": Row(CAPTURES_9, method="post", kwargs=capture),
    "console/captures/<uuid:capture_uuid>/notes": Row(CAPTURES_9, method="post", kwargs=capture),
    "console/captures/<uuid:capture_uuid>/move": Row(CAPTURES_9, method="post", kwargs=capture),
    # A computer in use by the Year 9 pupil; recording it needs the view-recordings right.
    "console/devices/<uuid:device_uuid>/": Row(CAPTURES_9, kwargs=device),
    "console/devices/<uuid:device_uuid>/thumbnail": Row(CAPTURES_9, kwargs=device),
    "console/devices/<uuid:device_uuid>/record": Row(CAPTURES_9, method="post", kwargs=device),
    "console/recordings/<uuid:recording_uuid>/": Row(CAPTURES_9, kwargs=recording),
    "console/recordings/<uuid:recording_uuid>/video": Row(CAPTURES_9, kwargs=recording),
    # Exports belong to the staff member who asked for them, and to nobody else (not even a superuser).
    "console/exports/<uuid:job_uuid>/": Row(OWN_9, kwargs=export),
    "console/exports/<uuid:job_uuid>/progress": Row(OWN_9, kwargs=export),
    "console/exports/<uuid:job_uuid>/download": Row(OWN_9, kwargs=export),
    # Confide: only staff with the Confide right (the list 404s for everyone else).
    "console/confide/": Row(CONFIDE_PAGES),
    "console/confide/<uuid:report_uuid>/": Row(CONFIDE_9, kwargs=report),
    "console/confide/<uuid:report_uuid>/update": Row(CONFIDE_9, method="post", kwargs=report),
    "console/confide/<uuid:report_uuid>/notes": Row(CONFIDE_9, method="post", kwargs=report),
    # A request for help from the Year 9 pupil: staff who see the pupil.
    "console/assistance/<uuid:request_uuid>/acknowledge": Row(
        CAPTURES_9, method="post", kwargs=lambda w: {"request_uuid": w.assistance9.uuid}
    ),
    # Personal alert rules: their owner's alone.
    "console/alerts/<uuid:rule_uuid>/delete": Row(OWN_9, method="post", kwargs=lambda w: {"rule_uuid": w.alert9.uuid}),
}


# --- the admin: one rule for every model's pages, and each custom page listed -----------------------

# Only staff accounts reach the admin; everyone else is sent to its login page.
NOT_ADMIN_STAFF = ("anonymous", "device", "teacher9", "teacher10", "lead", "confide_viewer")
# Children's data the admin shows only by the access rule: Confide is for Confide viewers, as in
# the console (safeguard.confide.admin). An admin account without the Confide right gets 403.
CONFIDE_ADMIN_MODELS = {ConfideReport, ConfideNote}
# Captures, their notes, recordings and activity events: the admin lists only the rows of the
# account's groups (safeguard.core.admin.GroupScopedAdminMixin); IT staff with no group find none.
SCOPED_ADMIN_MODELS = {Capture, CaptureNote, Recording, ActivityEvent}


def admin_staff(**overrides) -> dict[str, str]:
    outcomes = {role: ADMIN_LOGIN for role in NOT_ADMIN_STAFF} | {"admin": OK, "it_admin": OK}
    return outcomes | overrides


def _admin_object(world: World, model):
    """One saved object of `model`, made by the app's own admin test makers."""
    existing = model._default_manager.order_by("pk").first()
    if existing is not None:
        return existing
    return admin_object_makers()[model]()


def admin_object_makers() -> dict:
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    from tests.captures.test_admin import OBJECT_MAKERS as captures
    from tests.confide.test_admin import OBJECT_MAKERS as confide
    from tests.core.test_admin import OBJECT_MAKERS as core
    from tests.groups.test_admin import OBJECT_MAKERS as groups
    from tests.logs.test_admin import OBJECT_MAKERS as logs
    from tests.policies.test_admin import OBJECT_MAKERS as policies

    axes = {
        AccessAttempt: lambda: AccessAttempt.objects.create(
            username="x", ip_address="192.0.2.1", failures_since_start=1
        ),
        AccessLog: lambda: AccessLog.objects.create(username="x", ip_address="192.0.2.1"),
        AccessFailureLog: lambda: AccessFailureLog.objects.create(username="x", ip_address="192.0.2.1"),
    }
    return {**captures, **confide, **core, **groups, **logs, **policies, **axes}


def _model_admin_refines(model, view: str):
    """For the admin accounts: what the ModelAdmin itself allows (an add page refused on purpose is 403)."""

    def refine(world: World, role: str, outcome: str) -> str:
        if role not in ("admin", "it_admin"):
            return outcome
        if role == "it_admin" and model in CONFIDE_ADMIN_MODELS and view != "redirect":
            # The history page looks the object up first: outside the account's reports it is
            # "not found" (Django's admin sends you to its index); every other page refuses.
            return ADMIN_INDEX if view == "history" else REFUSED
        model_admin = admin.site._registry[model]
        request = RequestFactory().get("/admin/")
        request.user = world.user(role)
        if view == "add" and not model_admin.has_add_permission(request):
            return REFUSED
        if view == "delete" and not model_admin.has_delete_permission(request, _admin_object(world, model)):
            return REFUSED
        if role == "it_admin" and model in SCOPED_ADMIN_MODELS and view in ("change", "history", "delete"):
            return ADMIN_INDEX  # the Year 9 object is outside an account with no group: "not found"
        return outcome

    return refine


def _admin_model_rows() -> dict[str, Row]:
    rows = {}
    for model in admin.site._registry:
        base = f"admin/{model._meta.app_label}/{model._meta.model_name}/"

        def obj(world, model=model):
            return {"object_id": str(_admin_object(world, model).pk)}

        rows[base] = Row(admin_staff(), refine=_model_admin_refines(model, "changelist"))
        rows[base + "add/"] = Row(admin_staff(), refine=_model_admin_refines(model, "add"))
        for view in ("history", "delete", "change"):
            rows[f"{base}<path:object_id>/{view}/"] = Row(
                admin_staff(), kwargs=obj, refine=_model_admin_refines(model, view)
            )
        # The bare object URL only redirects to the change page, which then decides.
        rows[f"{base}<path:object_id>/"] = Row(
            admin_staff(), kwargs=obj, refine=_model_admin_refines(model, "redirect")
        )
    return rows


# The app index's route is a regex of the registered apps' labels, so it is matched by its start.
APP_INDEX_PREFIX = "admin/^(?P<app_label>"
APP_INDEX = "admin/<app_label>/"


def _confide_content_type(world: World) -> dict:
    return {"content_type_id": str(ContentType.objects.get_for_model(ConfideReport).pk), "object_id": "1"}


ADMIN_SPEC: dict[str, Row] = {
    "admin/": Row(admin_staff()),
    # The login page is for everyone; logging out needs a POST and an admin session.
    "admin/login/": Row(public()),
    "admin/logout/": Row(
        {role: ADMIN_INDEX for role in NOT_ADMIN_STAFF} | {"admin": LOGIN, "it_admin": LOGIN}, method="post"
    ),
    "admin/password_change/": Row(admin_staff()),
    "admin/password_change/done/": Row(admin_staff()),
    "admin/jsi18n/": Row(admin_staff()),
    # Autocomplete over Confide reports (the Confide note form's field): Confide viewers only.
    "admin/autocomplete/": Row(
        admin_staff(it_admin=REFUSED),
        query="?app_label=confide&model_name=confidenote&field_name=report&term=a",
    ),
    "admin/r/<path:content_type_id>/<path:object_id>/": Row(
        admin_staff(admin=NOT_FOUND, it_admin=NOT_FOUND), kwargs=_confide_content_type
    ),
    # The Confide app's index: an admin without the Confide right sees only assistance requests.
    APP_INDEX: Row(admin_staff()),
    "admin/(?P<url>.*)$": Row(admin_staff(admin=NOT_FOUND, it_admin=NOT_FOUND)),
    # Custom admin pages.
    "admin/auth/user/<id>/password/": Row(admin_staff(), kwargs=lambda w: {"id": str(w.cast.teacher9.pk)}),
    "admin/groups/monitoringgroup/<path:object_id>/bulk-add/": Row(
        admin_staff(), kwargs=lambda w: {"object_id": str(w.cast.year9.pk)}
    ),
    "admin/policies/keywordpolicy/test-text/": Row(admin_staff()),
    "admin/policies/keywordpolicy/<path:object_id>/keywords/export/": Row(
        admin_staff(), kwargs=lambda w: {"object_id": str(_admin_object(w, _model("policies.KeywordPolicy")).pk)}
    ),
    "admin/policies/keywordpolicy/<path:object_id>/keywords/import/": Row(
        admin_staff(), kwargs=lambda w: {"object_id": str(_admin_object(w, _model("policies.KeywordPolicy")).pk)}
    ),
    "admin/logs/retentionsettings/dry-run/": Row(admin_staff()),
    "admin/logs/auditentry/export/": Row(admin_staff()),
}


def _model(label: str):
    from django.apps import apps

    return apps.get_model(label)


def all_rows() -> dict[str, Row]:
    rows = {**SPEC, **_admin_model_rows(), **ADMIN_SPEC}
    app_index = rows.pop(APP_INDEX)
    rows |= {route: app_index for route in ROUTES if route.startswith(APP_INDEX_PREFIX)}
    return rows


# --- walking the URL map ----------------------------------------------------------------------------


def url_patterns(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple[str, URLPattern, URLResolver]]:
    """Every (route, pattern, its resolver) in the project, includes followed."""
    resolver = resolver or get_resolver()
    found = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            found += url_patterns(entry, prefix + str(entry.pattern))
        else:
            found.append((prefix + str(entry.pattern), entry, resolver))
    return found


ROUTES = sorted({route for route, _pattern, _resolver in url_patterns()})


def build_path(route: str, kwargs: dict, query: str) -> str:
    """The URL for `route` with `kwargs` filled in (regex routes are written by hand)."""
    if route.startswith(APP_INDEX_PREFIX):
        return "/admin/confide/"
    if route == "admin/(?P<url>.*)$":
        return "/admin/no-such-page/"
    path = "/" + route
    for name, value in kwargs.items():
        start = path.index("<")
        end = path.index(">", start)
        assert path[start + 1 : end].split(":")[-1] == name, (route, name)
        path = path[:start] + str(value) + path[end + 1 :]
    assert "<" not in path, f"unfilled parameter in {route}"
    return path + query


# --- the cells ----------------------------------------------------------------------------------------


def client_for(world: World, role: str) -> Client:
    if role == "anonymous":
        return Client()
    if role == "device":
        return Client(HTTP_AUTHORIZATION=f"Device {world.cast.device_token}")
    client = Client()
    client.force_login(world.user(role))
    return client


def _to_login(location: str, login_path: str) -> bool:
    return location.split("?")[0] == login_path


def check(outcome: str, response) -> None:
    status = response.status_code
    location = response.get("Location", "")
    shown = f"{status} {location}".strip()
    if outcome == OK:
        redirected = status in (301, 302, 303) and not (
            _to_login(location, "/accounts/login/") or _to_login(location, "/admin/login/")
        )
        assert status in (200, 204, 206) or redirected, f"expected allowed, got {shown}"
    elif outcome == LOGIN:
        assert status == 302 and _to_login(location, "/accounts/login/"), f"expected the login page, got {shown}"
    elif outcome == ADMIN_INDEX:
        assert status == 302 and location == "/admin/", f"expected the admin index, got {shown}"
    elif outcome == ADMIN_LOGIN:
        assert status == 302 and _to_login(location, "/admin/login/"), f"expected the admin login, got {shown}"
    elif outcome == REACHED:
        assert status in (200, 201, 400), f"expected the endpoint to be reached, got {shown}"
        if status == 400:
            assert set(response.json()) >= {"error", "fields"}, response.content
    else:
        assert status == int(outcome), f"expected {outcome}, got {shown}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES)
def test_cell(route, role, world, db):
    rows = all_rows()
    assert route in rows, f"URL pattern {route!r} has no entry in the permission matrix (tests/security)"
    row = rows[route]
    outcome = row.outcomes[role]
    if row.refine is not None:
        outcome = row.refine(world, role, outcome)
    path = build_path(route, row.kwargs(world), row.query)
    client = client_for(world, role)
    if row.method == "get":
        response = client.get(path)
    elif row.json:
        response = client.post(path, data="{}", content_type="application/json")
    else:
        response = client.post(path, data={})
    check(outcome, response)


def test_every_entry_names_a_real_pattern():
    """A row for a URL that no longer exists is dead weight that hides a renamed one."""
    assert sorted(set(all_rows()) - set(ROUTES)) == []


def test_every_row_names_every_role():
    for route, row in all_rows().items():
        assert set(row.outcomes) == set(ROLES), route
