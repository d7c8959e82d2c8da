"""The shipped keyword library: installing it into the database, and what it must (not) contain."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from safeguard.policies.library import (
    PlainListError,
    engine_for_policies,
    install_default_library,
    keyword_import_plain_list,
)
from safeguard.policies.models import AllowPhrase, Keyword, KeywordPolicy, KeywordSource, Severity
from safeguard_agent.keywords.library import load_library
from tests.factories import KeywordFactory, KeywordPolicyFactory

# Flagging pupils for who they are is a known harm in this field: none of these may be a keyword on its own.
# (They may appear inside a phrase that is itself a threat, such as "kill all muslims".)
IDENTITY_WORDS = {
    # sexual orientation and gender identity
    "gay", "gays", "lesbian", "lesbians", "bisexual", "bi", "queer", "homosexual", "lgbt", "lgbtq", "lgbtq+",
    "trans", "transgender", "transsexual", "nonbinary", "non binary", "non-binary", "enby", "intersex", "asexual",
    "pansexual", "straight", "heterosexual", "drag queen",
    # religion and belief
    "muslim", "muslims", "islam", "islamic", "jew", "jews", "jewish", "judaism", "christian", "christians",
    "christianity", "hindu", "hindus", "sikh", "sikhs", "buddhist", "atheist", "catholic", "mosque", "synagogue",
    "church", "quran", "koran", "bible", "allah", "jihad", "hijab", "burka", "niqab", "turban",
    # ethnicity, nationality and race
    "black", "white", "asian", "arab", "arabs", "african", "indian", "pakistani", "chinese", "polish", "romanian",
    "gypsy", "traveller", "roma", "irish", "mexican", "immigrant", "immigrants", "refugee", "refugees",
    "migrant", "migrants", "palestine", "palestinian", "israel", "israeli",
    # disability and sex as identities
    "disabled", "autistic", "autism", "deaf", "blind", "woman", "women", "girl", "boy", "feminist",
}  # fmt: skip


def _library_terms() -> list[str]:
    return [keyword.text.lower() for policy in load_library() for keyword in policy.keywords]


def test_library_ships_at_least_300_terms_across_the_ten_categories_and_an_empty_illegal_content_policy():
    policies = load_library()
    by_category = {policy.category: policy for policy in policies}
    assert set(by_category) == {
        "self_harm", "suicide", "eating_disorders", "bullying", "radicalisation", "grooming",
        "drugs", "weapons", "adult_content", "gambling", "illegal_content",
    }  # fmt: skip
    assert len(_library_terms()) >= 300
    for category, policy in by_category.items():
        assert policy.language == "en"
        if category == "illegal_content":
            assert policy.keywords == () and policy.is_illegal_content
        else:
            assert len(policy.keywords) >= 20, category
            assert not policy.is_illegal_content
            assert {keyword.severity for keyword in policy.keywords} <= set(Severity.values)


def test_no_identity_term_is_a_keyword_on_its_own():
    offending = sorted(set(_library_terms()) & IDENTITY_WORDS)
    assert offending == []


@pytest.mark.django_db
def test_install_creates_policies_keywords_and_allow_phrases_and_a_second_install_changes_nothing():
    first = install_default_library()
    counts = (KeywordPolicy.objects.count(), Keyword.objects.count(), AllowPhrase.objects.count())
    assert first.policies_created == 11
    assert first.keywords_created == len(_library_terms()) == counts[1]
    assert counts[1] >= 300
    assert first.allow_phrases_created == counts[2] > 0

    second = install_default_library()
    assert (KeywordPolicy.objects.count(), Keyword.objects.count(), AllowPhrase.objects.count()) == counts
    assert second.policies_created == second.keywords_created == second.allow_phrases_created == 0
    assert second.policies_updated == 0
    assert second.keywords_kept == counts[1]
    assert set(Keyword.objects.values_list("source", flat=True)) == {KeywordSource.LIBRARY}


@pytest.mark.django_db
def test_illegal_content_policy_is_created_empty_and_flagged():
    install_default_library()
    policy = KeywordPolicy.objects.get(name="Illegal content")
    assert policy.is_illegal_content
    assert policy.category == "illegal_content"
    assert policy.keywords.count() == 0


@pytest.mark.django_db
def test_reinstall_keeps_admin_keywords_and_admin_tuning_of_shipped_keywords():
    install_default_library()
    suicide = KeywordPolicy.objects.get(name="Suicide")
    own = KeywordFactory(policy=suicide, text="our own term", severity=Severity.LOW)
    tuned = Keyword.objects.get(policy=suicide, text="suicide")
    tuned.severity = Severity.SEVERE
    tuned.enabled = False
    tuned.save()
    suicide.description = "edited by an admin"
    suicide.save()

    result = install_default_library()

    assert Keyword.objects.filter(pk=own.pk).exists()
    tuned.refresh_from_db()
    assert (tuned.severity, tuned.enabled) == (Severity.SEVERE, False)
    suicide.refresh_from_db()
    assert suicide.description != "edited by an admin"  # the shipped description is restored
    assert result.policies_updated == 1 and result.keywords_created == 0


@pytest.mark.django_db
def test_library_keywords_keep_their_combination_rules_and_spaced_letter_opt_in():
    install_default_library()
    weed = Keyword.objects.get(policy__name="Drugs and alcohol", text="weed")
    assert "smoke" in weed.requires_nearby and weed.nearby_window == 5
    assert Keyword.objects.get(policy__name="Suicide", text="suicide").join_spaced_letters


@pytest.mark.django_db
def test_engine_for_policies_matches_what_the_database_holds_including_disabled_rows():
    install_default_library()
    engine = engine_for_policies(KeywordPolicy.objects.all())
    [match] = engine.scan("honestly I want to k1ll mys3lf")
    keyword = Keyword.objects.get(pk=match.keyword_id)
    assert (keyword.text, match.policy, match.category) == ("kill myself", "Suicide", "suicide")

    Keyword.objects.filter(pk=keyword.pk).update(enabled=False)
    assert engine_for_policies(KeywordPolicy.objects.all()).scan("honestly I want to k1ll mys3lf") == []
    KeywordPolicy.objects.filter(name="Weapons and violence").update(enabled=False)
    assert engine_for_policies(KeywordPolicy.objects.all()).scan("bring a gun to school") == []


@pytest.mark.django_db
def test_engine_uses_the_policys_allow_phrases_from_the_database():
    policy = KeywordPolicyFactory(name="Test policy")
    KeywordFactory(policy=policy, text="exam stress")
    assert len(engine_for_policies().scan("so much exam stress")) == 1
    AllowPhrase.objects.create(policy=policy, text="so much exam stress")
    assert engine_for_policies().scan("so much exam stress") == []


@pytest.mark.django_db
def test_plain_list_import_adds_each_line_once_and_skips_comments_and_known_terms():
    policy = KeywordPolicyFactory(name="Illegal content", is_illegal_content=True)
    KeywordFactory(policy=policy, text="Already There")
    lines = io.StringIO("# licensed list v3\n\nfirst term\nsecondterm\nalready there\nFIRST TERM\n")
    result = keyword_import_plain_list(policy=policy, lines=lines)
    assert (result.created, result.unchanged) == (2, 1)
    assert sorted(policy.keywords.values_list("text", "match_kind", "source")) == [
        ("Already There", "word", "admin"),
        ("first term", "phrase", "import"),
        ("secondterm", "word", "import"),
    ]


@pytest.mark.django_db
def test_plain_list_import_is_all_or_nothing():
    policy = KeywordPolicyFactory(name="Illegal content")
    with pytest.raises(PlainListError, match="line 2"):
        keyword_import_plain_list(policy=policy, lines=["fine", "x" * 201, "also fine"])
    assert policy.keywords.count() == 0


@pytest.mark.django_db
def test_load_keyword_library_command_installs_and_reports():
    out = io.StringIO()
    call_command("load_keyword_library", stdout=out)
    assert "keywords: " in out.getvalue()
    assert Keyword.objects.count() == len(_library_terms())


@pytest.mark.django_db
def test_import_keywords_command_reads_a_plain_list_into_a_policy(tmp_path):
    install_default_library()
    listing = tmp_path / "licensed.txt"
    listing.write_text("# licensed terms\nterm one\ntermtwo\n", encoding="utf-8")
    out = io.StringIO()
    call_command("import_keywords", "--policy", "Illegal content", str(listing), stdout=out)
    policy = KeywordPolicy.objects.get(name="Illegal content")
    assert sorted(policy.keywords.values_list("text", flat=True)) == ["term one", "termtwo"]
    assert "2 created" in out.getvalue()


@pytest.mark.django_db
def test_import_keywords_command_reads_csv_all_or_nothing(tmp_path):
    policy = KeywordPolicyFactory(name="Custom")
    good = tmp_path / "good.csv"
    good.write_text("text,match_kind,severity\nfirst,word,low\nsecond phrase,phrase,severe\n", encoding="utf-8")
    call_command("import_keywords", "--policy", "Custom", str(good), stdout=io.StringIO())
    assert sorted(policy.keywords.values_list("text", "severity")) == [("first", "low"), ("second phrase", "severe")]

    bad = tmp_path / "bad.csv"
    bad.write_text("text,match_kind,severity\nthird,word,low\nfourth,word,apocalyptic\n", encoding="utf-8")
    with pytest.raises(CommandError, match="Nothing imported"):
        call_command("import_keywords", "--policy", "Custom", str(bad), stdout=io.StringIO())
    assert policy.keywords.count() == 2


@pytest.mark.django_db
def test_import_keywords_command_refuses_an_unknown_policy(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("x\n", encoding="utf-8")
    with pytest.raises(CommandError, match="No keyword policy"):
        call_command("import_keywords", "--policy", "Nope", str(listing), stdout=io.StringIO())
