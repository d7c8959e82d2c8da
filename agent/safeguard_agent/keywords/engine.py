"""The keyword engine: one Aho-Corasick automaton over normalised text, every hit mapped to the original.

How a scan works (see normalise.py for the two forms of normalisation):

1. The whole text goes through a 1:1 `str.translate` (case, digits-as-letters, punctuation to spaces) at C
   speed, and the automaton runs over that. Keyword forms for this pass are the keyword's letters as written,
   with one to three spaces in each phrase gap.
2. The same automaton pass also finds "complex" spots: runs of three equal letters ("suiciiide"), four or more
   gap characters, characters that do not fold to exactly one letter (accents, zero-width, ligatures), and
   leet symbols beside letters ("k!ll", "$uicide"). Around each, a window of the original text is normalised
   exactly (runs collapsed, symbols read in context) and scanned again with the collapsed keyword forms.
   Hits of the fast pass inside such a window are left to the exact pass.
3. Every hit is checked: whole-word boundaries, run lengths (a stretched letter may stand for a single or
   double one, but "as" never matches "ass"), abbreviations exactly as written, digits only where a letter
   is also present, combination rules (another word nearby) and allow-list phrases. What survives becomes a
   `Match` that names its keyword, its original span and the normalisation steps that produced it.
"""

import bisect
import functools
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import ahocorasick

from safeguard_agent.keywords import normalise as norm
from safeguard_agent.keywords.types import AllowSpec, KeywordSpec, Match

KEYWORD, CONTEXT, ALLOW = 0, 1, 2
_RUN_GAP = 0  # a phrase gap: any run of spaces and punctuation
_RUN_SPACED = -1  # a gap between spaced-out letters: exactly one character
_FAST_GAP_LENGTHS = (1, 2, 3)  # gap runs of 4+ characters are complex spots
_IL_LETTERS = ("i", "l")
_APOSTROPHES = frozenset("'’‘`´")
_WORDS = re.compile(r"[^\W_]+")
_WORD_TAIL = re.compile(r"[^\W_]*")
_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "severe": 3}


@dataclass(slots=True)  # one per keyword, kept for the engine's life: no __dict__ each
class _Entry:
    """Something the automaton looks for: a keyword, a 'requires nearby' word, or an allow-list phrase."""

    kind: int
    text: str
    spec: KeywordSpec | None = None
    policy: str | None = None  # allow phrases: the policy they protect (None: all)
    strict_key: str | None = None  # abbreviations: the casefolded text the original must equal
    prefix: bool = False
    has_digits: bool = False
    context: tuple[int, ...] = ()  # keywords: context entries, one of which must be nearby
    max_length: int = 0  # longest normalised form, for window sizes


@dataclass(slots=True)
class _Candidate:
    entry: int
    start: int
    end: int
    spaced: bool = False


@dataclass
class _Hits:
    keywords: list[_Candidate] = field(default_factory=list)
    context: list[_Candidate] = field(default_factory=list)
    allow: list[_Candidate] = field(default_factory=list)


def _segments(text: str) -> tuple[list[tuple[str, int]], list[bool], int]:
    """A keyword's normalised letters as (letter, run) segments with gaps as (GAP, 0).

    Returns the segments, for each gap whether it is optional (an apostrophe: "don't" is also "dont"),
    and the union of normalisation flags (to know whether the keyword itself used digits).
    """
    result = norm.normalise(text)
    segments: list[tuple[str, int]] = []
    optional: list[bool] = []
    flags = 0
    for i, char in enumerate(result.text):
        if char == norm.GAP:
            if not segments:
                continue  # leading punctuation
            segments.append((norm.GAP, _RUN_GAP))
            optional.append(all(c in _APOSTROPHES for c in text[result.starts[i] : result.ends[i]]))
        else:
            segments.append((char, result.runs[i]))
        flags |= result.flags[i]
    while segments and segments[-1][0] == norm.GAP:
        segments.pop()
        optional.pop()
    return segments, optional, flags


def _merge(segments: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Adjacent equal letters (after joining or substituting) form one run, as they would in the text."""
    merged: list[tuple[str, int]] = []
    for char, run in segments:
        if merged and char != norm.GAP and merged[-1][0] == char:
            merged[-1] = (char, merged[-1][1] + run)
        else:
            merged.append((char, run))
    return merged


def _il_subsets(positions: list[int]) -> Iterable[tuple[int, ...]]:
    """Which i/l letters to read as IL. All combinations for up to three; beyond that the usual disguises:
    one at a time, every i, every l, all of them."""
    if len(positions) <= 3:
        for size in range(len(positions) + 1):
            yield from itertools.combinations(positions, size)
        return
    yield ()
    for position in positions:
        yield (position,)
    yield tuple(positions)


def _variants(text: str, *, spaced: bool, literal: bool) -> tuple[list[tuple[str, tuple[int, ...]]], int]:
    """Skeleton forms of a keyword for the exact pass: (string, run requirement per character).

    `literal` (abbreviations, allow phrases' exactness is not needed) skips leet and spacing variants.
    """
    segments, optional, flags = _segments(text)
    if not segments:
        return [], flags
    bases: list[list[tuple[str, int]]] = [_merge(segments)]
    if not literal:
        gap_indexes = [i for i, (char, _) in enumerate(segments) if char == norm.GAP]
        optional_gaps = [index for index, is_optional in zip(gap_indexes, optional, strict=True) if is_optional]
        for size in range(1, len(optional_gaps) + 1):
            for joined in itertools.combinations(optional_gaps, size):
                bases.append(_merge([segment for i, segment in enumerate(segments) if i not in joined]))
    if spaced and not literal:
        letters = [(char, 1) for char, run in segments if char != norm.GAP for _ in range(run)]
        spaced_form: list[tuple[str, int]] = []
        for char, run in letters:
            if spaced_form:
                spaced_form.append((norm.GAP, _RUN_SPACED))
            spaced_form.append((char, run))
        bases.append(spaced_form)

    forms: dict[str, tuple[int, ...]] = {}
    for base in bases:
        il_positions = [i for i, (char, _) in enumerate(base) if char in _IL_LETTERS]
        subsets = [()] if literal else _il_subsets(il_positions)
        for subset in subsets:
            variant = [(norm.IL, run) if i in subset else (char, run) for i, (char, run) in enumerate(base)]
            variant = _merge(variant)
            key = "".join(char for char, _ in variant)
            forms.setdefault(key, tuple(run for _, run in variant))
    return list(forms.items()), flags


def _raw_forms(skeleton: str, runs: tuple[int, ...]) -> Iterable[str]:
    """The fast pass's forms of one skeleton: letters as written, each phrase gap one to three spaces."""
    gaps = [i for i, run in enumerate(runs) if run == _RUN_GAP]
    if len(gaps) <= 3:
        choices = itertools.product(_FAST_GAP_LENGTHS, repeat=len(gaps))
    else:  # long phrases: one unusual gap at a time (longer combinations go through the exact pass only)
        choices = [tuple(1 for _ in gaps)] + [
            tuple(length if j == i else 1 for j in range(len(gaps)))
            for i in range(len(gaps))
            for length in _FAST_GAP_LENGTHS[1:]
        ]
    for lengths in choices:
        gap_length = dict(zip(gaps, lengths, strict=True))
        parts = []
        for i, (char, run) in enumerate(zip(skeleton, runs, strict=True)):
            if run == _RUN_GAP:
                parts.append(norm.GAP * gap_length[i])
            elif run == _RUN_SPACED:
                parts.append(norm.GAP)
            else:
                parts.append(char * run)
        yield "".join(parts)


def _runs_ok(required: tuple[int, ...], runs: list[int], start: int) -> bool:
    for offset, need in enumerate(required):
        have = runs[start + offset]
        if need > 0:
            # A stretched letter ("suiciiide") may stand for one or two, but a doubled letter is a different
            # word from a single one ("as" is not "ass", "cooke" is not "coke").
            if have != need and have < max(need, 3):
                return False
        elif need == _RUN_SPACED and have != 1:
            return False
    return True


_SYMBOLS = frozenset(norm.SYMBOL_LEET)
_RUNS = re.compile(r"(.)\1*", re.DOTALL)
_COLLAPSE = re.compile(r"(.)\1+", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _gap_symbols_may_fold(gap: str) -> bool:
    """Whether the exact form might read a symbol of this run of gap characters as a letter.

    Replays `normalise`'s step 2 on the run alone, taking both outside neighbours to be letters (the
    safe guess: a wrong "may fold" only costs an exact pass). Symbols fold from a word outwards
    ("a$$"), so a run like "!!!\n" or " :)\n" reads as a plain gap, and a plain gap needs an exact pass
    only when a phrase could span it. Runs repeat ("!!!\n" ends every other chat line), hence the cache.
    """
    kinds = [1, *(2 if char in norm.SYMBOL_LEET else 0 for char in gap), 1]
    for i, char in enumerate(gap, start=1):
        if kinds[i] == 2:
            if norm.symbol_folds(kinds[i - 1] == 1, kinds[i + 1] == 1, char):
                return True
            kinds[i] = 0
    return False


class _Matcher:
    """One Aho-Corasick automaton over some entries, and the two passes that use it.

    Keys are padded with a gap on both sides (" kill myself "), and so is the scanned text, so the automaton
    reports whole-word hits only: no boundary checks, and no flood of substring hits ("ket" in "basket").
    A prefix entry ("anorexi*") has no gap on its right.
    """

    def __init__(self) -> None:
        self.automaton = ahocorasick.Automaton()
        self.payloads: dict[str, tuple[list, list, list]] = {}  # key -> (fast items, exact items, [marker])
        # What a complex spot is checked against before any exact pass: every word of every skeleton,
        # the words that are a whole keyword on their own, and the pairs of words next to each other.
        self.vocabulary: set[str] = set()
        self.solo_words: set[str] = set()
        self.pairs: set[tuple[str, str]] = set()
        self.prefix_words: set[str] = set()
        self.ascii_keywords = True
        self.max_length = 1
        self.max_words = 1
        self.margin = 64
        self._token_cache: dict[str, list[str]] = {}
        # Equal payload tuples shared instead of repeated: the i/l variants of a keyword (about two keys in
        # three) carry the same items, and run requirements repeat across keywords. Measured with 5,442
        # keywords: a third less memory for the payloads. Dropped after finish().
        self._interned: dict[tuple, tuple] = {}

    def _intern(self, value: tuple) -> tuple:
        return self._interned.setdefault(value, value)

    def add(self, entry_index: int, text: str, *, spaced: bool, literal: bool, prefix: bool) -> None:
        forms, _ = _variants(text, spaced=spaced, literal=literal)
        right = "" if prefix else norm.GAP
        intern = self._intern
        for skeleton, runs in forms:
            key = norm.GAP + skeleton + right
            required = intern((_RUN_GAP, *runs, _RUN_GAP) if right else (_RUN_GAP, *runs))
            self.payloads.setdefault(key, ([], [], []))[1].append(intern((entry_index, required)))
            words = skeleton.split(norm.GAP)
            self.vocabulary.update(words)
            if len(words) == 1:
                self.solo_words.add(words[0])
            self.pairs.update(itertools.pairwise(words))
            if prefix:
                self.prefix_words.add(words[-1])
            self.max_words = max(self.max_words, len(words))
            if not skeleton.isascii() and any(c.isalpha() for c in skeleton if c >= "\x80"):
                self.ascii_keywords = False
            fast_item = intern((entry_index, _RUN_SPACED in runs))
            for raw in _raw_forms(skeleton, runs):
                self.payloads.setdefault(norm.GAP + raw + right, ([], [], []))[0].append(fast_item)
                self.max_length = max(self.max_length, len(raw))

    def finish(self) -> None:
        letters = {char for word in self.vocabulary for char in word}
        for letter in letters:  # complex spots, found by the same pass: three equal letters, four gaps
            self.payloads.setdefault(letter * 3, ([], [], []))[2].append(True)
        self.payloads.setdefault(norm.GAP * 4, ([], [], []))[2].append(True)
        intern = self._intern
        words = [
            (key, intern((len(key), intern(tuple(fast)), intern(tuple(exact)), bool(marker))))
            for key, (fast, exact, marker) in self.payloads.items()
        ]
        # The build's scratch goes before the automaton's nodes are allocated, so they fill the memory it
        # leaves rather than sit between its holes (about 5 MB less RSS for 5,442 keywords).
        self.payloads = {}
        self._interned = {}
        for key, value in words:
            self.automaton.add_word(key, value)
        del words
        if len(self.automaton):
            self.automaton.make_automaton()
        # A complex window holds any keyword that could touch the spot, even stretched a little.
        self.margin = 2 * self.max_length + 8

    def find(self, text: str, *, left_open: bool = False, exact_only: bool = False) -> list[tuple[int, int, int, bool]]:
        """Whole-word hits as (entry index, start, end, spaced) in `text`'s offsets.

        left_open: the text starts in the middle of something (the incremental matcher's tail), so a hit
        at offset 0 cannot be known to start a word and is dropped.
        """
        if not len(self.automaton) or not text:
            return []
        fast = norm.GAP + norm.fast_form(text, ascii_keywords=self.ascii_keywords) + norm.GAP
        spots: list[int] = []
        pending: list[tuple[int, tuple, int]] = []
        gap_spots: list[int] = []
        for end, (size, fast_items, _exact, marker) in self.automaton.iter(fast):
            if marker:
                (gap_spots if fast[end] == norm.GAP else spots).append(end)
            elif fast_items:
                pending.append((end, fast_items, size))
        if norm.MARK in fast:
            position = fast.find(norm.MARK)
            while position != -1:
                spots.append(position)
                position = fast.find(norm.MARK, position + 1)
        symbol_spots: list[int] = []
        for symbol in norm.SYMBOL_LEET:
            position = text.find(symbol)
            while position != -1:
                at = position + 1  # in `fast`, which has a leading gap
                if norm.symbol_folds(fast[at - 1] != norm.GAP, fast[at + 1] != norm.GAP, symbol):
                    symbol_spots.append(at)
                position = text.find(symbol, position + 1)

        dead: list[tuple[int, int]] = []
        if exact_only:  # the reference the fast pass must agree with (tests use it)
            windows = [(1, len(fast) - 1)]
        elif spots or gap_spots or symbol_spots:
            windows, dead = self._windows(text, fast, spots, gap_spots, symbol_spots)
        else:
            windows = []
        dead_set = set(dead)
        exact_windows = windows
        windows = sorted(windows + dead)
        window_starts = [start for start, _ in windows]
        hits: list[tuple[int, int, int, bool]] = []
        for end, fast_items, size in pending:
            # The key's leading gap is at `start`, so the word is fast[start + 1 : word_end], which is
            # text[start : word_end - 1] (fast has one more gap in front). A prefix key has no trailing gap.
            start = end - size + 1
            word_end = end if fast[end] == norm.GAP else end + 1
            if windows:
                index = bisect.bisect_right(window_starts, word_end - 1) - 1
                # Windows and dead zones may overlap each other, so look back over every one that
                # starts before the word ends (there are few).
                skip = False
                while index >= 0:
                    window_start, window_end = windows[index]
                    if window_start <= start + 1 and word_end <= window_end:
                        skip = True  # inside a complex window: the exact pass decides
                        break
                    if window_end > start + 1 and (window_start, window_end) in dead_set:
                        skip = True  # touches a symbol read as a letter: this is not the word it seems
                        break
                    if window_end + self.margin * 4 < start:
                        break
                    index -= 1
                if skip:
                    continue
            if start == 0 and left_open:
                continue
            for entry_index, spaced in fast_items:
                hits.append((entry_index, start, word_end - 1, spaced))
        symbol_spots.sort()
        for start, end in exact_windows:
            first_symbol = bisect.bisect_left(symbol_spots, start)
            has_symbol = first_symbol < len(symbol_spots) and symbol_spots[first_symbol] < end
            self._find_exact(text, fast, start, end, hits, left_open, has_symbol or exact_only)
        return hits

    def _token_words(self, text: str, fast: str, position: int) -> tuple[int, int, list[str]]:
        """The run of non-gap characters around a `fast` position, as exact skeleton words."""
        left = fast.rfind(norm.GAP, 0, position) + 1
        right = fast.find(norm.GAP, position)
        # A symbol read as a letter joins the words on either side ("k!ll" is one token).
        while left > 1 and text[left - 2] in norm.SYMBOL_LEET:
            left = fast.rfind(norm.GAP, 0, left - 1) + 1
        while right < len(fast) - 1 and text[right - 1] in norm.SYMBOL_LEET:
            right = fast.find(norm.GAP, right + 1)
        original = text[left - 1 : right - 1]
        words = self._token_cache.get(original)
        if words is None:
            # Tokens repeat a lot ("sooo", "@everyone"), so their words are remembered (boundedly).
            token = fast[left:right]
            if norm.MARK in token or any(symbol in original for symbol in norm.SYMBOL_LEET):
                words = [word for word in norm.normalise(original).text.split(norm.GAP) if word]
            else:
                words = [_COLLAPSE.sub(r"\1", token)]
            if len(self._token_cache) > 20_000:
                self._token_cache.clear()
            self._token_cache[original] = words
        return left, right, words

    def _neighbour(self, text: str, fast: str, edge: int, step: int) -> list[str]:
        """The words of the nearest token before (step -1) or after (step 1) a token edge, looking past
        tokens of invisible characters only, which the exact form turns into gaps."""
        last = len(fast) - 1
        gap = norm.GAP
        for _ in range(4):
            index = edge - 1 if step < 0 else edge
            while 0 < index < last and fast[index] == gap:
                index += step
            if index <= 0 or index >= last:
                return []
            # The common case inline: a plain token with no symbol or MARK next to it.
            if step < 0:
                left, right = fast.rfind(gap, 0, index) + 1, index + 1
            else:
                left, right = index, fast.find(gap, index)
            original = text[left - 1 : right - 1]
            words = self._token_cache.get(original)
            if words is None or text[left - 2 : left - 1] in _SYMBOLS or text[right - 1 : right] in _SYMBOLS:
                left, right, words = self._token_words(text, fast, index)
            if words:
                return words
            edge = left if step < 0 else right
        return []

    def _pair_near(self, text: str, fast: str, left: int, right: int, words: list[str]) -> bool:
        """Whether a word of a token forms a keyword's word pair with its neighbour or within itself."""
        if not self.pairs:
            return False
        for pair in itertools.pairwise(words):
            if pair in self.pairs:
                return True
        before = self._neighbour(text, fast, left, -1)
        if before and (before[-1], words[0]) in self.pairs:
            return True
        after = self._neighbour(text, fast, right, 1)
        return bool(after) and (words[-1], after[0]) in self.pairs

    def _token_relevant(self, text: str, fast: str, left: int, right: int, words: list[str]) -> bool:
        """Could any keyword match through this token? A word that is a keyword on its own, or a word of a
        phrase next to the phrase's neighbouring word ("sooo" matters in "you're sooo mature" only)."""
        if not words:
            return False
        in_vocabulary = False
        for word in words:
            if word in self.solo_words:
                return True
            if self.prefix_words and any(word.startswith(prefix) for prefix in self.prefix_words):
                return True
            in_vocabulary = in_vocabulary or word in self.vocabulary
        return in_vocabulary and self._pair_near(text, fast, left, right, words)

    def _gap_relevant(self, text: str, fast: str, left: int, right: int) -> bool:
        """Could a phrase span this gap (or gap-like token) between fast[left] and fast[right]?"""
        before = self._neighbour(text, fast, left, -1)
        after = self._neighbour(text, fast, right, 1)
        return bool(before) and bool(after) and (before[-1], after[0]) in self.pairs

    def _plain_gap_relevant(self, text: str, fast: str, left: int, right: int) -> bool:
        """`_gap_relevant` for a run that holds symbols none of which reads as a letter ("funny!!!\nbut").

        `_neighbour` would join the words across such a run (it reads symbols as letters), so the tokens
        either side are read straight from the fast form here. Anything unusual about them (a MARK, a
        symbol on their far side) answers "relevant", which only costs an exact pass.
        """
        before_start = fast.rfind(norm.GAP, 0, left - 1) + 1
        after_end = fast.find(norm.GAP, right)
        if after_end == -1:
            after_end = len(fast) - 1
        before = fast[before_start:left]
        after = fast[right:after_end]
        if (
            norm.MARK in before
            or norm.MARK in after
            or text[before_start - 2 : before_start - 1] in _SYMBOLS
            or text[after_end - 1 : after_end] in _SYMBOLS
        ):
            return True
        return (_COLLAPSE.sub(r"\1", before), _COLLAPSE.sub(r"\1", after)) in self.pairs

    def _windows(
        self, text: str, fast: str, spots: list[int], gap_spots: list[int], symbol_spots: list[int]
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Windows of `fast` for the exact pass, and dead zones where fast hits are void.

        A spot matters only if a word it touches, normalised exactly, is a word of some keyword: a stretched
        "sooo" in a library without "so" needs no exact pass. A long gap matters only between two such words.
        A symbol read as a letter changes the words around it ("coke@" is "cokea"), so fast hits touching
        it are void even when its word is of no interest (the dead zone).
        """
        ranges: list[tuple[int, int]] = []
        dead: list[tuple[int, int]] = []
        last_gap = -1
        for spot in gap_spots:  # four gaps: look at the words either side
            if spot <= last_gap:
                continue
            gap_start = spot
            while gap_start > 0 and fast[gap_start - 1] == norm.GAP:
                gap_start -= 1
            next_word = spot
            while next_word < len(fast) and fast[next_word] == norm.GAP:
                next_word += 1
            last_gap = next_word
            if gap_start == 0 or next_word >= len(fast):
                continue
            gap_text = text[gap_start - 1 : next_word - 1]
            if any(symbol in gap_text for symbol in _SYMBOLS):
                relevant = _gap_symbols_may_fold(gap_text) or self._plain_gap_relevant(text, fast, gap_start, next_word)
            else:
                relevant = self._gap_relevant(text, fast, gap_start, next_word)
            if relevant:
                # (A run with a symbol that may read as a letter is left to the exact pass: which of them
                # read as letters decides the words.)
                ranges.append((gap_start - 1, next_word))
        for group, is_symbol in ((sorted(spots), False), (sorted(symbol_spots), True)):
            last_token = -1
            for spot in group:
                if spot < last_token:
                    continue
                left, right, words = self._token_words(text, fast, spot)
                last_token = right
                if self._token_relevant(text, fast, left, right, words):
                    ranges.append((left, right))
                elif is_symbol:
                    dead.append((left, right))
                elif not words and self._gap_relevant(text, fast, left, right):
                    # Only invisible characters: in the exact form this is part of a gap, which may now
                    # join the words either side into a phrase ("unalive \ufe0f myself").
                    ranges.append((left, right))
        if not ranges:
            return [], dead
        ranges.sort()
        windows: list[tuple[int, int]] = []
        for left, right in ranges:
            start = self._words_back(fast, left, self.max_words)
            end = self._words_forward(fast, right, self.max_words)
            # An edge must be a real gap: a symbol that the exact pass reads as a letter is not one.
            while start > 1 and text[start - 2] in norm.SYMBOL_LEET:
                start = fast.rfind(norm.GAP, 0, start - 1) + 1
            while end < len(fast) - 1 and text[end - 1] in norm.SYMBOL_LEET:
                next_gap = fast.find(norm.GAP, end + 1)
                end = next_gap if next_gap != -1 else len(fast) - 1
            if windows and start <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(windows[-1][1], end))
            else:
                windows.append((start, end))
        return windows, dead

    def _words_back(self, fast: str, position: int, words: int) -> int:
        """The start of the word `words` words back from the one at position (within the margin)."""
        limit = max(1, position - self.margin)
        for _ in range(words):
            while position > limit and fast[position - 1] == norm.GAP:
                position -= 1
            gap = fast.rfind(norm.GAP, limit - 1, position)
            if gap == -1:
                return limit
            position = gap + 1
        return position

    def _words_forward(self, fast: str, position: int, words: int) -> int:
        """The gap after the word `words` words on from the one at position (within the margin)."""
        limit = min(len(fast) - 1, position + self.margin)
        for _ in range(words):
            while position < limit and fast[position] == norm.GAP:
                position += 1
            gap = fast.find(norm.GAP, position, limit + 1)
            if gap == -1:
                return limit
            position = gap
        return position

    def _find_exact(
        self,
        text: str,
        fast: str,
        start: int,
        end: int,
        hits: list[tuple[int, int, int, bool]],
        left_open: bool,
        has_symbol: bool,
    ) -> None:
        """Normalise text[start-1:end-1] (fast offsets start..end) exactly and scan it with skeleton keys."""
        original_start = start - 1
        original_end = end - 1
        if original_end <= original_start:
            return
        window = text[original_start:original_end]
        inner = fast[start:end]
        if not has_symbol and norm.MARK not in inner:
            # Here the exact form is the fast form with runs collapsed, which C code makes in a moment; most
            # windows (a stretched "sooo") hold no keyword at all, so check that before mapping offsets.
            collapsed = _COLLAPSE.sub(r"\1", norm.GAP + inner + norm.GAP)
            if not any(exact for _, (_, _, exact, _) in self.automaton.iter(collapsed)):
                return
            # One step per run rather than per character: the fast form is 1:1 with the original here.
            runs_found = [(match.group(1), match.start(), match.end()) for match in _RUNS.finditer(inner)]
            result = norm.Normalised(
                "".join(char for char, _, _ in runs_found),
                [first for _, first, _ in runs_found],
                [last for _, _, last in runs_found],
                [last - first for _, first, last in runs_found],
                [],
            )
        else:
            result = norm.normalise(window)
        # Pad like the fast form: a gap where the window edge is a word edge, else a character no key has.
        left_ok = fast[start - 1] == norm.GAP and not (original_start == 0 and left_open)
        right_ok = fast[end] == norm.GAP
        left_pad = norm.GAP if left_ok else norm.MARK
        right_pad = norm.GAP if right_ok else norm.MARK
        normal = left_pad + result.text + right_pad
        runs = [1, *result.runs, 1]
        for last, (size, _fast, exact_items, _marker) in self.automaton.iter(normal):
            if not exact_items:
                continue
            first = last - size + 1
            for entry_index, required in exact_items:
                if not _runs_ok(required, runs, first):
                    continue
                # Units first+1 .. last-1 (or last, for a prefix key) are the word; -1 for the padding.
                word_first = first  # unit index in result (first + 1 - 1)
                word_last = last - 1 if required[-1] == _RUN_GAP else last
                hits.append(
                    (
                        entry_index,
                        original_start + result.starts[word_first],
                        original_start + result.ends[word_last - 1],
                        _RUN_SPACED in required,
                    )
                )


class KeywordEngine:
    """Build once (`KeywordEngine.build`), then `scan` any number of texts; safe to share between threads."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._main = _Matcher()  # keywords and allow-list phrases
        self._context = _Matcher()  # words that combination rules look for, scanned only near a candidate
        self.keyword_count = 0
        self.window_chars = 64
        self._max_window = 0

    # ----------------------------------------------------------------------------------------------- build
    @classmethod
    def build(cls, keywords: Iterable[KeywordSpec], allow_phrases: Iterable[AllowSpec] = ()) -> "KeywordEngine":
        engine = cls()
        context_index: dict[str, int] = {}
        for spec in keywords:
            text = spec.text.strip()
            prefix = text.endswith("*")
            text = text.rstrip("*").strip()
            strict = spec.match_kind == "abbreviation"
            entry = _Entry(
                kind=KEYWORD,
                text=text,
                spec=spec,
                strict_key=text.casefold() if strict else None,
                prefix=prefix,
                has_digits=any(char.isdigit() for char in text),
            )
            index = len(engine._entries)
            engine._entries.append(entry)
            engine._main.add(
                index, text, spaced=spec.join_spaced and not strict, literal=strict, prefix=prefix and not strict
            )
            context = []
            for word in spec.requires_nearby:
                word = word.strip()
                if not word:
                    continue
                key = word.casefold()
                if key not in context_index:
                    context_index[key] = len(engine._entries)
                    engine._entries.append(_Entry(kind=CONTEXT, text=word))
                    engine._context.add(context_index[key], word, spaced=False, literal=False, prefix=False)
                context.append(context_index[key])
            entry.context = tuple(context)
            if context:
                engine._max_window = max(engine._max_window, spec.window)
            engine.keyword_count += 1

        for allow in allow_phrases:
            text = allow.text.strip()
            if not text:
                continue
            index = len(engine._entries)
            engine._entries.append(_Entry(kind=ALLOW, text=text, policy=allow.policy))
            engine._main.add(index, text, spaced=False, literal=False, prefix=False)

        engine._main.finish()
        engine._context.finish()
        # The incremental matcher rescans this much: the longest keyword, stretched, with its nearby words.
        engine.window_chars = 3 * engine._main.max_length + 16 * engine._max_window + 32
        return engine

    # ------------------------------------------------------------------------------------------------ scan
    def scan(self, text: str, *, include_suppressed: bool = False) -> list[Match]:
        """Every match in `text`, in order of position. With include_suppressed, also the hits that an
        allow-list phrase, a missing nearby word or a longer match of the same policy silenced, each with
        `suppressed_by` saying why (for the admin's "test text" page)."""
        if not text:
            return []
        return self._finish(text, self._find(text), include_suppressed)

    def incremental(self, *, keep_chars: int | None = None) -> "IncrementalMatcher":
        """A matcher for text typed one keystroke at a time (see IncrementalMatcher)."""
        return IncrementalMatcher(self, keep_chars=keep_chars)

    def _find(self, text: str, *, left_open: bool = False, exact_only: bool = False) -> _Hits:
        hits = _Hits()
        for entry_index, start, end, spaced in self._main.find(text, left_open=left_open, exact_only=exact_only):
            candidate = _Candidate(entry_index, start, end, spaced)
            if self._entries[entry_index].kind == KEYWORD:
                hits.keywords.append(candidate)
            else:
                hits.allow.append(candidate)
        return hits

    # ---------------------------------------------------------------------------------------------- checks
    def _finish(self, text: str, hits: _Hits, include_suppressed: bool) -> list[Match]:
        entries = self._entries
        seen: set[tuple[int, int, int]] = set()
        candidates: list[_Candidate] = []
        for candidate in hits.keywords:
            key = (candidate.entry, candidate.start, candidate.end)
            if key in seen:
                continue
            seen.add(key)
            entry = entries[candidate.entry]
            if entry.prefix:  # report the whole word the prefix starts ("anorexi*" matched "anorexic")
                candidate.end = _WORD_TAIL.match(text, candidate.end).end()
            original = text[candidate.start : candidate.end]
            if entry.strict_key is not None and original.casefold() != entry.strict_key:
                continue
            if entry.has_digits:
                if not any(char.isdigit() for char in original):
                    continue  # "r34" must not match the name "Rea"
            elif not any(char.isalpha() for char in original):
                continue  # "717" is a number, not "tit"
            candidates.append(candidate)
        if not candidates:
            return []

        reasons: dict[int, str] = {}
        for position, candidate in enumerate(candidates):
            entry = entries[candidate.entry]
            if entry.context and not self._context_near(text, candidate, entry):
                words = ", ".join(entries[index].text for index in entry.context)
                reasons[position] = f"needs one of [{words}] within {entry.spec.window} words"
                continue
            for allow in hits.allow:
                allow_entry = entries[allow.entry]
                if (
                    allow.start <= candidate.start
                    and candidate.end <= allow.end
                    and allow_entry.policy in (None, entry.spec.policy)
                ):
                    reasons[position] = f'allow-list phrase "{allow_entry.text}"'
                    break

        # One event, one match per policy: a hit inside a longer hit of the same policy is dropped. Sorted by
        # policy, then start, longest (then most severe) first, a hit is inside an earlier one exactly when
        # the furthest end seen so far in its policy reaches its end.
        order = sorted(
            (position for position in range(len(candidates)) if position not in reasons),
            key=lambda p: (
                entries[candidates[p].entry].spec.policy,
                candidates[p].start,
                -candidates[p].end,
                -_SEVERITY_RANK[entries[candidates[p].entry].spec.severity],
            ),
        )
        policy = None
        furthest = -1
        furthest_entry = -1
        for position in order:
            candidate = candidates[position]
            candidate_policy = entries[candidate.entry].spec.policy
            if candidate_policy != policy:
                policy, furthest, furthest_entry = candidate_policy, -1, -1
            if furthest >= candidate.end:
                reasons[position] = f'inside the longer match "{entries[furthest_entry].text}"'
            else:
                furthest, furthest_entry = candidate.end, candidate.entry

        matches = []
        for position, candidate in enumerate(candidates):
            reason = reasons.get(position)
            if reason is not None and not include_suppressed:
                continue
            matches.append(self._match(text, candidate, reason))
        matches.sort(key=lambda match: (match.start, match.end, match.policy, match.keyword))
        return matches

    def _context_near(self, text: str, candidate: _Candidate, entry: _Entry) -> bool:
        """Whether one of the entry's nearby words is within its window of words, either side."""
        window = entry.spec.window
        reach = 24 * window + 24
        start = max(0, candidate.start - reach)
        end = min(len(text), candidate.end + reach)
        local = text[start:end]
        left_open = start > 0 and text[start - 1].isalnum()
        wanted = set(entry.context)
        for entry_index, hit_start, hit_end, _ in self._context.find(local, left_open=left_open):
            if entry_index not in wanted:
                continue
            hit_start += start
            hit_end += start
            if hit_end <= candidate.start:
                between = text[hit_end : candidate.start]
            elif hit_start >= candidate.end:
                between = text[candidate.end : hit_start]
            else:
                continue  # overlapping the keyword itself is not "another word nearby"
            if len(_WORDS.findall(between)) + 1 <= window:
                return True
        return False

    def _match(self, text: str, candidate: _Candidate, suppressed_by: str | None) -> Match:
        entry = self._entries[candidate.entry]
        spec = entry.spec
        original = text[candidate.start : candidate.end]
        steps = explain_steps(original, entry.text, spaced=candidate.spaced)
        kind = spec.match_kind
        if steps:
            how = "; ".join(steps)
        else:
            how = "exactly as written"
        explanation = f'"{original}" matched {kind} "{entry.text}" of policy "{spec.policy}": {how}'
        if suppressed_by:
            explanation += f" (suppressed: {suppressed_by})"
        return Match(
            keyword=spec.text,
            policy=spec.policy,
            category=spec.category,
            severity=spec.severity,
            start=candidate.start,
            end=candidate.end,
            matched_text=original,
            explanation=explanation,
            steps=tuple(steps),
            keyword_id=spec.keyword_id,
            policy_id=spec.policy_id,
            illegal_content=spec.illegal_content,
            suppressed_by=suppressed_by,
        )


@functools.lru_cache(maxsize=4096)
def _letter_count(keyword: str) -> int:
    form = norm.normalise(keyword)
    return sum(run for char, run in zip(form.text, form.runs, strict=True) if char != norm.GAP)


_PLAIN_WORDS = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")


def explain_steps(original: str, keyword: str, *, spaced: bool = False) -> list[str]:
    """Which normalisation steps turned `original` into the keyword, in plain words."""
    if _PLAIN_WORDS.fullmatch(original) and not spaced:
        # Most matches are plain ASCII words with single spaces: the same answer without normalising.
        steps = []
        if original != original.lower():
            steps.append(norm.STEP_NAMES[norm.CASE])
        leet_pairs = []
        for char in original:
            if char in norm.DIGIT_LEET:
                shown = norm.DIGIT_LEET[char]
                pair = f"{char}→{'i/l' if shown == norm.IL else shown}"
                if pair not in leet_pairs:
                    leet_pairs.append(pair)
        if leet_pairs:
            steps.append(f"{norm.STEP_NAMES[norm.LEET]} ({', '.join(leet_pairs)})")
        if len(original) - original.count(" ") > _letter_count(keyword):
            steps.append(norm.STEP_NAMES[norm.REPEAT])
        return steps
    text_form = norm.normalise(original)
    flags = 0
    for unit_flags in text_form.flags:
        flags |= unit_flags
    steps = []
    leet_pairs = []
    if flags & norm.LEET:
        for i, char in enumerate(text_form.text):
            if text_form.flags[i] & norm.LEET:
                shown = "i/l" if char == norm.IL else char
                source = original[text_form.starts[i] : text_form.starts[i] + 1]
                pair = f"{source}→{shown}"
                if pair not in leet_pairs:
                    leet_pairs.append(pair)
    text_letters = sum(run for char, run in zip(text_form.text, text_form.runs, strict=True) if char != norm.GAP)
    keyword_letters = _letter_count(keyword)
    gaps = [
        original[text_form.starts[i] : text_form.ends[i]] for i, char in enumerate(text_form.text) if char == norm.GAP
    ]
    for flag in (norm.CASE, norm.ACCENT, norm.COMPAT, norm.LOOKALIKE, norm.INVISIBLE, norm.LEET):
        if flags & flag:
            name = norm.STEP_NAMES[flag]
            steps.append(f"{name} ({', '.join(leet_pairs)})" if flag == norm.LEET else name)
    if text_letters > keyword_letters:
        steps.append(norm.STEP_NAMES[norm.REPEAT])
    if spaced:
        steps.append(norm.STEP_NAMES[norm.SPACED])
    elif any(not norm.gap_is_plain(gap) for gap in gaps):
        steps.append(norm.STEP_NAMES[norm.SEPARATOR])
    return steps


class IncrementalMatcher:
    """Matching as a pupil types: feed the characters typed, backspace those deleted.

    Only a bounded tail of the buffer is rescanned on each keystroke (the engine's `window_chars` plus what
    was just typed), so the cost of a keystroke does not grow with how much has been typed. A match is
    reported once, when the character after it shows it is a whole word; `flush()` reports one that ends
    the buffer (call it when typing pauses or focus moves). Offsets count characters since the last reset.
    """

    def __init__(self, engine: KeywordEngine, *, keep_chars: int | None = None) -> None:
        self._engine = engine
        self._keep = max(keep_chars or 0, 4 * engine.window_chars, 1024)
        self.reset()

    def reset(self) -> None:
        self._chars: list[str] = []  # a list, so a keystroke appends in O(1) rather than copying the buffer
        self._offset = 0  # characters dropped from the front of the buffer
        self._reported: set[tuple[str, str, int, int]] = set()

    @property
    def text(self) -> str:
        """The tail of the typed text the matcher still holds."""
        return "".join(self._chars)

    @property
    def length(self) -> int:
        return self._offset + len(self._chars)

    def feed(self, appended: str) -> list[Match]:
        if not appended:
            return []
        self._chars.extend(appended)
        if len(self._chars) > 2 * self._keep:  # amortised: happens once every `keep` characters
            drop = len(self._chars) - self._keep
            del self._chars[:drop]
            self._offset += drop
            self._reported = {item for item in self._reported if item[3] > self._offset}
        return self._scan_tail(len(appended), final=False)

    def flush(self) -> list[Match]:
        return self._scan_tail(0, final=True)

    def backspace(self, count: int = 1) -> None:
        if count <= 0:
            return
        del self._chars[max(0, len(self._chars) - count) :]
        limit = self.length
        if self._reported:
            self._reported = {item for item in self._reported if item[3] <= limit}

    def _scan_tail(self, appended: int, *, final: bool) -> list[Match]:
        start = max(0, len(self._chars) - appended - self._engine.window_chars)
        tail = "".join(self._chars[start:])
        left_open = start > 0 and not self._chars[start - 1].isspace()
        hits = self._engine._find(tail, left_open=left_open)
        matches = self._engine._finish(tail, hits, include_suppressed=False)
        new = []
        for match in matches:
            if match.end == len(tail) and not final:
                continue  # the next character decides whether this is a whole word
            absolute_start = self._offset + start + match.start
            absolute_end = self._offset + start + match.end
            key = (match.policy, match.keyword, absolute_start, absolute_end)
            if key in self._reported:
                continue
            self._reported.add(key)
            new.append(_shift(match, absolute_start, absolute_end))
        return new


def _shift(match: Match, start: int, end: int) -> Match:
    return Match(
        keyword=match.keyword,
        policy=match.policy,
        category=match.category,
        severity=match.severity,
        start=start,
        end=end,
        matched_text=match.matched_text,
        explanation=match.explanation,
        steps=match.steps,
        keyword_id=match.keyword_id,
        policy_id=match.policy_id,
        illegal_content=match.illegal_content,
    )
