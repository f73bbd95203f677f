"""Does a test that trains a model to a quality bar pass whichever seed it meets? Run it under many seeds.

Such tests take their seed (the task's, the initialisation's and the batch order's) from the
``seed`` fixture of ``tests/conftest.py``, which reads ``KGPEFT_TEST_SEED``; this script runs
each named test in a fresh process per seed (``--seeds``, default 0..9), one after another with
``--threads`` torch threads (default one), and prints a table of the seeds each passed; it exits
with status 1 when a test failed under any seed.

    .venv/bin/python -m benchmarks.seed_robustness tests/explain/test_explain.py
    .venv/bin/python -m benchmarks.seed_robustness "tests/test_notebooks.py::test_notebook_runs[explain]" --seeds 0 1 2
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence

from benchmarks.harness import ROOT, Benchmark


def run(test: str, seed: int, threads: int) -> tuple[bool, float, str]:
    """Run ``test`` (a pytest node id or file) with ``KGPEFT_TEST_SEED=seed``: passed, seconds, and pytest's
    last line with the tests that failed."""
    env = {**os.environ, "KGPEFT_TEST_SEED": str(seed), "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
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


def benchmark() -> Benchmark:
    bench = Benchmark("seed_robustness", __doc__, seeds=range(10))
    bench.parser.add_argument("tests", nargs="+", help="pytest node ids or files, relative to the repository root")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    rows = []
    for test in args.tests:
        failing = []
        for seed in args.seeds:
            ok, seconds, last = run(test, seed, args.threads)
            bench.add(test=test, seed=seed, passed=ok, seconds=seconds, pytest=last)
            failing += [] if ok else [seed]
            print(f"{test} seed {seed}: {'pass' if ok else 'FAIL'} in {seconds:.0f} s ({last})", flush=True)
        rows.append((test, len(args.seeds) - len(failing), failing))
    print("\n| test | seeds passed | failing seeds |\n|---|---|---|")
    for test, n, failing in rows:
        print(f"| `{test}` | {n}/{len(args.seeds)} | {', '.join(map(str, failing)) or '-'} |")
    bench.write(args)
    sys.exit(0 if all(not failing for _, _, failing in rows) else 1)


if __name__ == "__main__":
    main()
