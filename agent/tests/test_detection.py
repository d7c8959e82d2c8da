"""The capture detector: what typed text, titles and addresses make a DetectedMatch, and how often."""

from datetime import UTC, datetime

import pytest

from safeguard_agent.detection import CaptureDetector, DetectedMatch, context_around, policy_ids_from_config
from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.library import config_specs
from safeguard_agent.keywords.types import KeywordSpec
from safeguard_agent.monitors.keyboard import Stroke
from safeguard_agent.platform.base import WindowInfo

SELF_HARM_ID = "6f1c1f7e-6a8e-4d3c-9a53-2b7d3f7f0a11"
WEAPONS_ID = "0d4a8a55-2f0b-4b8c-8f3e-91c1b7d4e6a2"
CONFIG = {
    "policies": [
        {
            "id": SELF_HARM_ID,
            "name": "Self-harm",
            "category": "self_harm",
            "illegal_content": False,
            "keywords": [{"id": 1, "text": "kill myself", "match_kind": "phrase", "severity": "severe"}],
        },
        {
            "id": WEAPONS_ID,
            "name": "Weapons",
            "category": "weapons",
            "illegal_content": False,
            "keywords": [{"id": 2, "text": "bomb", "match_kind": "word", "severity": "high"}],
        },
    ]
}
NOW = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
CHAT = WindowInfo(title="Chat - Discord", application="discord.exe", pid=10, window_id=1)
NOTES = WindowInfo(title="Untitled - Notepad", application="notepad.exe", pid=11, window_id=2)


@pytest.fixture(scope="module")
def engine() -> KeywordEngine:
    return KeywordEngine.build(*config_specs(CONFIG))


@pytest.fixture
def found() -> list[DetectedMatch]:
    return []


@pytest.fixture
def detector(engine, found) -> CaptureDetector:
    return CaptureDetector(
        lambda: engine,
        found.append,
        user="SCHOOL\\jsmith",
        policy_ids=lambda: policy_ids_from_config(CONFIG),
        clock=lambda: NOW,
    )


def type_into(detector: CaptureDetector, window: WindowInfo, text: str, *, password=None) -> None:
    named = {" ": "space", "\n": "enter", "\t": "tab"}
    for ch in text:
        stroke = Stroke(key=named[ch]) if ch in named else Stroke(char=ch)
        detector.keystroke(window, stroke, password=password)


def test_a_typed_phrase_becomes_a_detected_match_with_everything_a_capture_needs(detector, found):
    type_into(detector, CHAT, "honestly i want to kill myself tonight")

    assert found == [
        DetectedMatch(
            keyword="kill myself",
            policy_id=SELF_HARM_ID,
            policy_name="Self-harm",
            severity="severe",
            context="honestly i want to kill myself",
            application="discord.exe",
            window_title="Chat - Discord",
            url="",
            user="SCHOOL\\jsmith",
            occurred_at=NOW,
            source="typed",
        )
    ]


def test_the_user_may_be_read_when_a_match_is_made(engine, found):
    users = iter(["SCHOOL\\first", "SCHOOL\\second"])
    detector = CaptureDetector(lambda: engine, found.append, user=lambda: next(users))

    type_into(detector, CHAT, "bomb ")
    type_into(detector, NOTES, "bomb ")

    assert [m.user for m in found] == ["SCHOOL\\first", "SCHOOL\\second"]


def test_without_policy_ids_the_server_is_left_to_find_the_policy(engine, found):
    detector = CaptureDetector(lambda: engine, found.append)

    type_into(detector, CHAT, "bomb ")

    assert found[0].policy_id is None
    assert found[0].occurred_at.tzinfo is not None


def test_the_context_is_at_most_80_characters_around_the_match(detector, found):
    before = "we were talking about the history homework and then someone said that they would "
    type_into(detector, CHAT, before + "bomb the school tomorrow morning before the first lesson starts ok ")

    (match,) = found
    assert len(match.context) <= 80
    assert "bomb" in match.context
    assert match.context.endswith("bomb")  # reported as soon as the word was complete: nothing after yet
    assert before.endswith(match.context.removesuffix("bomb"))


def test_the_same_keyword_in_the_same_window_is_captured_once(detector, found):
    type_into(detector, CHAT, "bomb and another bomb and bomb again ")

    assert [m.keyword for m in found] == ["bomb"]


def test_the_same_keyword_in_another_window_is_captured_again(detector, found):
    type_into(detector, CHAT, "bomb ")
    type_into(detector, NOTES, "bomb ")

    assert [(m.keyword, m.window_title) for m in found] == [("bomb", "Chat - Discord"), ("bomb", "Untitled - Notepad")]


def test_different_keywords_in_one_window_are_each_captured(detector, found):
    type_into(detector, CHAT, "bomb and i want to kill myself ")

    assert [m.keyword for m in found] == ["bomb", "kill myself"]


def test_a_new_title_in_the_same_window_captures_the_keyword_again(detector, found):
    type_into(detector, CHAT, "bomb ")
    renamed = WindowInfo(title="General - Discord", application="discord.exe", pid=10, window_id=1)

    type_into(detector, renamed, "bomb ")

    assert [m.window_title for m in found] == ["Chat - Discord", "General - Discord"]


def test_clearing_the_text_with_ctrl_a_captures_the_keyword_again(detector, found):
    type_into(detector, CHAT, "bomb ")
    detector.keystroke(CHAT, Stroke(char="a", ctrl=True))
    detector.keystroke(CHAT, Stroke(key="backspace"))

    type_into(detector, CHAT, "bomb ")

    assert len(found) == 2


def test_a_keyword_in_a_window_title_is_detected_when_the_window_is_seen(detector, found):
    video = WindowInfo(
        title="how to make a bomb - YouTube - Google Chrome", application="chrome.exe", pid=3, window_id=9
    )

    detector.window_seen(video, url="https://www.youtube.com/watch?v=abc")

    (match,) = found
    assert (match.keyword, match.source, match.application) == ("bomb", "title", "chrome.exe")
    assert match.url == "https://www.youtube.com/watch?v=abc"
    assert match.context == "how to make a bomb - YouTube - Google Chrome"


def test_a_keyword_in_a_browser_address_is_detected(detector, found):
    page = WindowInfo(title="Search - Google Chrome", application="chrome.exe", pid=3, window_id=9)

    detector.window_seen(page, url="https://www.google.com/search?q=how+to+kill+myself")

    assert [(m.keyword, m.source) for m in found] == [("kill myself", "url")]


def test_a_title_is_scanned_again_only_when_it_changes(engine, found):
    scans = []

    class CountingEngine:
        def scan(self, text):
            scans.append(text)
            return engine.scan(text)

        def incremental(self):
            return engine.incremental()

    detector = CaptureDetector(lambda: counting, found.append)
    counting = CountingEngine()

    for _ in range(5):
        detector.window_seen(CHAT)
    detector.window_seen(NOTES)
    detector.window_seen(CHAT)

    assert scans == ["Chat - Discord", "Untitled - Notepad"]


def test_a_keyword_in_the_title_is_not_captured_again_when_typed_in_that_window(detector, found):
    page = WindowInfo(title="bomb disposal - Wikipedia - Mozilla Firefox", application="firefox", pid=4, window_id=5)
    detector.window_seen(page)

    type_into(detector, page, "bomb disposal robots ")

    assert [m.source for m in found] == ["title"]


def test_typed_matches_carry_the_address_the_platform_reports(engine, found):
    detector = CaptureDetector(lambda: engine, found.append, url_provider=lambda window: "https://chat.example/room/7")

    type_into(detector, CHAT, "bomb ")

    assert found[0].url == "https://chat.example/room/7"


def test_a_failing_address_lookup_costs_only_the_address(engine, found):
    def broken(window):
        raise OSError("the OS hiccupped")

    detector = CaptureDetector(lambda: engine, found.append, url_provider=broken)

    type_into(detector, CHAT, "bomb ")

    assert [(m.keyword, m.url) for m in found] == [("bomb", "")]


def test_flush_reports_a_keyword_typed_last_without_a_space(detector, found):
    type_into(detector, CHAT, "search for bomb")
    assert found == []

    detector.flush()

    assert [m.keyword for m in found] == ["bomb"]


def test_keys_in_a_password_field_never_match(detector, found):
    type_into(detector, CHAT, "bomb ", password=True)

    assert found == []
    assert detector.buffered_text(CHAT.window_id) == ""


def test_paused_detection_matches_nothing_and_forgets_what_was_typed(detector, found):
    type_into(detector, CHAT, "i want to kill ")

    detector.paused = True
    type_into(detector, CHAT, "myself bomb ")
    detector.window_seen(WindowInfo(title="bomb", application="x", pid=1, window_id=7))
    detector.flush()

    assert found == []
    assert detector.buffered_text(CHAT.window_id) == ""

    detector.paused = False
    type_into(detector, CHAT, "myself ")
    assert found == []  # "kill " was typed before the pause and is gone
    type_into(detector, CHAT, "bomb ")
    assert [m.keyword for m in found] == ["bomb"]


def test_no_policy_yet_means_no_detection(found):
    detector = CaptureDetector(lambda: None, found.append)

    type_into(detector, CHAT, "bomb ")
    detector.window_seen(WindowInfo(title="bomb", application="x", pid=1, window_id=7))

    assert found == []


def test_a_failing_callback_does_not_stop_detection(engine):
    delivered = []

    def on_detection(match):
        delivered.append(match.keyword)
        raise RuntimeError("the outbox is full")

    detector = CaptureDetector(lambda: engine, on_detection)

    type_into(detector, CHAT, "bomb ")
    type_into(detector, CHAT, "kill myself ")

    assert delivered == ["bomb", "kill myself"]


def test_a_policy_change_applies_to_the_next_keystroke(found):
    engines = {"current": KeywordEngine.build([KeywordSpec(text="bomb", policy="Weapons")])}
    detector = CaptureDetector(lambda: engines["current"], found.append)
    type_into(detector, CHAT, "bomb ")

    engines["current"] = KeywordEngine.build([KeywordSpec(text="vape", policy="Drugs")])
    type_into(detector, CHAT, "bomb vape ")

    assert [m.keyword for m in found] == ["bomb", "vape"]


# --- context_around -----------------------------------------------------------------------------------
def test_context_keeps_short_text_whole():
    assert context_around("i will kill myself", 7, 18) == "i will kill myself"


def test_context_centres_the_match_and_stays_within_the_limit():
    text = "a" * 50 + " alpha beta gamma MATCH delta epsilon zeta " + "b" * 50
    start = text.index("MATCH")

    context = context_around(text, start, start + 5, limit=40)

    assert len(context) <= 40
    assert "gamma MATCH delta" in context


def test_context_gives_unused_room_on_one_side_to_the_other():
    text = "MATCH " + "word " * 30
    context = context_around(text, 0, 5, limit=40)

    assert context.startswith("MATCH word")
    assert 30 <= len(context) <= 40


def test_context_is_one_line():
    assert context_around("first line\nbomb\tthird", 11, 15) == "first line bomb third"


def test_context_of_a_match_longer_than_the_limit_is_cut():
    assert len(context_around("x" * 200, 0, 200, limit=80)) == 80


def test_policy_ids_come_from_the_config():
    assert policy_ids_from_config(CONFIG) == {"Self-harm": SELF_HARM_ID, "Weapons": WEAPONS_ID}
    assert policy_ids_from_config({}) == {}
