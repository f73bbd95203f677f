"""The benchmarks' results as tables: one per results file that :mod:`benchmarks.harness` wrote.

Each table has a column per key of the file's rows (in the order they first appear; rows with a
``table`` key are split into one table per value of it, in order), numbers
to four significant digits (whole numbers from 10,000), nested values as compact JSON; above it,
the benchmark's name, when it started, how long it ran and the library versions it ran with.

    python -m benchmarks.report benchmarks/results/*.json
    python -m benchmarks.report --markdown benchmarks/results/encoder.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Keys every results file has (``benchmarks.harness.Benchmark.write``).
SCHEMA = ("name", "args", "versions", "started", "seconds", "rows")


def cell(value: Any, width: int = 48) -> str:
    """One value as table text: numbers to 4 significant digits, nested values as JSON cut to ``width``."""
    if value is None:
        return "-"
    if isinstance(value, int):  # bool too
        return str(value)
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def read(path: Path) -> dict[str, Any]:
    """A results file, checked for the harness's schema (``SystemExit`` naming the file and what is missing)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: not a readable JSON results file ({e}).") from None
    missing = [key for key in SCHEMA if not isinstance(record, dict) or key not in record]
    if missing:
        raise SystemExit(f"{path}: no {', '.join(missing)}; not a benchmarks.harness results file.")
    return record


def table(rows: list[dict[str, Any]], markdown: bool = False) -> list[str]:
    """``rows`` as aligned text lines (or a Markdown table), a column per key."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if not columns:
        return ["(no rows)"]
    cells = [[cell(row.get(key)) for key in columns] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return lines + ["| " + " | ".join(r) + " |" for r in cells]
    widths = [max(len(x) for x in column) for column in zip(columns, *cells, strict=True)]
    lines = ["  ".join(x.rjust(w) for x, w in zip(r, widths, strict=True)) for r in [columns, *cells]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def describe(record: dict[str, Any]) -> str:
    versions = record["versions"]
    libraries = ", ".join(f"{k} {versions[k]}" for k in ("kgpeft", "torch", "python") if k in versions)
    return f"{record['name']}: started {record['started']}, {record['seconds']:.1f} s; {libraries}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=Path, help="results files (benchmarks/results/*.json)")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args(argv)
    for i, path in enumerate(args.files):
        record = read(path)
        print(("\n" if i else "") + f"== {describe(record)} ({path})")
        groups: dict[Any, list[dict[str, Any]]] = {}
        for row in record["rows"]:
            groups.setdefault(row.get("table"), []).append({k: v for k, v in row.items() if k != "table"})
        for title, rows in groups.items() or {None: []}.items():
            print("\n".join(([f"-- {title}"] if title is not None else []) + table(rows, args.markdown)))


if __name__ == "__main__":
    main()
