"""Matching as a pupil types: each match reported once, when it is known to be a whole word."""

import random

from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.types import KeywordSpec


def typed(matcher, text: str) -> list:
    reported = []
    for char in text:
        reported.extend(matcher.feed(char))
    return reported


def test_a_match_is_reported_once_when_the_next_character_closes_the_word(library_engine):
    matcher = library_engine.incremental()
    assert typed(matcher, "i want to kill myself") == []  # "myselfie" is still possible
    [match] = matcher.feed(" ")
    assert (match.keyword, match.matched_text, match.start, match.end) == ("kill myself", "kill myself", 10, 21)
    assert typed(matcher, "and more words after it. ") == []


def test_flush_reports_a_match_that_ends_the_buffer(library_engine):
    matcher = library_engine.incremental()
    assert typed(matcher, "ugh kms") == []
    [match] = matcher.flush()
    assert match.keyword == "kms"
    assert matcher.flush() == []


def test_a_longer_word_typed_on_is_not_a_match(library_engine):
    matcher = library_engine.incremental()
    assert typed(matcher, "the suicides were in the history lesson") == []  # "suicide" never closed as a word
    assert matcher.flush() == []


def test_backspace_removes_characters_and_forgets_matches_it_deleted(library_engine):
    matcher = library_engine.incremental()
    typed(matcher, "kms ")
    assert matcher.text == "kms "
    matcher.backspace(4)
    assert matcher.text == ""
    [again] = typed(matcher, "kms ")  # typed again: a new event
    assert (again.start, again.end) == (0, 3)
    matcher.backspace(1)  # deleting only the space keeps the match: it was not deleted
    assert typed(matcher, ".") == []


def test_backspace_then_correction_can_make_a_match(library_engine):
    matcher = library_engine.incremental()
    typed(matcher, "i want to kill mysalf")
    matcher.backspace(3)
    assert [m.keyword for m in typed(matcher, "elf ")] == ["kill myself"]


def test_reset_starts_a_new_buffer(library_engine):
    matcher = library_engine.incremental()
    typed(matcher, "hello kill")
    matcher.reset()
    assert matcher.text == "" and matcher.length == 0
    assert typed(matcher, " myself ") == []


def test_disguised_and_stretched_typing_is_caught(library_engine):
    matcher = library_engine.incremental()
    keywords = [m.keyword for m in typed(matcher, "honestly suiciiiiide, k1ll mys3lf. s u i c i d e ")]
    assert keywords == ["suicide", "kill myself", "suicide"]


def test_offsets_stay_absolute_when_the_buffer_is_trimmed():
    engine = KeywordEngine.build([KeywordSpec(text="kms", policy="P", match_kind="abbreviation")])
    matcher = engine.incremental(keep_chars=1024)
    filler = "lorem ipsum dolor sit amet " * 200  # 5,400 characters: the buffer is trimmed on the way
    typed(matcher, filler)
    assert len(matcher.text) <= 2 * 1024 + 1
    [match] = typed(matcher, "kms ")
    assert (match.start, match.end) == (len(filler), len(filler) + 3)
    assert matcher.length == len(filler) + 4


def test_typing_finds_what_scanning_the_whole_text_finds(library_engine):
    rng = random.Random(7)
    words = ["hello", "kill", "myself", "kms", "the", "suicide", "suiciiide", "class", "smoking", "weed", "pro",
             "ana", "sooo", "funny", "k1ll", "mys3lf", "Scunthorpe", "self-harm", "don't", "want", "to", "live"]  # fmt: skip
    for _ in range(40):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40))) + " "
        matcher = library_engine.incremental()
        incremental = [(m.keyword, m.start, m.end) for m in typed(matcher, text) + matcher.flush()]
        whole = [(m.keyword, m.start, m.end) for m in library_engine.scan(text)]
        assert sorted(incremental) == sorted(whole), text


def test_the_rescanned_tail_is_bounded_whatever_the_buffer_length(library_engine):
    # The cost per keystroke is the scan of a tail of fixed size; check the size, not the time.
    scanned = []
    original = library_engine._find

    class Spy:
        def __getattr__(self, name):
            return getattr(library_engine, name)

        def _find(self, text, **kwargs):
            scanned.append(len(text))
            return original(text, **kwargs)

    from safeguard_agent.keywords.engine import IncrementalMatcher

    matcher = IncrementalMatcher(library_engine, keep_chars=20_000)
    matcher._engine = Spy()
    typed(matcher, "word " * 4_000)
    assert len(matcher.text) == 20_000
    assert max(scanned) <= library_engine.window_chars + 1
