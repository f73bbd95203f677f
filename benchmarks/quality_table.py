"""The knowledge-quality table over seeds: mean and spread of finished runs, one row per variant and control.

Reads what ``benchmarks/knowledge_quality.py`` (and ``kgpeft demo``) write, ``results.json``, and
what ``benchmarks/gretriever.py`` writes, ``gretriever.json``, from the folders given (searched
recursively), groups the runs by task and variant, and prints per task a Markdown table of the
headline metric (exact match for QA) with each knowledge control as mean (min..max) over the
seeds found, the reliance (correct minus shuffled), seconds per training step and the seeds.
The demo's variant names are read as the benchmark's (``lora+facts`` as ``lora+facts2``,
``graph+facts`` as ``graph+facts2``, ``kg-lora`` as ``memory``).

Its rows (per task and variant: each control's mean, the mean reliance, seconds per step, the
seeds) go to ``--output`` as well.

    .venv/bin/python -m benchmarks.quality_table runs/knowledge_quality runs/gretriever
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness import Benchmark

#: The demo's variant names, as the quality benchmark calls them.
ALIASES = {"lora+facts": "lora+facts2", "graph+facts": "graph+facts2", "kg-lora": "memory"}
CONTROLS = ("correct", "shuffled", "none")
#: Rows in this order (the knowledge_quality and gretriever variants); others after them.
ORDER = ("base", "lora", "lora+facts2", "lora+facts4", "graph+facts2", "memory", "memory+facts2", "token")
ORDER += ("gretriever", "gretriever+text")


def task_and_seed(path: Path, report: dict) -> tuple[str, int]:
    """A run's task and seed: from the report, else from its folder's name (``<task>-seed<N>``)."""
    if "task" in report and "seed" in report:
        return report["task"], int(report["seed"])
    match = re.fullmatch(r"(.+)-seed(\d+)", path.parent.name)
    if match is None:
        raise SystemExit(f"{path}: no task and seed in the file, and its folder is not named <task>-seed<N>.")
    return match[1], int(match[2])


def collect(folders: list[Path]) -> dict[str, dict[str, dict[int, dict]]]:
    """``runs[task][variant][seed]``: the variant's ``metrics`` per control, ``reliance`` and ``s_per_step``."""
    runs: dict[str, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    files = [f for folder in folders for name in ("results.json", "gretriever.json") for f in folder.rglob(name)]
    if not files:
        raise SystemExit(f"No results.json or gretriever.json under {', '.join(map(str, folders))}.")
    for path in sorted(files):
        report = json.loads(path.read_text(encoding="utf-8"))
        task, seed = task_and_seed(path, report)
        metric = report["headline"][0] if "headline" in report else report["metric"]
        for v in report["variants"]:
            name = ALIASES.get(v["name"], v["name"])
            steps = v.get("steps") or 0
            seconds = v["seconds_per_step"] if "seconds_per_step" in v else (v["train_seconds"] / steps if steps else 0)
            runs[task][name][seed] = {
                "metric": metric,
                "metrics": {c: 100 * m[metric] for c, m in v["metrics"].items()},
                "s_per_step": seconds,
                "source": str(path),
            }
    return runs


def cell(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ({min(values):.1f}..{max(values):.1f})"


def table(variants: dict[str, dict[int, dict]]) -> tuple[list[str], list[dict]]:
    """The Markdown lines of one task's table, and its rows (means over the seeds)."""
    lines = ["| variant | correct | shuffled | none | reliance | s/step | seeds |", "|---|---|---|---|---|---|---|"]
    rows = []
    rank = {name: i for i, name in enumerate(ORDER)}
    for name, seeds in sorted(variants.items(), key=lambda item: rank.get(item[0], len(rank))):
        runs = list(seeds.values())
        values = {c: [r["metrics"][c] for r in runs if c in r["metrics"]] for c in CONTROLS}
        both = [r for r in runs if "shuffled" in r["metrics"]]
        reliances = [r["metrics"]["correct"] - r["metrics"]["shuffled"] for r in both]
        seconds = statistics.mean(r["s_per_step"] for r in runs)
        cells = [cell(values[c]) for c in CONTROLS]
        lines.append(f"| {name} | {' | '.join(cells)} | {cell(reliances)} | {seconds:.2f} | {sorted(seeds)} |")
        means = {c: statistics.mean(v) if v else None for c, v in values.items()}
        reliance = statistics.mean(reliances) if reliances else None
        rows.append({"variant": name, **means, "reliance": reliance, "s_per_step": seconds, "seeds": sorted(seeds)})
    return lines, rows


def benchmark() -> Benchmark:
    bench = Benchmark("quality_table", __doc__, seeds=None, threads=None)
    bench.parser.add_argument("folders", nargs="+", type=Path)
    bench.parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: every seed found)")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    for task, variants in sorted(collect(args.folders).items()):
        if args.seeds is not None:
            variants = {n: {s: r for s, r in v.items() if s in args.seeds} for n, v in variants.items()}
            variants = {n: v for n, v in variants.items() if v}
        metric = next(iter(next(iter(variants.values())).values()))["metric"]
        print(f"\n{task}: {metric} (%), mean (min..max) over seeds\n")
        lines, rows = table(variants)
        print("\n".join(lines))
        for row in rows:
            bench.add(task=task, metric=metric, **row)
    bench.write(args)


if __name__ == "__main__":
    main()
