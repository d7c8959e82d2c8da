"""The per-window keystroke buffers: key presses become the text being typed, matched as it is typed.

Pure logic, driven by synthetic key presses (`Stroke`s); the real pynput listener is in test_keyboard_x11.py.
"""

from types import SimpleNamespace

import pytest

from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.types import KeywordSpec
from safeguard_agent.monitors.keyboard import Stroke, WindowBuffers, stroke_from_pynput

CHAT, NOTES = 101, 202


@pytest.fixture(scope="module")
def engine() -> KeywordEngine:
    return KeywordEngine.build(
        [
            KeywordSpec(text="kill myself", policy="Self-harm", severity="severe", match_kind="phrase"),
            KeywordSpec(text="bomb", policy="Weapons", severity="high"),
        ]
    )


def strokes(text: str) -> list[Stroke]:
    """The presses that type `text`: characters, space, enter ("\n") and tab ("\t")."""
    named = {" ": "space", "\n": "enter", "\t": "tab"}
    return [Stroke(key=named[ch]) if ch in named else Stroke(char=ch) for ch in text]


def press(buffers: WindowBuffers, engine, window: int, *keys: Stroke, password=None) -> list[tuple[int, str]]:
    """Press the keys in `window`; the (window, keyword) of every match they complete, in order."""
    found = []
    for key in keys:
        for typed in buffers.stroke(window, key, engine, password=password):
            found += [(typed.window_id, match.keyword) for match in typed.matches]
    return found


def type_(buffers, engine, window, text, password=None):
    return press(buffers, engine, window, *strokes(text), password=password)


def test_a_phrase_is_reported_when_the_character_after_it_shows_it_is_complete(engine):
    buffers = WindowBuffers()

    assert type_(buffers, engine, CHAT, "i want to kill myself") == []  # "myselfish" is still possible
    assert type_(buffers, engine, CHAT, " ") == [(CHAT, "kill myself")]
    assert buffers.text(CHAT) == "i want to kill myself "


def test_the_match_carries_offsets_into_the_buffer_text_for_its_context(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "hello there, i will kill mysel")

    (typed,) = buffers.stroke(CHAT, Stroke(char="f"), engine, password=None) + buffers.stroke(
        CHAT, Stroke(key="space"), engine, password=None
    )

    (match,) = typed.matches
    assert typed.text[match.start - typed.offset : match.end - typed.offset] == "kill myself"


def test_backspace_corrects_a_typo_into_a_keyword(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "kill mysrlf")

    found = press(buffers, engine, CHAT, *[Stroke(key="backspace")] * 3) + type_(buffers, engine, CHAT, "elf ")

    assert found == [(CHAT, "kill myself")]
    assert buffers.text(CHAT) == "kill myself "


def test_backspace_removes_a_keyword_before_it_was_finished(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "bomb")

    found = press(buffers, engine, CHAT, *[Stroke(key="backspace")] * 4) + type_(buffers, engine, CHAT, "book ")

    assert found == []
    assert buffers.text(CHAT) == "book "


def test_ctrl_backspace_deletes_the_last_word_and_the_spaces_after_it(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "i will kill yourself  ")

    press(buffers, engine, CHAT, Stroke(key="backspace", ctrl=True))
    assert buffers.text(CHAT) == "i will kill "
    assert type_(buffers, engine, CHAT, "myself ") == [(CHAT, "kill myself")]


def test_enter_is_a_newline_and_reports_a_keyword_that_ends_the_line(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "found a bomb")

    assert press(buffers, engine, CHAT, Stroke(key="enter")) == [(CHAT, "bomb")]
    assert buffers.text(CHAT) == "found a bomb\n"


def test_tab_is_a_separator_like_a_space(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "bomb")

    assert press(buffers, engine, CHAT, Stroke(key="tab")) == [(CHAT, "bomb")]
    assert buffers.text(CHAT) == "bomb "


def test_each_window_has_its_own_buffer_so_words_in_two_windows_never_join(engine):
    buffers = WindowBuffers()

    found = type_(buffers, engine, CHAT, "kill ") + type_(buffers, engine, NOTES, "myself ")

    assert found == []
    assert buffers.text(CHAT) == "kill "
    assert buffers.text(NOTES) == "myself "


def test_moving_the_focus_reports_the_keyword_at_the_end_of_the_window_left(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "where is the bomb")

    assert type_(buffers, engine, NOTES, "x") == [(CHAT, "bomb")]


def test_coming_back_to_a_window_continues_its_text(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "i want to kill ")
    type_(buffers, engine, NOTES, "homework ")

    assert type_(buffers, engine, CHAT, "myself ") == [(CHAT, "kill myself")]


def test_keys_typed_into_a_password_field_are_not_buffered(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "user: kill")

    assert type_(buffers, engine, CHAT, "Hunter2bomb ", password=True) == []
    assert "Hunter2" not in buffers.text(CHAT)
    assert buffers.text(CHAT) == "user: kill"


def test_text_before_and_after_a_password_field_does_not_run_together(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "kill")
    type_(buffers, engine, CHAT, "secret", password=True)

    assert type_(buffers, engine, CHAT, " myself ") == []
    assert buffers.text(CHAT) == " myself "


def test_when_the_platform_cannot_tell_keys_are_buffered(engine):
    buffers = WindowBuffers()

    assert type_(buffers, engine, CHAT, "bomb ", password=None) == [(CHAT, "bomb")]
    assert type_(buffers, engine, NOTES, "bomb ", password=False) == [(NOTES, "bomb")]


def test_ctrl_a_then_typing_replaces_the_whole_text(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "i will kill ")

    press(buffers, engine, CHAT, Stroke(char="a", ctrl=True))
    found = type_(buffers, engine, CHAT, "myself ")

    assert found == []
    assert buffers.text(CHAT) == "myself "


def test_ctrl_a_then_backspace_clears_the_text_and_says_so(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "i will kill ")
    press(buffers, engine, CHAT, Stroke(char="a", ctrl=True))

    (typed,) = buffers.stroke(CHAT, Stroke(key="backspace"), engine, password=None)

    assert typed.reset is True
    assert buffers.text(CHAT) == ""


def test_ctrl_a_then_a_copy_and_shift_still_replaces_the_text_on_the_next_key(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "i will kill")
    press(buffers, engine, CHAT, Stroke(char="a", ctrl=True), Stroke(char="c", ctrl=True), Stroke(key="shift"))

    type_(buffers, engine, CHAT, "X")

    assert buffers.text(CHAT) == "X"


def test_an_arrow_key_after_ctrl_a_cancels_the_selection(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "i will kill")
    press(buffers, engine, CHAT, Stroke(char="a", ctrl=True), Stroke(key="end"))

    (typed,) = buffers.stroke(CHAT, Stroke(char="x"), engine, password=None) or [None]

    assert typed is None  # no reset reported: the selection was gone, "x" was simply typed
    assert buffers.text(CHAT) == "x"  # (the arrow itself started the text afresh)


def test_shortcuts_type_nothing_but_altgr_characters_are_text(engine):
    buffers = WindowBuffers()

    press(buffers, engine, CHAT, Stroke(char="c", ctrl=True), Stroke(char="f", alt=True))
    press(buffers, engine, CHAT, Stroke(char="@", ctrl=True, alt=True))  # AltGr+2 on Windows

    assert buffers.text(CHAT) == "@"


def test_arrow_keys_separate_what_was_typed_before_from_what_comes_after(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "kill")

    press(buffers, engine, CHAT, Stroke(key="left"))
    assert type_(buffers, engine, CHAT, " myself ") == []
    assert buffers.text(CHAT) == " myself "


def test_an_arrow_key_reports_a_keyword_that_ends_the_text(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "bomb")

    assert press(buffers, engine, CHAT, Stroke(key="up")) == [(CHAT, "bomb")]


def test_flush_reports_a_keyword_at_the_end_once(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "bomb")

    (typed,) = [buffers.flush(CHAT)]
    assert [m.keyword for m in typed.matches] == ["bomb"]
    assert buffers.flush(CHAT) is None
    assert type_(buffers, engine, CHAT, " ") == []


def test_only_the_most_recently_used_windows_keep_a_buffer(engine):
    buffers = WindowBuffers(max_windows=3)
    for window in (1, 2, 3):
        type_(buffers, engine, window, f"text {window}")
    type_(buffers, engine, 1, "!")  # window 1 used again: window 2 is now the least recent

    type_(buffers, engine, 4, "four")

    assert len(buffers) == 3
    assert 2 not in buffers
    assert buffers.text(1) == "text 1!"


def test_a_buffer_keeps_a_bounded_tail_of_what_was_typed(engine):
    buffers = WindowBuffers()

    type_(buffers, engine, CHAT, "lorem ipsum dolor sit amet " * 2000)
    found = type_(buffers, engine, CHAT, "then a bomb ")

    assert found == [(CHAT, "bomb")]
    assert len(buffers.text(CHAT)) < 5000
    assert buffers.text(CHAT).endswith("then a bomb ")


def test_a_new_policy_carries_the_typed_text_over(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "i will kill ")
    newer = KeywordEngine.build([KeywordSpec(text="kill myself", policy="Self-harm v2", match_kind="phrase")])

    found = type_(buffers, newer, CHAT, "myself ")

    assert found == [(CHAT, "kill myself")]


def test_clear_forgets_every_window(engine):
    buffers = WindowBuffers()
    type_(buffers, engine, CHAT, "kill ")
    type_(buffers, engine, NOTES, "kill ")

    buffers.clear()

    assert len(buffers) == 0
    assert type_(buffers, engine, CHAT, "myself ") == []


# --- pynput keys -> strokes (pynput itself needs a display: its key objects are stood in for) ----------
def test_pynput_character_keys_become_characters_with_their_modifiers():
    assert stroke_from_pynput(SimpleNamespace(char="a"), ctrl=False, alt=False) == Stroke(char="a")
    assert stroke_from_pynput(SimpleNamespace(char="é"), ctrl=False, alt=False) == Stroke(char="é")
    assert stroke_from_pynput(SimpleNamespace(char="c"), ctrl=True, alt=False) == Stroke(char="c", ctrl=True)


def test_x11_control_characters_become_ctrl_letters():
    assert stroke_from_pynput(SimpleNamespace(char="\x01"), ctrl=True, alt=False) == Stroke(char="a", ctrl=True)


def test_pynput_named_keys_become_named_strokes():
    assert stroke_from_pynput(SimpleNamespace(name="backspace"), ctrl=True, alt=False) == Stroke(
        key="backspace", ctrl=True
    )
    assert stroke_from_pynput(SimpleNamespace(name="enter"), ctrl=False, alt=False) == Stroke(key="enter")


def test_keys_with_only_a_virtual_key_code_type_nothing():
    assert stroke_from_pynput(SimpleNamespace(vk=0x1008FF11), ctrl=False, alt=False) is None
