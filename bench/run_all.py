"""Run every benchmark in bench/: each `bench/<name>.py` with a `main()` function.

    python bench/run_all.py            # all of them
    python bench/run_all.py matching   # those whose file name contains "matching"

A benchmark prints its own results. This runner imports each module, calls its main(), and
exits non-zero if any of them raised, so `make bench` fails loudly rather than half-running.
"""

import importlib.util
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def discover(pattern: str = "") -> list[Path]:
    """The benchmark files: bench/*.py that define main(), except this runner and private files."""
    found = []
    for path in sorted(BENCH_DIR.glob("*.py")):
        if path.name == Path(__file__).name or path.name.startswith("_") or pattern not in path.stem:
            continue
        if "def main(" in path.read_text(encoding="utf-8"):
            found.append(path)
    return found


def run(path: Path) -> bool:
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    started = time.perf_counter()
    print(f"=== {path.stem}", flush=True)
    try:
        spec.loader.exec_module(module)
        module.main()
    except SystemExit as stop:  # a benchmark may end with sys.exit(main())
        if stop.code not in (None, 0):
            print(f"--- {path.stem} exited with {stop.code}", flush=True)
            return False
    except Exception:
        traceback.print_exc()
        print(f"--- {path.stem} FAILED", flush=True)
        return False
    print(f"--- {path.stem} done in {time.perf_counter() - started:.1f} s", flush=True)
    return True


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(BENCH_DIR.parent))  # benchmarks import the project's packages
    benchmarks = discover(argv[0] if argv else "")
    if not benchmarks:
        print("No benchmarks found under bench/ (files bench/*.py with a main() function).")
        return 0
    failed = [path.stem for path in benchmarks if not run(path)]
    print(
        f"{len(benchmarks) - len(failed)} of {len(benchmarks)} benchmarks ran."
        + (f" Failed: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
