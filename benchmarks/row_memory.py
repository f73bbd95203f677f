"""Peak memory of building one dataset row from a long text, the way a task file's row is built.

Loads the main job's KG (WordNet), linker and tokenizer (SmolLM2), then, in a fresh process per
text size, builds a :class:`~kgpeft.data.KnowledgeDataset` of one ``causal_lm`` row whose text
is that many characters of English prose (WordNet's example sentences, repeated) and prints
the peak resident memory the row added over the loaded KG and linker (``ru_maxrss``). Nothing
is asserted.

    python -m benchmarks.row_memory [--sizes 200000 20000000] [--max-length 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.harness import Benchmark, run_module


def _row(size: int, max_length: int) -> dict[str, Any]:
    """In a fresh process: build the row of ``size`` characters; its peak RSS over the loaded KG and linker."""
    from transformers import AutoTokenizer

    from kgpeft.data import KnowledgeDataset
    from kgpeft.datasets import load_kg
    from kgpeft.pretrained import packaged_model_path
    from kgpeft.retrieval import RetrievalConfig
    from kgpeft.tasks import TaskExample

    kg = load_kg("wordnet")
    retrieval = RetrievalConfig()
    linker, retriever = retrieval.build_linker(kg), retrieval.build_retriever(kg, 0)
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_path("SmolLM2-135M-Instruct"))
    examples = [s for s in kg.extras.get("examples", []) if s][:2000] or ["The dog chased a cat across the river bank."]
    prose = " ".join(e if isinstance(e, str) else " ".join(e) for e in examples)
    text = (prose * (size // len(prose) + 1))[:size]
    KnowledgeDataset([TaskExample(text[:100], answer="x")], tokenizer, kg, linker=linker, retriever=retriever)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        row = KnowledgeDataset(
            [TaskExample(text, answer="dog")], tokenizer, kg, linker=linker, retriever=retriever, max_length=max_length
        )[0]
        outcome = f"{len(row['input_ids'])} tokens, {sum(e >= 0 for e in row['token_entity'])} linked"
    except Exception as e:  # the old code's allocation error is a result here
        outcome = f"{type(e).__name__}: {str(e)[:120]}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"chars": size, "peak_rss_mb": (peak - before) / 1024, "seconds": time.perf_counter() - t0, "row": outcome}


def benchmark() -> Benchmark:
    bench = Benchmark("row_memory", __doc__, seeds=None)
    bench.parser.add_argument(
        "--sizes", type=int, nargs="+", default=[200_000, 20_000_000], help="text lengths in characters"
    )
    bench.parser.add_argument("--max-length", type=int, default=64, help="the dataset's max_length (default: 64)")
    bench.parser.add_argument("--row", type=int, help=argparse.SUPPRESS)  # one size, in this process
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    if args.row is not None:
        print(json.dumps(_row(args.row, args.max_length)))
        return
    for size in args.sizes:
        argv = ["--row", str(size), "--max-length", str(args.max_length), "--threads", str(args.threads)]
        done = run_module("row_memory", argv)
        if done.returncode != 0:
            sys.exit(f"row_memory: the process for {size:,} characters failed:\n{done.stderr[-3000:]}")
        row = bench.add(**json.loads(done.stdout.strip().splitlines()[-1]))
        print(
            f"{size:>10,} chars: peak RSS +{row['peak_rss_mb']:,.0f} MB in {row['seconds']:.1f} s ({row['row']})",
            flush=True,
        )
    bench.write(args)


if __name__ == "__main__":
    main()
