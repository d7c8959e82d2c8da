"""Normalisation: every rule, and every normalised character traced back to the original text."""

from safeguard_agent.keywords import normalise as norm


def text_of(original: str) -> str:
    return norm.normalise(original).text.replace(norm.IL, "1")


def test_case_is_folded_with_unicode_casefold():
    assert text_of("SUICIDE") == "suicide"
    assert text_of("STRASSE") == text_of("straße") == "strase"  # ß casefolds to ss, then the run collapses


def test_accents_are_removed_whether_composed_or_combining():
    assert text_of("café") == "cafe"
    assert text_of("cafe\u0301") == "cafe"
    assert text_of("naïve") == "naive"


def test_compatibility_forms_fold_to_plain_letters():
    assert text_of("ｓｕｉｃｉｄｅ") == "suicide"  # full width
    assert text_of("𝐬𝐮𝐢𝐜𝐢𝐝𝐞") == "suicide"  # mathematical bold
    assert text_of("ⓢⓤⓘⓒⓘⓓⓔ") == "suicide"  # circled
    assert text_of("ﬁne") == "fine"  # ligature


def test_look_alike_letters_from_other_alphabets_read_as_latin():
    assert text_of("sуicide") == "syicide"  # Cyrillic у is Latin y
    assert text_of("ѕuісіdе") == "suicide"  # Cyrillic ѕ і е
    assert text_of("ꜱᴜɪᴄɪᴅᴇ") == "suicide"  # small capitals


def test_invisible_characters_vanish():
    assert text_of("su\u200bici\u00ad de") == "suici de"


def test_digits_read_as_letters_and_1_is_either_i_or_l():
    assert text_of("s3lf h4rm") == "self harm"
    assert text_of("5u1c1d3") == "su1c1de"
    assert norm.normalise("k1ll").text == "k" + norm.IL + "l"
    assert text_of("w33d 7ime 0k") == "wed time ok"


def test_symbols_read_as_letters_only_beside_letters():
    assert text_of("$uicide") == "suicide"
    assert text_of("m@ths") == "maths"
    assert text_of("k!ll") == "k1l"
    assert text_of("a|b") == "a1b"
    assert text_of("wow!") == "wow "  # '!' after a word is punctuation
    assert text_of("wow!!! ok") == "wow ok"
    assert text_of("costs $ 5") == "costs s"  # a lone '$' is punctuation, the lone 5 a digit read as s


def test_runs_of_a_letter_collapse_and_remember_their_length():
    result = norm.normalise("suiciiiide")
    assert result.text == "suicide"
    assert result.runs == [1, 1, 1, 1, 4, 1, 1]
    assert norm.normalise("kill").runs == [1, 1, 2]


def test_every_run_of_spaces_and_punctuation_becomes_one_gap():
    result = norm.normalise("kill...   --myself")
    assert result.text == "kil myself"
    gap = result.text.index(norm.GAP)
    assert result.runs[gap] == 8


def test_each_unit_maps_back_to_its_original_span():
    original = "Ｋ1LL  mÿ\u200bself!!"
    result = norm.normalise(original)
    for index, char in enumerate(result.text):
        span = original[result.starts[index] : result.ends[index]]
        assert span, (index, char)
    assert original[result.starts[0] : result.ends[0]] == "Ｋ"
    last_letter = result.text.rindex("f")
    assert original[result.starts[0] : result.ends[last_letter]] == "Ｋ1LL  mÿ\u200bself"


def test_steps_are_recorded_per_unit():
    result = norm.normalise("É5")
    assert result.flags[0] & norm.CASE and result.flags[0] & norm.ACCENT
    assert result.flags[1] & norm.LEET


def test_fast_form_keeps_one_character_per_character_and_agrees_with_the_exact_form_on_simple_text():
    for text in ["Hello, World! 10am", "Café — “quoted” ’tis", "naïve ﬁne", "Ｓｕｉｃｉｄｅ", "日本語のテキスト"]:
        fast = norm.fast_form(text)
        assert len(fast) == len(text)
    assert norm.fast_form("Hello, World! 10am") == "hello  world  ioam".replace("i", norm.IL)
    assert norm.fast_form("Café — x") == "cafe   x"
    assert norm.MARK in norm.fast_form("ﬁne")  # expands to two letters: the exact pass decides
    assert norm.MARK in norm.fast_form("cafe\u0301")  # combining accent vanishes
    # The placeholders' own code points in real text are ordinary control characters: gaps.
    assert norm.normalise("a\x01b\x02c").text == "a b c"
