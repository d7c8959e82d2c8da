"""The policies admin: every page loads, keywords inline, CSV export/import, agent settings, rules."""

from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile

from safeguard.policies.models import (
    ActionRule,
    AgentSettings,
    AlertRule,
    EscalationSettings,
    GroupPolicySetting,
    Keyword,
    KeywordExclusion,
    KeywordPolicy,
)
from tests.admin_pages import AdminPagesContract, admin_url
from tests.factories import (
    ActionRuleFactory,
    AlertRuleFactory,
    DeviceGroupFactory,
    EscalationContactFactory,
    GroupPolicySettingFactory,
    KeywordExclusionFactory,
    KeywordFactory,
    KeywordPolicyFactory,
)

# One saved object of each registered model. A newly registered model without an entry fails
# test_every_registered_model_is_covered.
OBJECT_MAKERS = {
    KeywordPolicy: lambda: KeywordFactory().policy,
    GroupPolicySetting: lambda: GroupPolicySettingFactory(),
    AgentSettings: AgentSettings.load,
    AlertRule: lambda: AlertRuleFactory(),
    ActionRule: lambda: ActionRuleFactory(),
    EscalationSettings: lambda: EscalationContactFactory().escalation,
    Keyword: lambda: KeywordFactory(),
    KeywordExclusion: lambda: KeywordExclusionFactory(),
}
# The agent settings are one row: the list opens it, and a second row cannot be added.
SINGLETONS = {AgentSettings}


class TestAdminPages(AdminPagesContract):
    app_label = "policies"
    object_makers = OBJECT_MAKERS
    singletons = frozenset(SINGLETONS)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def inline_management(prefix: str, total: int = 0, initial: int = 0) -> dict:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


# --- Keyword policies: list, search, inline -----------------------------------------------------


def test_policy_list_filters(superuser_client):
    self_harm = KeywordPolicyFactory(name="Self-harm", category="self_harm")
    illegal = KeywordPolicyFactory(name="Illegal", category="illegal_content", is_illegal_content=True)
    off = KeywordPolicyFactory(name="Off", category="gambling", enabled=False, applies_to_everyone=False)
    url = admin_url(KeywordPolicy, "changelist")

    def listed(params: dict) -> set:
        return set(superuser_client.get(url, params).context["cl"].result_list)

    assert listed({"category__exact": "self_harm"}) == {self_harm}
    assert listed({"is_illegal_content__exact": "1"}) == {illegal}
    assert listed({"enabled__exact": "0"}) == {off}
    assert listed({"applies_to_everyone__exact": "0"}) == {off}


def test_policy_search_finds_names_and_keyword_text_once(superuser_client):
    drugs = KeywordPolicyFactory(name="Drugs and alcohol", category="drugs")
    KeywordFactory(policy=drugs, text="weed")
    KeywordFactory(policy=drugs, text="weed killer", match_kind="phrase")
    bullying = KeywordPolicyFactory(name="Bullying", category="bullying")
    url = admin_url(KeywordPolicy, "changelist")
    assert list(superuser_client.get(url, {"q": "weed"}).context["cl"].result_list) == [drugs]
    assert list(superuser_client.get(url, {"q": "bully"}).context["cl"].result_list) == [bullying]


def policy_form(policy: KeywordPolicy, keyword_rows: list[dict], initial: int = 0) -> dict:
    data = {
        "name": policy.name,
        "category": policy.category,
        "language": "en",
        "description": "",
        "enabled": "on",
        "applies_to_everyone": "on",
        **inline_management("keywords", total=len(keyword_rows), initial=initial),
        **inline_management("group_settings"),
    }
    for index, row in enumerate(keyword_rows):
        for name, value in row.items():
            data[f"keywords-{index}-{name}"] = value
    return data


def test_inline_keywords_are_added(superuser_client):
    policy = KeywordPolicyFactory()
    response = superuser_client.post(
        admin_url(KeywordPolicy, "change", policy.pk),
        policy_form(
            policy,
            [
                {"text": "  kms  ", "match_kind": "abbreviation", "severity": "severe", "enabled": "on"},
                {"text": "end it all", "match_kind": "phrase", "severity": "high"},
            ],
        ),
    )
    assert response.status_code == 302
    assert set(policy.keywords.values_list("text", "match_kind", "severity", "enabled")) == {
        ("kms", "abbreviation", "severe", True),
        ("end it all", "phrase", "high", False),
    }


def test_inline_refuses_the_same_keyword_twice_in_any_case(superuser_client):
    policy = KeywordPolicyFactory()
    response = superuser_client.post(
        admin_url(KeywordPolicy, "change", policy.pk),
        policy_form(
            policy,
            [
                {"text": "Vape", "match_kind": "word", "severity": "low"},
                {"text": "vape", "match_kind": "word", "severity": "low"},
            ],
        ),
    )
    assert response.status_code == 200
    assert "is in this policy twice" in response.content.decode()
    assert not policy.keywords.exists()


# --- CSV export and import through the admin ----------------------------------------------------


def csv_upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("keywords.csv", text.encode(), content_type="text/csv")


def test_export_downloads_the_keywords_as_csv(superuser_client):
    policy = KeywordPolicyFactory(name="Self-harm & suicide")
    KeywordFactory(policy=policy, text="kms", match_kind="abbreviation", severity="severe")
    response = superuser_client.get(admin_url(KeywordPolicy, "export_keywords", policy.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="self-harm-suicide-keywords.csv"'
    assert (
        response.content.decode("utf-8-sig") == "text,match_kind,severity,enabled\r\nkms,abbreviation,severe,true\r\n"
    )


def test_change_page_links_to_export_and_import(superuser_client):
    policy = KeywordPolicyFactory()
    page = superuser_client.get(admin_url(KeywordPolicy, "change", policy.pk)).content.decode()
    assert admin_url(KeywordPolicy, "export_keywords", policy.pk) in page
    assert admin_url(KeywordPolicy, "import_keywords", policy.pk) in page


def test_export_then_import_round_trip_through_the_admin(superuser_client):
    source = KeywordPolicyFactory(name="Source")
    KeywordFactory(policy=source, text="pro ana", match_kind="phrase", severity="high")
    KeywordFactory(policy=source, text="thinspo", match_kind="word", severity="medium", enabled=False)
    KeywordFactory(policy=source, text="+1 tips", match_kind="phrase", severity="low")
    target = KeywordPolicyFactory(name="Target")
    KeywordFactory(policy=target, text="THINSPO", match_kind="word", severity="low")

    exported = superuser_client.get(admin_url(KeywordPolicy, "export_keywords", source.pk)).content.decode("utf-8")
    response = superuser_client.post(
        admin_url(KeywordPolicy, "import_keywords", target.pk), {"file": csv_upload(exported)}
    )

    assert response.status_code == 302
    assert response["Location"] == admin_url(KeywordPolicy, "change", target.pk)
    assert messages_of(response) == ["Keywords imported into Target: 2 created, 1 updated, 0 unchanged."]
    assert set(target.keywords.values_list("text", "match_kind", "severity", "enabled")) == {
        ("pro ana", "phrase", "high", True),
        ("THINSPO", "word", "medium", False),
        ("+1 tips", "phrase", "low", True),
    }


def test_import_with_a_bad_row_changes_nothing_and_names_the_row(superuser_client):
    policy = KeywordPolicyFactory()
    KeywordFactory(policy=policy, text="kms", severity="high")
    response = superuser_client.post(
        admin_url(KeywordPolicy, "import_keywords", policy.pk),
        {"file": csv_upload("text,match_kind,severity,enabled\nkms,word,low,true\nnew,word,extreme,true\n")},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing was imported" in page
    assert "Row 3: severity “extreme” is not one of low, medium, high, severe." in page
    assert list(policy.keywords.values_list("text", "severity")) == [("kms", "high")]


def test_import_page_loads_and_needs_a_file(superuser_client):
    policy = KeywordPolicyFactory()
    url = admin_url(KeywordPolicy, "import_keywords", policy.pk)
    assert superuser_client.get(url).status_code == 200
    response = superuser_client.post(url, {})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()


def test_import_needs_change_permission_and_export_view_permission(client, cast):
    policy = KeywordPolicyFactory()
    KeywordFactory(policy=policy, text="kms")
    viewer = cast.outsider
    viewer.is_staff = True
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_keywordpolicy"))
    client.force_login(viewer)
    assert client.get(admin_url(KeywordPolicy, "export_keywords", policy.pk)).status_code == 200
    response = client.post(admin_url(KeywordPolicy, "import_keywords", policy.pk), {"file": csv_upload("text\nx\n")})
    assert response.status_code == 403
    assert list(policy.keywords.values_list("text", flat=True)) == ["kms"]


# --- Agent settings, group settings, rules ------------------------------------------------------


def test_agent_settings_cannot_be_deleted(superuser_client):
    row = AgentSettings.load()
    assert superuser_client.get(admin_url(AgentSettings, "delete", row.pk)).status_code == 403
    assert superuser_client.post(admin_url(AgentSettings, "delete", row.pk), {"post": "yes"}).status_code == 403
    assert AgentSettings.objects.filter(pk=row.pk).exists()


def agent_settings_form(**changes) -> dict:
    data = {
        "thumbnail_interval_seconds": "10",
        "heartbeat_interval_seconds": "60",
        "config_refresh_seconds": "300",
        "recording_seconds": "30",
        "new_pin": "",
    }
    data.update(changes)
    return data


def test_agent_settings_pin_is_stored_hashed_and_never_shown(superuser_client):
    row = AgentSettings.load()
    url = admin_url(AgentSettings, "change", row.pk)
    response = superuser_client.post(url, agent_settings_form(new_pin="482916", recording_seconds="20"))
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.recording_seconds == 20
    assert row.disable_pin_hash and "482916" not in row.disable_pin_hash
    assert check_password("482916", row.disable_pin_hash)
    page = superuser_client.get(url).content.decode()
    assert "Set (stored as a hash)" in page
    assert row.disable_pin_hash not in page

    # Saving without a PIN keeps it; removing it clears it.
    superuser_client.post(url, agent_settings_form())
    row.refresh_from_db()
    assert check_password("482916", row.disable_pin_hash)
    superuser_client.post(url, agent_settings_form(clear_pin="on"))
    row.refresh_from_db()
    assert row.disable_pin_hash == ""


def test_agent_settings_pin_must_be_digits(superuser_client):
    row = AgentSettings.load()
    response = superuser_client.post(admin_url(AgentSettings, "change", row.pk), agent_settings_form(new_pin="12a"))
    assert response.status_code == 200
    assert "The PIN must be 4 to 12 digits." in response.content.decode()


def test_group_policy_setting_list_filters_by_mode(superuser_client):
    applied = GroupPolicySettingFactory(mode="apply")
    excluded = GroupPolicySettingFactory(mode="exclude")
    url = admin_url(GroupPolicySetting, "changelist")
    assert list(superuser_client.get(url, {"mode__exact": "exclude"}).context["cl"].result_list) == [excluded]
    assert list(superuser_client.get(url, {"mode__exact": "apply"}).context["cl"].result_list) == [applied]


def test_alert_rule_add_uses_filter_horizontal_and_saves_recipients(superuser_client, cast):
    policy = KeywordPolicyFactory()
    page = superuser_client.get(admin_url(AlertRule, "add")).content.decode()
    assert 'class="selectfilter"' in page or "selectfilter" in page
    response = superuser_client.post(
        admin_url(AlertRule, "add"),
        {
            "name": "Year 9 severe",
            "group": cast.year9.pk,
            "policies": [policy.pk],
            "min_severity": "severe",
            "recipients": [cast.lead.pk, cast.teacher9.pk],
            "extra_addresses": "",
            "digest": "immediate",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    rule = AlertRule.objects.get(name="Year 9 severe")
    assert set(rule.recipients.all()) == {cast.lead, cast.teacher9}
    assert list(rule.policies.all()) == [policy]


def test_action_rule_must_watch_a_user_group_and_do_something(superuser_client, cast):
    base = {"name": "Watch", "min_severity": "severe", "threshold": "50", "within_days": ""}
    refused = superuser_client.post(admin_url(ActionRule, "add"), {**base, "group": DeviceGroupFactory().pk})
    page = refused.content.decode()
    assert "choose a user group" in page
    assert "Choose a group to move people to, or notify staff" in page
    watch = cast.year10
    accepted = superuser_client.post(
        admin_url(ActionRule, "add"), {**base, "group": cast.year9.pk, "move_to_group": watch.pk, "enabled": "on"}
    )
    assert accepted.status_code == 302
    assert ActionRule.objects.get(name="Watch").move_to_group == watch
