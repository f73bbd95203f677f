"""``python -m kgpeft.datasets.synthetic_kg OUT --entities N``: :func:`~kgpeft.datasets.synthetic` from the shell.

The command lives apart from :mod:`kgpeft.datasets.synthetic_graph`, which ``kgpeft.datasets``
imports, so that running it as ``__main__`` does not run a module the package has imported already.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kgpeft.datasets.synthetic_graph import synthetic


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kgpeft.datasets.synthetic_kg",
        description="Write a synthetic KG folder (train/valid/test.txt, entities.tsv, synthetic.json).",
    )
    parser.add_argument("out", type=Path, help="the folder to write")
    parser.add_argument("--entities", type=int, required=True, help="number of entities")
    parser.add_argument("--relations", type=int, default=100, help="number of relations (default: 100)")
    parser.add_argument("--triples", type=int, default=None, help="triples over all splits (default: 4 x entities)")
    parser.add_argument("--aliases", type=int, default=2, help="aliases per entity (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--valid-fraction", type=float, default=0.01, help="share of valid triples (default: 0.01)")
    parser.add_argument("--test-fraction", type=float, default=0.01, help="share of test triples (default: 0.01)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        folder = synthetic(
            args.out,
            args.entities,
            num_relations=args.relations,
            num_triples=args.triples,
            aliases_per_entity=args.aliases,
            seed=args.seed,
            valid_fraction=args.valid_fraction,
            test_fraction=args.test_fraction,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    counts = json.loads((folder / "synthetic.json").read_text(encoding="utf-8"))["counts"]
    splits = counts["triples"]
    print(f"Wrote {folder} in {time.perf_counter() - started:.1f} s")
    print(f"  entities:  {counts['entities']} ({counts['aliases']} aliases)")
    print(f"  relations: {counts['relations']}")
    print(f"  triples:   train {splits['train']}, valid {splits['valid']}, test {splits['test']}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
