"""Per-keyword capture and false-positive counts in the admin, and the illegal-content terms kept from viewers."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from safeguard.captures.models import CaptureStatus
from safeguard.logs.models import AuditEntry
from safeguard.policies.models import Keyword, KeywordExclusion, KeywordPolicy
from tests.factories import CaptureFactory, KeywordExclusionFactory, KeywordFactory, KeywordPolicyFactory

FALSE_POSITIVE = CaptureStatus.RESOLVED_FALSE_POSITIVE


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def superuser_client(client, cast):
    client.force_login(cast.admin)
    return client


@pytest.fixture
def tuned(db):
    """'weed' fired 4 times, 3 of them false positives; 'kms' twice, none; 'quiet' never."""
    policy = KeywordPolicyFactory(name="Mixed")
    weed = KeywordFactory(policy=policy, text="weed")
    kms = KeywordFactory(policy=policy, text="kms")
    quiet = KeywordFactory(policy=policy, text="quiet")
    for status in (FALSE_POSITIVE, FALSE_POSITIVE, FALSE_POSITIVE, CaptureStatus.NEW):
        CaptureFactory(keyword=weed, status=status)
    CaptureFactory(keyword=kms, status=CaptureStatus.RESOLVED_ACTION)
    CaptureFactory(keyword=kms, status=CaptureStatus.UNDER_REVIEW)
    CaptureFactory(keyword=KeywordFactory(text="elsewhere"), status=FALSE_POSITIVE)  # another policy's
    return {"policy": policy, "weed": weed, "kms": kms, "quiet": quiet}


def rows(response) -> dict[str, tuple]:
    return {
        keyword.text: (keyword.capture_total, keyword.false_positive_total, keyword.false_positive_share)
        for keyword in response.context["cl"].result_list
    }


def test_the_keyword_list_counts_captures_and_false_positives(superuser_client, tuned):
    response = superuser_client.get(admin_url(Keyword, "changelist"), {"policy__id__exact": tuned["policy"].pk})
    assert rows(response) == {"weed": (4, 3, 0.75), "kms": (2, 0, 0.0), "quiet": (0, 0, None)}
    page = response.content.decode()
    assert '<td class="field-false_positive_rate">75%</td>' in page
    assert '<td class="field-false_positive_rate">—</td>' in page


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("capture_count", ["quiet", "kms", "weed"]),
        ("false_positive_count", ["kms", "quiet", "weed"]),
        ("false_positive_rate", ["kms", "weed"]),
    ],
)
def test_the_counts_sort(superuser_client, tuned, column, expected):
    url = admin_url(Keyword, "changelist")
    page = superuser_client.get(url, {"policy__id__exact": tuned["policy"].pk})
    index = page.context["cl"].list_display.index(column)
    ascending = superuser_client.get(url, {"policy__id__exact": tuned["policy"].pk, "o": f"{index}.1"})
    texts = [keyword.text for keyword in ascending.context["cl"].result_list]
    # A keyword without captures has no rate; where the database puts NULLs differs, so those are left out.
    if column == "false_positive_rate":
        texts = [text for text in texts if text != "quiet"]
    assert texts == expected
    descending = superuser_client.get(url, {"policy__id__exact": tuned["policy"].pk, "o": f"-{index}.1"})
    reversed_texts = [keyword.text for keyword in descending.context["cl"].result_list]
    if column == "false_positive_rate":
        reversed_texts = [text for text in reversed_texts if text != "quiet"]
    assert reversed_texts[0] == expected[-1]


def test_exclusions_do_not_multiply_the_counts(superuser_client, tuned):
    KeywordExclusionFactory(keyword=tuned["weed"])
    KeywordExclusionFactory(keyword=tuned["weed"])
    response = superuser_client.get(admin_url(Keyword, "changelist"), {"policy__id__exact": tuned["policy"].pk})
    assert rows(response)["weed"] == (4, 3, 0.75)


def test_the_policy_page_shows_the_counts_in_its_keyword_inline(superuser_client, tuned):
    response = superuser_client.get(admin_url(KeywordPolicy, "change", tuned["policy"].pk))
    assert response.status_code == 200
    page = response.content.decode()
    formset = next(f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "keywords")
    counts = {
        form.instance.text: (form.instance.capture_total, form.instance.false_positive_total)
        for form in formset.formset.forms
        if form.instance.pk
    }
    assert counts == {"weed": (4, 3), "kms": (2, 0), "quiet": (0, 0)}
    assert "75%" in page


# --- Illegal content: plain-list import, and terms kept from staff who may only view ------------


@pytest.fixture
def licensed(db):
    return KeywordPolicyFactory(name="Illegal content", category="illegal_content", is_illegal_content=True)


def test_the_import_page_takes_a_plain_list_for_illegal_content(superuser_client, licensed):
    url = admin_url(KeywordPolicy, "import_keywords", licensed.pk)
    page = superuser_client.get(url)
    assert page.context["form"]["list_format"].value() == "plain"
    upload = SimpleUploadedFile("list.txt", b"# licensed list v3\nalphaterm\n\nbeta term\nALPHATERM\n")
    response = superuser_client.post(url, {"file": upload, "list_format": "plain", "severity": "severe"})
    assert response.status_code == 302
    assert set(licensed.keywords.values_list("text", "match_kind", "severity", "source")) == {
        ("alphaterm", "word", "severe", "import"),
        ("beta term", "phrase", "severe", "import"),
    }
    entry = AuditEntry.objects.get(action="policy.keywords_imported")
    assert entry.after == {"created": 2, "updated": 0, "unchanged": 0}
    assert "alphaterm" not in entry.summary


def test_a_plain_list_post_without_a_format_still_imports_into_illegal_content(superuser_client, licensed):
    upload = SimpleUploadedFile("list.txt", b"gammaterm\n")
    response = superuser_client.post(admin_url(KeywordPolicy, "import_keywords", licensed.pk), {"file": upload})
    assert response.status_code == 302
    assert list(licensed.keywords.values_list("text", flat=True)) == ["gammaterm"]


def test_a_plain_list_that_is_not_utf8_is_refused(superuser_client, licensed):
    upload = SimpleUploadedFile("list.txt", "caf\xe9\n".encode("latin-1"))
    response = superuser_client.post(
        admin_url(KeywordPolicy, "import_keywords", licensed.pk), {"file": upload, "list_format": "plain"}
    )
    assert response.status_code == 200
    assert "not UTF-8" in response.content.decode()
    assert not licensed.keywords.exists()


def test_csv_still_imports_into_an_ordinary_policy(superuser_client):
    policy = KeywordPolicyFactory()
    upload = SimpleUploadedFile("k.csv", b"text,severity\nvape,low\n")
    response = superuser_client.post(
        admin_url(KeywordPolicy, "import_keywords", policy.pk), {"file": upload, "list_format": "csv"}
    )
    assert response.status_code == 302
    assert list(policy.keywords.values_list("text", "severity")) == [("vape", "low")]


@pytest.fixture
def viewer(client, cast):
    """Staff who may view policies and keywords (and add exclusions) but not change policies."""
    user = cast.outsider
    user.is_staff = True
    user.save()
    for codename in ("view_keywordpolicy", "view_keyword", "view_keywordexclusion", "add_keywordexclusion"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return client


def test_a_viewer_sees_illegal_terms_masked_and_cannot_open_export_search_or_pick_them(viewer, licensed):
    term = KeywordFactory(policy=licensed, text="secretterm")
    KeywordFactory(policy=KeywordPolicyFactory(name="Bullying"), text="loser")
    KeywordExclusionFactory(keyword=term)

    keyword_list = viewer.get(admin_url(Keyword, "changelist")).content.decode()
    assert "secretterm" not in keyword_list
    assert f"s\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022 (illegal-content term #{term.pk})" in keyword_list
    assert "loser" in keyword_list
    assert "secretterm" not in viewer.get(admin_url(KeywordExclusion, "changelist")).content.decode()

    assert viewer.get(admin_url(Keyword, "change", term.pk)).status_code == 403
    assert viewer.get(admin_url(KeywordPolicy, "export_keywords", licensed.pk)).status_code == 403
    policy_page = viewer.get(admin_url(KeywordPolicy, "change", licensed.pk))
    assert policy_page.status_code == 200
    assert "secretterm" not in policy_page.content.decode()

    searched = viewer.get(admin_url(Keyword, "changelist"), {"q": "secretterm"})
    assert list(searched.context["cl"].result_list) == []
    autocomplete = viewer.get(
        reverse("admin:autocomplete"),
        {"app_label": "policies", "model_name": "keywordexclusion", "field_name": "keyword", "term": ""},
    )
    assert autocomplete.status_code == 200
    assert "secretterm" not in autocomplete.content.decode()
    assert "loser" in autocomplete.content.decode()


def test_staff_who_may_change_policies_see_the_terms(superuser_client, licensed):
    term = KeywordFactory(policy=licensed, text="secretterm")
    assert "secretterm" in superuser_client.get(admin_url(Keyword, "changelist")).content.decode()
    assert superuser_client.get(admin_url(Keyword, "change", term.pk)).status_code == 200
    assert "secretterm" in superuser_client.get(admin_url(KeywordPolicy, "change", licensed.pk)).content.decode()
