"""Does a test that trains a model to a quality bar pass whichever seed it meets? Run it under seeds 0..N-1.

Such tests take their seed (the task's, the initialisation's and the batch order's) from the
``seed`` fixture of ``tests/conftest.py``, which reads ``KGPEFT_TEST_SEED``; this script runs
each named test in a fresh process per seed, one after another with one torch thread, and
prints a table of the seeds each passed.

    .venv/bin/python benchmarks/seed_robustness.py tests/explain/test_explain.py
    .venv/bin/python benchmarks/seed_robustness.py "tests/test_notebooks.py::test_notebook_runs[explain]" --seeds 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(test: str, seed: int) -> tuple[bool, float, str]:
    """Run ``test`` (a pytest node id or file) with ``KGPEFT_TEST_SEED=seed``: passed, seconds, and pytest's
    last line with the tests that failed."""
    env = {**os.environ, "KGPEFT_TEST_SEED": str(seed), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = done.stdout.strip().splitlines()
    failed = [line.split(" - ")[0] for line in lines if line.startswith(("FAILED", "ERROR"))]
    last = lines[-1] if lines else done.stderr.strip()[-200:]
    return done.returncode == 0, time.perf_counter() - start, "; ".join([last, *failed])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tests", nargs="+", help="pytest node ids or files, relative to the repository root")
    parser.add_argument("--seeds", type=int, default=10, help="run seeds 0 .. SEEDS-1 (default 10)")
    args = parser.parse_args()
    rows = []
    for test in args.tests:
        passed = []
        for seed in range(args.seeds):
            ok, seconds, last = run(test, seed)
            passed.append(ok)
            print(f"{test} seed {seed}: {'pass' if ok else 'FAIL'} in {seconds:.0f} s ({last})", flush=True)
        rows.append((test, sum(passed), [s for s, ok in enumerate(passed) if not ok]))
    print("\n| test | seeds passed | failing seeds |\n|---|---|---|")
    for test, n, failing in rows:
        print(f"| `{test}` | {n}/{args.seeds} | {', '.join(map(str, failing)) or '-'} |")
    sys.exit(0 if all(n == args.seeds for _, n, _ in rows) else 1)


if __name__ == "__main__":
    main()
