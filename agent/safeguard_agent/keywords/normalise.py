"""Text normalisation for keyword matching, with every normalised character mapped back to the original.

Two forms of the same rules:

* `normalise(text)` — the exact form, one Python step per character. It folds case (NFKC casefold), accents,
  compatibility and look-alike letters, drops invisible characters, reads digits and symbols as letters
  (0→o, 1/!/|→i-or-l, 3→e, 4/@→a, 5/$→s, 7→t), collapses runs of a repeated letter, and turns every run of
  spaces and punctuation into one gap. It records each unit's original span, the run length it collapsed and
  which steps changed it, so a match can point at the original text and explain itself.

* `fast_form(text)` — a translation for the common case: it maps every character to exactly one
  character (so offsets stay 1:1 and need no map) and gives up, with `MARK`, on any character whose fold is
  not one character. The engine scans that form at C speed and sends only the small windows around
  anything unusual (a MARK, a leet symbol beside a letter, a run of three letters, a long punctuation run)
  through the exact form. Everything the translate table does, `normalise` does identically.

The letters i and l are ambiguous behind '1', '!' and '|', so those become `IL`, one character that stands
for either; the engine inserts keyword variants with IL in place of i or l.
"""

import codecs
import unicodedata
from dataclasses import dataclass

# Placeholders are ASCII control characters so the fast form of ASCII text stays ASCII (CPython's translate
# and bytes.translate are many times faster then). The same characters in the input fold to a gap.
IL = "\x01"  # '1', '!' or '|' read as a letter: i or l
MARK = "\x02"  # fast form only: "this character needs the exact path"
OTHER = "\x03"  # fast form only: a letter of another alphabet, which no ASCII keyword contains
GAP = " "

# Steps, as bit flags, in the order an explanation lists them.
CASE = 1
ACCENT = 2
COMPAT = 4
LOOKALIKE = 8
INVISIBLE = 16
LEET = 32
REPEAT = 64
SEPARATOR = 128
SPACED = 256

STEP_NAMES = {
    CASE: "letter case ignored",
    ACCENT: "accents removed",
    COMPAT: "styled, full-width or ligature characters folded",
    LOOKALIKE: "look-alike letters from other alphabets read as Latin",
    INVISIBLE: "invisible characters removed",
    LEET: "digits or symbols read as letters",
    REPEAT: "repeated letters collapsed",
    SEPARATOR: "punctuation or extra spaces between words treated as one space",
    SPACED: "spaced-out letters joined",
}

# Digits read as letters wherever they are (so a keyword with digits folds the same way as the text).
DIGIT_LEET = {"0": "o", "1": IL, "3": "e", "4": "a", "5": "s", "7": "t"}
# Symbols read as letters only beside a letter or digit ('k!ll', 'm@ths', '$uicide'), never alone ("wow!").
SYMBOL_LEET = {"@": "a", "$": "s", "|": IL, "!": IL}
SYMBOL_NEEDS_BOTH_SIDES = {"!"}  # "kill!" is punctuation; "k!ll" is a letter

# Letters that look Latin but are not: Cyrillic, Greek and small capitals used to dodge filters.
LOOKALIKES = dict(
    zip(
        "аеорсхуіѕјкһԁӏαεικνορτυχϲᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ",
        "aeopcxyisjkhdlaeikvoptuxcabcdefghijklmnoprstuvwyz",
        strict=True,
    )
)


def _fold(char: str) -> tuple[str, int]:
    """A character's folded letters (possibly none, possibly several) and the steps that changed it."""
    if char in (IL, MARK, OTHER):
        return GAP, 0  # the placeholders' own code points are just control characters in real text
    if char in LOOKALIKES:
        return LOOKALIKES[char], LOOKALIKE
    if char < "\x80":
        lower = char.lower()
        return lower, (CASE if lower != char else 0)
    category = unicodedata.category(char)
    if category in ("Mn", "Me"):
        return "", ACCENT
    if category == "Cf":
        return "", INVISIBLE
    flags = 0
    decomposed = unicodedata.normalize("NFKD", char)
    if decomposed != unicodedata.normalize("NFD", char):
        flags |= COMPAT
    base = "".join(part for part in decomposed if not unicodedata.combining(part))
    if base != decomposed:
        flags |= ACCENT
    folded = base.casefold()
    if folded != base:
        flags |= CASE
    out = "".join(LOOKALIKES.get(part, part) for part in folded)
    if out != folded:
        flags |= LOOKALIKE
    return out, flags


_FOLD_CACHE: dict[str, tuple[str, int]] = {}


def fold(char: str) -> tuple[str, int]:
    try:
        return _FOLD_CACHE[char]
    except KeyError:
        result = _FOLD_CACHE[char] = _fold(char)
        return result


def is_word_char(char: str) -> bool:
    return char == IL or char.isalnum()


def _fast_value(char: str) -> str:
    """The fast form of one character: exactly one character, MARK where that is impossible."""
    out, _ = fold(char)
    if len(out) != 1:
        return MARK  # expands, vanishes (accents, zero-width) or is ambiguous: exact path
    if out in DIGIT_LEET:
        return DIGIT_LEET[out]
    if out in SYMBOL_LEET:
        # An ASCII symbol is found with str.find on the original text; a non-ASCII one that folds to a
        # symbol (full-width '＠') is not, so it goes to the exact path.
        return GAP if char < "\x80" else MARK
    if is_word_char(out) and out not in (IL, MARK, OTHER):
        return out
    return GAP


class _FastTable(dict):
    """`str.translate` table: each character to exactly one character."""

    def __missing__(self, ordinal: int) -> str:
        value = self[ordinal] = _fast_value(chr(ordinal))
        return value


_FAST_TABLE = _FastTable()
# bytes.translate tables: plain ASCII text, and ASCII text whose other characters the error handler below
# has already turned into one byte each (b"\x02" for MARK, b"\x03" for a letter of another alphabet).
_ASCII_BYTES = bytes(ord(_fast_value(chr(i))) for i in range(128)) + bytes(128)
_HANDLER_BYTES = _ASCII_BYTES[:2] + b"\x02\x03" + _ASCII_BYTES[4:]
_HANDLER_CACHE: dict[str, str] = {}


def _handler_value(char: str) -> str:
    try:
        return _HANDLER_CACHE[char]
    except KeyError:
        pass
    value = _fast_value(char)
    if value == IL:
        result = "1"  # the byte table turns it into IL
    elif value < "\x80":
        result = value  # a letter, digit, gap or MARK, which the byte table keeps
    else:
        result = OTHER
    _HANDLER_CACHE[char] = result
    return result


_RUN_CACHE: dict[str, str] = {}


def _fold_errors(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    run = error.object[error.start : error.end]
    value = _RUN_CACHE.get(run)
    if value is None:
        value = "".join(_handler_value(char) for char in run)
        if len(_RUN_CACHE) < 50_000:
            _RUN_CACHE[run] = value
    return value, error.end


codecs.register_error("safeguard-fold", _fold_errors)


def fast_form(text: str, *, ascii_keywords: bool = True) -> str:
    """The fast form of `text`, one character per character (see the module docstring).

    ASCII text goes through bytes.translate. Mostly-ASCII text does too, with an encode error handler for the
    odd accented letter or curly quote, provided no keyword has non-ASCII letters (a letter of another
    alphabet becomes OTHER, which matches nothing). Anything else uses str.translate.
    """
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_BYTES).decode("ascii")
    if ascii_keywords and "\x02" not in text and "\x03" not in text:
        sample = text[:8192]  # judged on a sample: measuring the whole text costs as much as folding it
        if len(sample.encode("utf-8", "surrogatepass")) - len(sample) < len(sample) // 16:
            return text.encode("ascii", "safeguard-fold").translate(_HANDLER_BYTES).decode("ascii")
    return text.translate(_FAST_TABLE)


def symbol_folds(prev_is_word: bool, next_is_word: bool, symbol: str) -> bool:
    """Whether a leet symbol between these neighbours is read as a letter (the one rule both paths use)."""
    if symbol in SYMBOL_NEEDS_BOTH_SIDES:
        return prev_is_word and next_is_word
    return prev_is_word or next_is_word


@dataclass
class Normalised:
    """The exact form of a text: `text[i]` came from `original[starts[i]:ends[i]]`.

    `runs[i]` is how many equal letters (or separator characters) were collapsed into unit i;
    `flags[i]` the steps that changed it.
    """

    text: str
    starts: list[int]
    ends: list[int]
    runs: list[int]
    flags: list[int]


def normalise(original: str) -> Normalised:
    # 1. Fold every character; keep each folded letter's original span, and classify it:
    #    1 a letter or digit, 2 a symbol that may be read as a letter, 0 a gap.
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    flags: list[int] = []
    kinds: list[int] = []
    cache = _FOLD_CACHE
    for index, char in enumerate(original):
        folded = cache.get(char)
        if folded is None:
            folded = fold(char)
        out, char_flags = folded
        if len(out) == 1:
            chars.append(out)
            starts.append(index)
            ends.append(index + 1)
            flags.append(char_flags)
            kinds.append(2 if out in SYMBOL_LEET else 1 if out == IL or out.isalnum() else 0)
        elif not out:
            if flags:  # a dropped accent or zero-width character belongs to the unit before it
                flags[-1] |= char_flags
                ends[-1] = index + 1
        else:
            for part in out:
                chars.append(part)
                starts.append(index)
                ends.append(index + 1)
                flags.append(char_flags)
                kinds.append(2 if part in SYMBOL_LEET else 1 if part == IL or part.isalnum() else 0)

    # 2. Digits are read as letters; symbols only between (or beside) letters and digits. Only a letter or
    #    digit (or a symbol already read as one, as in "a$$") makes a neighbour: in "wow!!!" no '!' sits
    #    between word characters.
    count = len(chars)
    for i in range(count):
        kind = kinds[i]
        if kind == 1:
            char = chars[i]
            if char in DIGIT_LEET:
                chars[i] = DIGIT_LEET[char]
                flags[i] |= LEET
        elif kind == 2:
            char = chars[i]
            prev_word = i > 0 and kinds[i - 1] == 1
            next_word = i + 1 < count and kinds[i + 1] == 1
            if symbol_folds(prev_word, next_word, char):
                chars[i] = SYMBOL_LEET[char]
                flags[i] |= LEET
                kinds[i] = 1
            else:
                kinds[i] = 0

    # 3. Collapse runs of one letter, and every run of gap characters into one GAP.
    out_text: list[str] = []
    out_starts: list[int] = []
    out_ends: list[int] = []
    out_runs: list[int] = []
    out_flags: list[int] = []
    previous = None
    for i in range(count):
        char = chars[i] if kinds[i] else GAP
        if char == previous:
            out_ends[-1] = ends[i]
            out_runs[-1] += 1
            out_flags[-1] |= flags[i]
            continue
        out_text.append(char)
        out_starts.append(starts[i])
        out_ends.append(ends[i])
        out_runs.append(1)
        out_flags.append(flags[i])
        previous = char
    return Normalised("".join(out_text), out_starts, out_ends, out_runs, out_flags)


def gap_is_plain(original: str) -> bool:
    """A gap that is exactly one ordinary space needs no explaining."""
    return original == " "
