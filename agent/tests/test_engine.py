"""The keyword engine, bullet by bullet of its specification (issue 4, section 1)."""

import random

import pytest
from conftest import engine_of

from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.types import AllowSpec, KeywordSpec


def found(engine: KeywordEngine, text: str) -> list[tuple[str, str]]:
    return [(match.keyword, match.matched_text) for match in engine.scan(text)]


# --- normalisation: disguised terms MUST match -----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "keyword", "matched"),
    [
        ("i want to k1ll mys3lf", "kill myself", "k1ll mys3lf"),
        ("I WANT TO KILL MYSELF", "kill myself", "KILL MYSELF"),
        ("thinking about s u i c i d e", "suicide", "s u i c i d e"),
        ("s.u.i.c.i.d.e", "suicide", "s.u.i.c.i.d.e"),
        ("s-u-i-c-i-d-e", "suicide", "s-u-i-c-i-d-e"),
        ("suiciiiide is the answer", "suicide", "suiciiiide"),
        ("$uicide", "suicide", "$uicide"),
        ("5u1c1d3", "suicide", "5u1c1d3"),
        ("ｓｕｉｃｉｄｅ", "suicide", "ｓｕｉｃｉｄｅ"),
        ("𝐬𝐮𝐢𝐜𝐢𝐝𝐞", "suicide", "𝐬𝐮𝐢𝐜𝐢𝐝𝐞"),
        ("sυicidé", "suicide", "sυicidé"),
        ("su\u200bicide", "suicide", "su\u200bicide"),
        ("gonna unalive myself", "unalive myself", "unalive myself"),
        ("u n a l i v e", "unalive", "u n a l i v e"),
        ("k!ll myself", "kill myself", "k!ll myself"),
        ("ki11 myself", "kill myself", "ki11 myself"),
        ("kiiiilllll myyyself", "kill myself", "kiiiilllll myyyself"),
        ("self-harm", "self harm", "self-harm"),
        ("s3lf h4rm", "self harm", "s3lf h4rm"),
        ("pr0 ana", "pro ana", "pr0 ana"),
        ("thinspooo", "thinspo", "thinspooo"),
    ],
)
def test_disguised_terms_match(library_engine, text, keyword, matched):
    assert (keyword, matched) in found(library_engine, text)


def test_spaced_letters_are_joined_only_where_a_keyword_opts_in():
    opted = KeywordSpec(text="kill", policy="Test", join_spaced=True)
    engine = KeywordEngine.build([opted, KeywordSpec(text="hurt", policy="Test")])
    assert found(engine, "k.i.l.l") == [("kill", "k.i.l.l")]
    assert found(engine, "k i l l") == [("kill", "k i l l")]
    assert found(engine, "h u r t") == []
    # single separators only: wider spacing is ordinary text ("a  b  c")
    assert found(engine, "k  i  l  l") == []


# --- whole-word boundaries: innocent words MUST NOT fire -------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "the class went to Scunthorpe",
        "the therapist in Essex ate a grapefruit",
        "she has great skills",
        "analyse the data",
        "assassin's creed and a bass guitar",
        "the cocktail party",
        "document the sextant",
        "basketball in the market with a ticket",
        "the method is homeopathic",
        "we begun the shotgun start",
        "Cooke and Pepsi",
        "as I said",
        "Ketchup",
    ],
)
def test_innocent_words_that_contain_keywords_do_not_fire(text):
    engine = engine_of("ass", "cunt", "rapist", "sex", "grape", "kill", "anal", "cock", "ket", "meth", "gun", "coke")
    assert engine.scan(text) == []


def test_library_does_not_fire_on_the_classic_innocent_words(library_engine):
    text = "class Scunthorpe therapist Essex grapefruit skills analyse assassin cocktail sextant basket"
    assert library_engine.scan(text) == []


def test_a_doubled_letter_is_a_different_word_but_a_stretched_one_is_not():
    engine = engine_of("ass", "coke")
    assert engine.scan("as if") == []
    assert engine.scan("Cooke") == []
    assert found(engine, "cooooke") == [("coke", "cooooke")]
    assert found(engine, "asssss") == [("ass", "asssss")]


def test_phrases_match_across_any_run_of_spaces_and_punctuation():
    engine = engine_of(KeywordSpec(text="kill myself", policy="Test", match_kind="phrase"))
    for text in [
        "kill myself",
        "kill  myself",
        "kill, myself",
        "kill... myself",
        "kill - myself",
        "kill\nmyself",
        "kill!!!!!!myself",
        "kill/\\_myself",
    ]:
        assert found(engine, text) == [("kill myself", text)], text
    assert engine.scan("killmyself") == []
    assert engine.scan("skill myselfie") == []


def test_abbreviations_match_as_whole_tokens_exactly_as_written():
    engine = engine_of(
        KeywordSpec(text="kms", policy="Test", match_kind="abbreviation"),
        KeywordSpec(text="kys", policy="Test", match_kind="abbreviation"),
    )
    assert found(engine, "ugh kms") == [("kms", "kms")]
    assert found(engine, "KYS.") == [("kys", "KYS")]
    for text in ["kmsx", "xkms", "km5", "k m s", "kmss", "kyss", "kms2"]:
        assert engine.scan(text) == [], text


def test_digits_only_count_as_letters_next_to_a_letter():
    engine = engine_of("tit", "sos", KeywordSpec(text="1488", policy="Test"), KeywordSpec(text="r34", policy="Test"))
    assert engine.scan("room 717 at 505") == []
    assert found(engine, "1488") == [("1488", "1488")]
    assert engine.scan("Rea") == []  # r34 needs its digits
    assert found(engine, "r34 stuff") == [("r34", "r34")]


def test_prefix_keywords_need_a_left_boundary_only():
    engine = engine_of("anorexi*")
    assert found(engine, "anorexic") == [("anorexi*", "anorexic")]
    assert found(engine, "anorexiiiia") == [("anorexi*", "anorexiiiia")]
    assert engine.scan("nonanorexic") == []


# --- exceptions -------------------------------------------------------------------------------------------
def test_an_allow_list_phrase_suppresses_hits_of_its_policy_inside_it():
    kill = KeywordSpec(text="kill", policy="Violence")
    exam = KeywordSpec(text="pass", policy="Other policy")
    allow = (AllowSpec(text="kill time", policy="Violence"), AllowSpec(text="pass the exam", policy="Violence"))
    engine = KeywordEngine.build([kill, exam], allow)
    assert engine.scan("just going to kill time") == []
    assert engine.scan("just going to k1ll   t1me") == []
    assert found(engine, "going to kill him") == [("kill", "kill")]
    # an allow phrase of one policy does not silence another policy
    assert found(engine, "pass the exam") == [("pass", "pass")]
    [suppressed] = engine.scan("kill time", include_suppressed=True)
    assert suppressed.suppressed_by == 'allow-list phrase "kill time"'


def test_an_allow_phrase_with_no_policy_applies_to_every_policy():
    engine = KeywordEngine.build([KeywordSpec(text="shoot", policy="A")], [AllowSpec(text="photo shoot")])
    assert engine.scan("the photo shoot") == []


# --- combination rules ------------------------------------------------------------------------------------
def test_a_keyword_that_requires_a_nearby_word_fires_only_with_it_within_the_window():
    weed = KeywordSpec(text="weed", policy="Drugs", requires_nearby=("smoke", "smoking", "bag"), window=3)
    engine = KeywordEngine.build([weed])
    assert engine.scan("we will weed the garden") == []
    assert found(engine, "smoking weed") == [("weed", "weed")]
    assert found(engine, "weed, then we smoke") == [("weed", "weed")]
    assert found(engine, "a bag of w33d") == [("weed", "w33d")]
    assert engine.scan("smoke alarms tested, then we weed the beds") == []  # 4 words apart
    assert found(engine, "sm0king the weeeed") == [("weed", "weeeed")]
    [silenced] = engine.scan("weed the garden", include_suppressed=True)
    assert silenced.suppressed_by.startswith("needs one of [smoke, smoking, bag] within 3 words")


def test_a_hit_inside_a_longer_hit_of_the_same_policy_is_one_match(library_engine):
    matches = library_engine.scan("i will commit suicide")
    assert [(m.keyword, m.policy) for m in matches] == [("commit suicide", "Suicide")]


# --- explanations -----------------------------------------------------------------------------------------
def test_every_match_explains_keyword_steps_and_original_span(library_engine):
    text = "honestly i want to K1LL   mys3lf"
    [match] = library_engine.scan(text)
    assert (match.keyword, match.policy, match.category, match.severity) == (
        "kill myself",
        "Suicide",
        "suicide",
        "severe",
    )
    assert text[match.start : match.end] == match.matched_text == "K1LL   mys3lf"
    assert match.steps == (
        "letter case ignored",
        "digits or symbols read as letters (1→i/l, 3→e)",
        "punctuation or extra spaces between words treated as one space",
    )
    assert match.explanation.startswith('"K1LL   mys3lf" matched phrase "kill myself" of policy "Suicide": ')
    [plain] = library_engine.scan("kms")
    assert plain.steps == () and plain.explanation.endswith("exactly as written")
    [stretched] = library_engine.scan("suiiiicide")
    assert stretched.steps == ("repeated letters collapsed",)


def test_offsets_point_at_the_original_text_after_expanding_and_vanishing_characters(library_engine):
    text = "ﬁne ß \u200b😀\ufe0f then: s\u0301uicide!"
    [match] = library_engine.scan(text)
    assert text[match.start : match.end] == "s\u0301uicide"
    assert "accents removed" in match.steps


def test_apostrophes_may_be_typed_or_left_out(library_engine):
    assert [m.keyword for m in library_engine.scan("i don't want to live")] == ["don't want to live"]
    assert [m.keyword for m in library_engine.scan("i dont want to live")] == ["don't want to live"]
    assert [m.keyword for m in library_engine.scan("i don’t want to live")] == ["don't want to live"]


# --- one engine, two passes: the fast pass must agree with the exact pass everywhere ----------------------
def test_fast_pass_agrees_with_the_exact_pass_on_random_tricky_text(library_engine):
    pieces = [
        "kill", "k1ll", "ki11", "myself", "mys3lf", "suicide", "suiciiide", "s u i c i d e", "kms", "KMS", "so",
        "sooo", "you're", "mature", "self", "harm", "self-harm", " ", "  ", "   ", "    ", ", ", "... ", "!", "!!!",
        "@", "$", "|", "\u200b", "é", "ß", "ﬁ", "\ufe0f", "😀", "class", "weed", "smoking", "coke", "line", "of",
        "diet", "don't", "dont", "want", "to", "live", "unalive", "u n a l i v e", "\n", "-", "1", "0", "3", "4",
        "5", "a", "i", "l", "anorexia", "pro", "ana", "kys", "r34", "1488", "www",
    ]  # fmt: skip
    rng = random.Random(20240531)
    engine = library_engine
    for _ in range(3000):
        text = "".join(rng.choice(pieces) + (" " if rng.random() < 0.6 else "") for _ in range(rng.randint(1, 14)))
        fast = engine._finish(text, engine._find(text), True)
        exact = engine._finish(text, engine._find(text, exact_only=True), True)
        assert sorted((m.keyword, m.start, m.end, m.suppressed_by) for m in fast) == sorted(
            (m.keyword, m.start, m.end, m.suppressed_by) for m in exact
        ), text


def test_building_rejects_bad_specs():
    with pytest.raises(ValueError):
        KeywordSpec(text="x", policy="P", severity="catastrophic")
    with pytest.raises(ValueError):
        KeywordSpec(text="x", policy="P", match_kind="regex")
    with pytest.raises(ValueError):
        KeywordSpec(text=" * ", policy="P")


def test_an_engine_with_no_keywords_matches_nothing():
    assert KeywordEngine.build([]).scan("kill myself") == []
