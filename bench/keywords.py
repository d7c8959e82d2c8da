"""Keyword engine benchmark: throughput against raw pyahocorasick and a regex, build time, keystroke cost.

    .venv/bin/python bench/keywords.py [--mb 10] [--regex-mb 1] [--seed 7]

All three matchers run side by side on the same generated text in one run:
  engine  KeywordEngine.scan with the default library plus 5,000 synthetic keywords (full normalisation,
          boundaries, run checks, allow-lists, combination rules, explanations)
  raw     pyahocorasick over the text as it is, same keyword strings, no normalisation and no boundary
          checks: the limit the engine cannot beat
  regex   one compiled `re` alternation with \\b boundaries, case-insensitive: the naive approach. It is
          so slow that it runs on the first --regex-mb megabytes only; MB/s is comparable all the same.
Then the automaton build time for 10,000 keywords, and the incremental matcher's cost per keystroke at
buffer lengths 100, 1,000 and 10,000 (it should not grow with the buffer).
"""

import argparse
import os
import platform
import random
import re
import statistics
import time

import ahocorasick

from safeguard_agent.keywords.engine import KeywordEngine
from safeguard_agent.keywords.library import library_specs, load_library
from safeguard_agent.keywords.types import KeywordSpec

ORDINARY = (
    "the pupils in year 7 finished their science homework before the assembly at 10am and the class "
    "discussed the skills they need for the exam while the therapist from Scunthorpe visited Essex with a "
    "grapefruit to analyse how assessment works; our headteacher said the passage about the Spanish "
    "conquistadors was excellent, so please bring your PE kit on Thursday, 14 March 2024. "
    "Can everyone remember the maths test? Page 42, questions 1-15 — it's worth 30% of the grade! "
    "The glasses were cracked, the mass of the cassette was 500g, and the bass player kept classic time. "
    "We studied the Second World War, the Holocaust and how propaganda spread; cocktail sausages at lunch. "
    "Naïve café owners in Zürich sold crème brûlée for £5 while the assassin's creed poster hung in the hall. "
    "Rehearsal for the school play is in the drama studio; remember to sign the permission slip by Friday."
).split()
CHATTY = [
    "lol that was sooo funny!!!",
    "omg did u see the match last night",
    "@jamie are you coming to football after school?",
    "brb getting food",
    "this homework is killing me haha",
    "I could murder a pizza right now",
    "the new update is sick",
    "can't wait for the weekend :)",
    "who's got the answers for q3",
    "my sister is sooooo annoying",
]
DISGUISED = [
    "i want to k1ll mys3lf",
    "honestly thinking about s u i c i d e",
    "i'm going to unalive myself",
    "suiciiiiide is the only way out",
    "go kys",
    "send nudes or i post them",
    "he said bring a knife to school tomorrow",
    "pro ana tips pls",
    "smoking weed behind the gym",
    "s3lf h4rm again last night",
]


def make_text(megabytes: float, seed: int) -> str:
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    lines = []
    size = 0
    while size < target:
        roll = rng.random()
        if roll < 0.02:
            line = rng.choice(DISGUISED)
        elif roll < 0.25:
            line = rng.choice(CHATTY)
        else:
            words = [rng.choice(ORDINARY) for _ in range(rng.randint(6, 22))]
            if rng.random() < 0.3:
                words[0] = words[0].capitalize()
            line = " ".join(words)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:target]


def synthetic_keywords(count: int, seed: int) -> list[str]:
    """Pronounceable made-up words (so they rarely occur by chance), a fifth of them two-word phrases."""
    rng = random.Random(seed)
    consonants, vowels = "bcdfghjkmnprstvwz", "aeiou"

    def word() -> str:
        return "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(3, 5)))

    keywords: set[str] = set()
    while len(keywords) < count:
        keywords.add(f"{word()} {word()}" if rng.random() < 0.2 else word())
    return sorted(keywords)


def specs(synthetic: list[str]) -> list[KeywordSpec]:
    library, _ = library_specs(load_library())
    return library + [KeywordSpec(text=text, policy="Synthetic", category="other") for text in synthetic]


def timed(function, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=10.0, help="megabytes of text for engine and raw (default 10)")
    parser.add_argument("--regex-mb", type=float, default=0.5, help="megabytes for the regex (default 0.5)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    print(f"machine: {machine()}")
    text = make_text(args.mb, args.seed)
    megabytes = len(text.encode()) / 1_000_000
    synthetic = synthetic_keywords(5_000, args.seed)
    keyword_specs = specs(synthetic)
    _, allows = library_specs(load_library())
    plain = sorted({spec.text.rstrip("*") for spec in keyword_specs})
    print(f"text: {megabytes:.1f} MB, {text.count(chr(10)) + 1} lines; keywords: {len(keyword_specs)}")

    engine = KeywordEngine.build(keyword_specs, allows)
    found: list = []
    engine_seconds = timed(lambda: found.append(len(engine.scan(text))), repeat=3)

    raw = ahocorasick.Automaton()
    for index, keyword in enumerate(plain):
        raw.add_word(keyword, index)
    raw.make_automaton()
    raw_hits: list = []
    raw_seconds = timed(lambda: raw_hits.append(sum(1 for _ in raw.iter(text))), repeat=3)

    pattern = re.compile(r"\b(?:" + "|".join(re.escape(k) for k in sorted(plain, key=len, reverse=True)) + r")\b", re.I)
    regex_text = text[: int(args.regex_mb * 1_000_000)]
    regex_mb = len(regex_text.encode()) / 1_000_000
    regex_hits: list = []
    regex_seconds = timed(lambda: regex_hits.append(sum(1 for _ in pattern.finditer(regex_text))), repeat=1)

    engine_rate = megabytes / engine_seconds
    raw_rate = megabytes / raw_seconds
    regex_rate = regex_mb / regex_seconds
    print()
    print(f"{'matcher':<8} {'MB':>6} {'seconds':>8} {'MB/s':>8} {'hits':>8}")
    print(f"{'engine':<8} {megabytes:>6.1f} {engine_seconds:>8.3f} {engine_rate:>8.1f} {found[-1]:>8}")
    print(f"{'raw':<8} {megabytes:>6.1f} {raw_seconds:>8.3f} {raw_rate:>8.1f} {raw_hits[-1]:>8}")
    print(f"{'regex':<8} {regex_mb:>6.1f} {regex_seconds:>8.3f} {regex_rate:>8.2f} {regex_hits[-1]:>8}")
    print(
        f"engine / raw = {engine_rate / raw_rate:.0%} (target >= 50%); engine / regex = {engine_rate / regex_rate:.0f}x (target >= 20x)"
    )

    build_specs = specs(synthetic_keywords(10_000 - len(keyword_specs) + 5_000, args.seed + 1))
    build_seconds = timed(lambda: KeywordEngine.build(build_specs[:10_000], allows), repeat=3)
    print(f"\nbuild: {min(10_000, len(build_specs))} keywords in {build_seconds:.3f} s (target < 1 s)")

    print("\nincremental matcher, cost per keystroke (median of 2,000 keystrokes):")
    typed = make_text(0.05, args.seed + 2)
    for buffer_length in (100, 1_000, 10_000):
        matcher = engine.incremental(keep_chars=buffer_length)
        matcher.feed(make_text(buffer_length / 1_000_000, args.seed + 3)[:buffer_length])
        samples = []
        for char in typed[:2_000]:
            started = time.perf_counter()
            matcher.feed(char)
            samples.append(time.perf_counter() - started)
        print(
            f"  buffer {buffer_length:>6} chars (held {len(matcher.text):>6}): {statistics.median(samples) * 1e6:7.1f} µs"
        )


if __name__ == "__main__":
    main()
