"""The admin's "test text against policies" page: what matches and why, what was suppressed, escaped output."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from safeguard.policies.models import AllowPhrase
from tests.factories import KeywordExclusionFactory, KeywordFactory, KeywordPolicyFactory, UserGroupFactory

URL_NAME = "admin:policies_keywordpolicy_test_text"


@pytest.fixture
def url() -> str:
    return reverse(URL_NAME)


@pytest.fixture
def superuser_client(client, cast):
    client.force_login(cast.admin)
    return client


@pytest.fixture
def self_harm(db):
    policy = KeywordPolicyFactory(name="Self-harm", category="self_harm")
    KeywordFactory(policy=policy, text="kill myself", match_kind="phrase", severity="severe")
    KeywordFactory(policy=policy, text="kill", match_kind="word", severity="medium")
    KeywordFactory(policy=policy, text="kms", match_kind="abbreviation", severity="high")
    AllowPhrase.objects.create(policy=policy, text="kill time")
    return policy


def scan(client, url, text: str, **fields):
    response = client.post(url, {"text": text, **fields})
    assert response.status_code == 200, response.content[:500]
    return response


def test_the_changelist_links_to_the_page(superuser_client, url):
    page = superuser_client.get(reverse("admin:policies_keywordpolicy_changelist")).content.decode()
    assert f'href="{url}"' in page
    assert superuser_client.get(url).status_code == 200


def test_hostile_text_is_escaped_in_the_span_and_around_it(superuser_client, url, self_harm):
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)> kms <b onclick="steal()">'
    page = scan(superuser_client, url, hostile).content.decode()
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert '<b onclick="steal()">' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;b onclick=&quot;steal()&quot;&gt;" in page
    assert "<mark>kms</mark>" in page


def test_a_keyword_made_of_markup_is_escaped_too(superuser_client, url):
    KeywordFactory(policy=KeywordPolicyFactory(name="<i>Odd</i>"), text="pwned", match_kind="word")
    page = scan(superuser_client, url, "<u>pwned</u>").content.decode()
    assert "<i>Odd</i>" not in page
    assert "&lt;i&gt;Odd&lt;/i&gt;" in page
    assert "&lt;u&gt;<mark>pwned</mark>&lt;/u&gt;" in page


def test_a_disguised_phrase_shows_its_span_and_explanation(superuser_client, url, self_harm):
    response = scan(superuser_client, url, "honestly i want to k1ll   mys3lf tonight")
    matches = response.context["results"]["matches"]
    assert [(row["keyword"], row["policy"], row["severity"], row["matched"]) for row in matches] == [
        ("kill myself", "Self-harm", "severe", "k1ll   mys3lf")
    ]
    assert matches[0]["steps"] == [
        "digits or symbols read as letters (1→i/l, 3→e)",
        "punctuation or extra spaces between words treated as one space",
    ]
    page = response.content.decode()
    assert "<mark>k1ll   mys3lf</mark>" in page
    assert "<li>digits or symbols read as letters (1→i/l, 3→e)</li>" in page
    assert "&quot;k1ll   mys3lf&quot; matched phrase &quot;kill myself&quot;" in page


def test_an_allow_listed_phrase_shows_as_suppressed_with_the_reason(superuser_client, url, self_harm):
    response = scan(superuser_client, url, "we played cards just to kill time")
    results = response.context["results"]
    assert results["matches"] == []
    assert [(row["keyword"], row["suppressed_by"]) for row in results["suppressed"]] == [
        ("kill", 'allow-list phrase "kill time"')
    ]
    page = response.content.decode()
    assert "0 matches" in page
    assert "allow-list phrase &quot;kill time&quot;" in page
    assert "<mark>kill</mark> time" in page


def test_a_missing_nearby_word_shows_as_suppressed(superuser_client, url):
    drugs = KeywordPolicyFactory(name="Drugs", category="drugs")
    KeywordFactory(policy=drugs, text="weed", requires_nearby=["smoke", "smoking"], nearby_window=4)
    response = scan(superuser_client, url, "we pulled the weed out of the garden. later smoking weed again")
    results = response.context["results"]
    assert [row["matched"] for row in results["matches"]] == ["weed"]
    assert results["matches"][0]["start"] == len("we pulled the weed out of the garden. later smoking ")
    assert [row["suppressed_by"] for row in results["suppressed"]] == ["needs one of [smoke, smoking] within 4 words"]


def test_scanning_one_policy_or_a_groups_config(superuser_client, url, self_harm):
    other = KeywordPolicyFactory(name="Bullying", category="bullying")
    KeywordFactory(policy=other, text="loser")
    text = "kms you loser"

    def found(**fields) -> list[str]:
        return [row["keyword"] for row in scan(superuser_client, url, text, **fields).context["results"]["matches"]]

    assert found() == ["kms", "loser"]
    assert found(policy=other.pk) == ["loser"]
    group = UserGroupFactory(name="Drama club")
    KeywordExclusionFactory(group=group, keyword=self_harm.keywords.get(text="kms"), reason="Script rehearsals")
    assert found(group=group.pk) == ["loser"]
    assert found(group=group.pk, policy=self_harm.pk) == []


def test_disabled_policies_are_not_used(superuser_client, url):
    KeywordFactory(policy=KeywordPolicyFactory(name="Off", enabled=False), text="dormant")
    response = scan(superuser_client, url, "dormant")
    assert response.context["results"]["matches"] == []


def test_empty_text_is_refused(superuser_client, url):
    response = superuser_client.post(url, {"text": ""})
    assert response.status_code == 200
    assert response.context["results"] is None
    assert "This field is required." in response.content.decode()


def staff_with(cast, *codenames):
    user = cast.outsider
    user.is_staff = True
    user.save()
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_staff_need_the_view_permission(client, cast, url, self_harm):
    client.force_login(staff_with(cast))
    assert client.get(url).status_code == 403
    assert client.post(url, {"text": "kms"}).status_code == 403


def test_non_staff_are_sent_to_the_login_page(client, cast, url):
    client.force_login(cast.teacher9)
    response = client.get(url)
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_a_viewer_sees_illegal_content_matches_without_the_term(client, cast, url):
    licensed = KeywordPolicyFactory(name="Illegal content", category="illegal_content", is_illegal_content=True)
    KeywordFactory(policy=licensed, text="forbiddenterm", severity="severe")
    client.force_login(staff_with(cast, "view_keywordpolicy"))
    response = scan(client, url, "xyz forbiddenterm xyz")
    [row] = response.context["results"]["matches"]
    assert row["keyword"].startswith("f\u2022")
    assert row["explanation"] is None
    assert "forbiddenterm" not in response.content.decode().replace("xyz <mark>forbiddenterm</mark> xyz", "").replace(
        "xyz forbiddenterm xyz", ""
    )  # only the viewer's own text shows it

    client.force_login(cast.admin)
    assert scan(client, url, "forbiddenterm").context["results"]["matches"][0]["keyword"] == "forbiddenterm"
