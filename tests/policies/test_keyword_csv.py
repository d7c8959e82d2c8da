"""Importing and exporting a policy's keywords as CSV (safeguard.policies.services)."""

import csv
import io

import pytest

from safeguard.logs.models import AuditEntry
from safeguard.policies.models import Keyword
from safeguard.policies.services import (
    KEYWORD_CSV_MAX_BYTES,
    KeywordCsvError,
    keyword_export_csv,
    keyword_import_csv,
)
from tests.factories import KeywordFactory, KeywordPolicyFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


def upload(text: str, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


def keywords_of(policy) -> set[tuple]:
    return set(policy.keywords.values_list("text", "match_kind", "severity", "enabled"))


def import_errors(policy, text: str) -> list[str]:
    with pytest.raises(KeywordCsvError) as refused:
        keyword_import_csv(policy=policy, file=upload(text))
    return [str(error) for error in refused.value.errors]


def test_export_has_the_header_and_one_row_per_keyword_in_order():
    policy = KeywordPolicyFactory()
    KeywordFactory(policy=policy, text="self harm", match_kind="phrase", severity="severe")
    KeywordFactory(policy=policy, text="kms", match_kind="abbreviation", severity="high", enabled=False)
    KeywordFactory(text="another policy's keyword")
    rows = list(csv.reader(io.StringIO(keyword_export_csv(policy=policy))))
    assert rows == [
        ["text", "match_kind", "severity", "enabled"],
        ["kms", "abbreviation", "high", "false"],
        ["self harm", "phrase", "severe", "true"],
    ]


def test_export_then_import_into_another_policy_copies_every_keyword():
    source = KeywordPolicyFactory()
    KeywordFactory(policy=source, text="pro-ana", match_kind="word", severity="high")
    KeywordFactory(policy=source, text='he said "jump"', match_kind="phrase", severity="severe")
    KeywordFactory(policy=source, text="café, crème", match_kind="phrase", severity="low", enabled=False)
    KeywordFactory(policy=source, text="=HYPERLINK(evil)", match_kind="phrase", severity="medium")
    KeywordFactory(policy=source, text="-ve thoughts", match_kind="phrase", severity="medium")
    target = KeywordPolicyFactory()

    result = keyword_import_csv(policy=target, file=upload(keyword_export_csv(policy=source)))

    assert (result.created, result.updated, result.unchanged) == (5, 0, 0)
    assert keywords_of(target) == keywords_of(source)


def test_export_defuses_spreadsheet_formulas():
    policy = KeywordPolicyFactory()
    KeywordFactory(policy=policy, text="=cmd|calc", match_kind="phrase")
    KeywordFactory(policy=policy, text="@sum", match_kind="word")
    body = keyword_export_csv(policy=policy)
    assert "'=cmd|calc" in body and "'@sum" in body
    assert "\n=cmd" not in body and "\n@sum" not in body


def test_existing_keywords_are_updated_case_insensitively_not_duplicated():
    policy = KeywordPolicyFactory()
    KeywordFactory(policy=policy, text="Self Harm", match_kind="phrase", severity="medium")
    KeywordFactory(policy=policy, text="kms", match_kind="abbreviation", severity="high")
    KeywordFactory(policy=policy, text="untouched", severity="low")
    user = StaffUserFactory()

    result = keyword_import_csv(
        policy=policy,
        file=upload(
            "text,match_kind,severity,enabled\nself harm,phrase,severe,true\nKMS,abbreviation,high,true\nnew one,word,low,\n"
        ),
        imported_by=user,
    )

    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert keywords_of(policy) == {
        ("Self Harm", "phrase", "severe", True),
        ("kms", "abbreviation", "high", True),
        ("new one", "word", "low", True),
        ("untouched", "word", "low", True),
    }
    entry = AuditEntry.objects.get(action="policy.keywords_imported")
    assert entry.actor == user and entry.target_id == str(policy.uuid)
    assert entry.after == {"created": 1, "updated": 1, "unchanged": 1}


def test_a_bad_row_changes_nothing_and_every_bad_row_is_named():
    policy = KeywordPolicyFactory()
    KeywordFactory(policy=policy, text="kms", severity="high")
    before = keywords_of(policy)
    errors = import_errors(
        policy,
        "text,match_kind,severity,enabled\n"
        "kms,word,severe,true\n"  # row 2: fine (would update)
        "brand new,word,low,true\n"  # row 3: fine (would create)
        ",word,low,true\n"  # row 4: empty text
        "bad kind,regex,low,true\n"  # row 5: unknown match kind
        "bad severity,word,critical,maybe\n"  # row 6: two problems
        "BRAND NEW,phrase,high,true\n",  # row 7: repeats row 3
    )
    assert errors == [
        "Row 4: the keyword text is empty.",
        "Row 5: match_kind “regex” is not one of word, phrase, abbreviation.",
        "Row 6: severity “critical” is not one of low, medium, high, severe; enabled “maybe” is not true or false.",
        "Row 7: “BRAND NEW” is already on row 3.",
    ]
    assert keywords_of(policy) == before
    assert not AuditEntry.objects.exists()


def test_only_text_is_required_and_columns_may_come_in_any_order():
    policy = KeywordPolicyFactory()
    result = keyword_import_csv(policy=policy, file=upload("severity,text\nsevere,alpha\n,beta\n"))
    assert result.created == 2
    assert keywords_of(policy) == {("alpha", "word", "severe", True), ("beta", "word", "medium", True)}


def test_labels_and_spreadsheet_spellings_are_accepted():
    policy = KeywordPolicyFactory()
    keyword_import_csv(
        policy=policy,
        file=upload(
            "\ufeffText,Match_Kind,Severity,Enabled\r\nalpha,Phrase,SEVERE,No\r\n\r\nbeta,Abbreviation,Low,YES\r\n"
        ),
    )
    assert keywords_of(policy) == {("alpha", "phrase", "severe", False), ("beta", "abbreviation", "low", True)}


def test_row_numbers_count_the_header_and_blank_lines_as_a_spreadsheet_does():
    policy = KeywordPolicyFactory()
    errors = import_errors(policy, "text,severity\n\nfine,low\n\n   ,low\n")
    assert errors == ["Row 5: the keyword text is empty."]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "keyword,severity",
            "Row 1: the header must be text,match_kind,severity,enabled: it has no “text” column; "
            "unknown column(s) “keyword”.",
        ),
        ("text,text", "Row 1: the header must be text,match_kind,severity,enabled: repeated column(s) “text”."),
        ("text,colour", "Row 1: the header must be text,match_kind,severity,enabled: unknown column(s) “colour”."),
    ],
)
def test_a_wrong_header_is_refused(header, expected):
    assert import_errors(KeywordPolicyFactory(), f"{header}\nalpha,low\n") == [expected]


def test_more_cells_than_columns_is_refused():
    assert import_errors(KeywordPolicyFactory(), "text,severity\nalpha,low,extra\n") == [
        "Row 2: 3 cells, but the header has 2 columns."
    ]


def test_an_empty_file_is_refused():
    assert import_errors(KeywordPolicyFactory(), "") == [
        "The file is empty: it needs a header row text,match_kind,severity,enabled."
    ]


def test_a_file_that_is_not_utf8_is_refused():
    policy = KeywordPolicyFactory()
    with pytest.raises(KeywordCsvError) as refused:
        keyword_import_csv(policy=policy, file=upload("text\ncafé\n", encoding="cp1252"))
    assert "not UTF-8" in str(refused.value)
    assert not policy.keywords.exists()


def test_an_oversized_file_is_refused_before_parsing():
    policy = KeywordPolicyFactory()
    with pytest.raises(KeywordCsvError) as refused:
        keyword_import_csv(policy=policy, file=upload("text\n" + "a" * KEYWORD_CSV_MAX_BYTES))
    assert "larger than" in str(refused.value)


def test_too_long_keywords_and_control_characters_are_refused():
    errors = import_errors(KeywordPolicyFactory(), "text\n" + "x" * 201 + '\n"line\x07bell"\n')
    assert errors == [
        "Row 2: the keyword is longer than 200 characters.",
        "Row 3: the keyword contains a line break or control character.",
    ]


def test_import_accepts_text_as_well_as_bytes():
    policy = KeywordPolicyFactory()
    result = keyword_import_csv(policy=policy, file=io.StringIO("text\nalpha\n"))
    assert result.created == 1
    assert Keyword.objects.get(policy=policy).text == "alpha"
