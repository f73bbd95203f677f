"""The benchmarks' shared command line and results file.

Every benchmark is a module of this package, run from the repository root as
``python -m benchmarks.<name> [options]``, and builds its command line with :class:`Benchmark`:
its own options plus the shared ones,

- ``--config``: the job config it reads (only benchmarks that read one have it),
- ``--seeds``: the seeds it runs (only benchmarks that draw anything at random have it; one that
  runs one seed at a time refuses several),
- ``--threads``: torch's CPU threads, set before anything is measured,
- ``--output``: where its results are written (default ``benchmarks/results/<name>.json``).

A benchmark prints what it measures as it goes, adds each measurement as a row
(:meth:`Benchmark.add`) and writes them once at the end (:meth:`Benchmark.write`) as one JSON
object: ``name``, ``args``, ``versions`` (:func:`kgpeft.checkpoint.library_versions`),
``started`` (UTC, ISO 8601), ``seconds`` and ``rows`` (a list of flat-ish dicts; rows of different
kinds name theirs in a ``table`` entry, which the report prints as separate tables).
``python -m benchmarks.report benchmarks/results/*.json`` prints them as tables. Benchmarks
measure and print; none asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from benchmarks.report import SCHEMA
from kgpeft.checkpoint import library_versions
from kgpeft.utils import atomic_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


class Benchmark:
    """One benchmark's command line (its own options and the shared ones) and the rows it measured.

    Args:
        name: the module's name under ``benchmarks`` (``"encoder"``); names the default output.
        doc: the module's docstring, the ``--help`` text.
        config: the default ``--config``; ``None``: the benchmark reads no config and has no ``--config``.
        seeds: the default ``--seeds``; ``None``: the benchmark draws nothing at random and has no ``--seeds``.
        threads: the default ``--threads``; ``None``: torch's own choice.
        one_seed: the benchmark runs one seed; ``--seeds`` with several is refused.
    """

    def __init__(
        self,
        name: str,
        doc: str | None,
        *,
        config: str | None = None,
        seeds: Sequence[int] | None = (0,),
        threads: int | None = 1,
        one_seed: bool = False,
    ) -> None:
        self.name, self.one_seed = name, one_seed
        self.rows: list[dict[str, Any]] = []
        self.parser = argparse.ArgumentParser(
            prog=f"python -m benchmarks.{name}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        shared = self.parser.add_argument_group("shared benchmark options")
        if config is not None:
            shared.add_argument("--config", type=Path, default=Path(config), help=f"the job config (default: {config})")
        if seeds is not None:
            shared.add_argument(
                "--seeds", type=int, nargs="+", default=list(seeds), help=f"the seeds to run (default: {list(seeds)})"
            )
        shared.add_argument(
            "--threads", type=int, default=threads, help=f"torch CPU threads (default: {threads or 'torch decides'})"
        )
        default = RESULTS / f"{name}.json"
        shared.add_argument(
            "--output",
            type=Path,
            default=default,
            help=f"the results file (JSON; default: {default.relative_to(ROOT)})",
        )
        self._started = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()

    def parse(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        """The parsed command line; sets torch's threads and starts the clock of ``seconds``."""
        args = self.parser.parse_args(argv)
        if self.one_seed and len(args.seeds) != 1:
            self.parser.error(f"--seeds: this benchmark runs one seed at a time, got {args.seeds}")
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        self._started, self._t0 = datetime.now(timezone.utc), time.perf_counter()
        return args

    def add(self, **row: Any) -> dict[str, Any]:
        """Keep one measured row (written by :meth:`write`); returns it."""
        self.rows.append(row)
        return row

    def write(self, args: argparse.Namespace, **extra: Any) -> Path:
        """Write the rows (and ``extra`` top-level entries) to ``args.output`` as JSON; returns the path.

        Written to a temporary file first and then renamed, so an earlier results file is never
        left half-written.
        """
        clash = sorted(set(extra) & set(SCHEMA))
        if clash:
            raise ValueError(
                f"Benchmark.write: {clash} are the results file's own keys; name the extra entries otherwise."
            )
        record = {
            "name": self.name,
            "args": vars(args),
            "versions": library_versions(),
            "started": self._started.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - self._t0, 3),
            **extra,
            "rows": self.rows,
        }
        path = Path(args.output)
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"written: {path}", flush=True)
        return path


def run_module(name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m benchmarks.<name> *argv`` in a fresh process (output captured), whatever the working folder."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *argv], capture_output=True, text=True, env=env)
