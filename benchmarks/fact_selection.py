"""Which facts reach the answer: the prior order against the trained fact scorer, no language model trained.

For each task, the main job's retrieval (``configs/demo.yaml``: 2,400 training and 200 held-out
questions, subgraphs of at most 32 nodes) and, on the held-out questions, the share whose top-k
facts include one joining the question's linked entity and a gold answer ("answer-fact
recall@k"), for

- ``prior``: the data path's default order (facts touching a linked entity first, then retrieval order),
- ``scorer``: :class:`kgpeft.selection.FactScorer` trained on the training questions' answer entities
  (the ``answers`` objective, ``selection:`` settings of the config),

and the share of questions whose subgraph holds a gold answer at all (the ceiling). A cheap,
decisive probe: facts in the prompt are copied, so a fact that is not selected cannot help.

    .venv/bin/python -m benchmarks.fact_selection --tasks hypernym_qa relation_qa
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from benchmarks.harness import Benchmark
from kgpeft.pipeline import JobConfig, Variant, prepare
from kgpeft.selection import FactScorerConfig, answer_fact_recall, fact_recall, rank_facts


def prior_recall(data, k: int) -> float:
    rankings = [rank_facts(graph, {m.entity for m in ms}) for graph, ms in zip(data.graphs, data.mentions, strict=True)]
    return fact_recall(data, rankings, k)


def ceiling(data) -> float:
    kg = data.kg
    found = [
        bool(set(data.graphs[i].n_id.tolist()) & {kg.entity_id(a) for a in e.answer_entities})
        for i, e in enumerate(data.examples)
        if e.answer_entities
    ]
    return sum(found) / max(len(found), 1)


def benchmark() -> Benchmark:
    bench = Benchmark("fact_selection", __doc__, config="configs/demo.yaml")
    bench.parser.add_argument("--tasks", nargs="+", default=["hypernym_qa", "relation_qa"])
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    base = JobConfig.from_yaml(args.config)
    lines = []
    for task in args.tasks:
        for seed in args.seeds:
            selection = base.selection or FactScorerConfig()
            training = dataclasses.replace(base.training, output_dir=f"runs/fact_selection/{task}")
            config = dataclasses.replace(
                base, task=task, seed=seed, selection=selection, training=training, variants=[Variant("x")]
            )
            t0 = time.perf_counter()
            job = prepare(config)
            seconds = time.perf_counter() - t0
            test = job.dataset("test", Variant("lora", adapter="lora"), with_target=False)
            for k in (1, 2, 4):
                row = bench.add(
                    task=task,
                    seed=seed,
                    k=k,
                    prior=prior_recall(test, k),
                    scorer=answer_fact_recall(job.scorer, test, job.tokenizer, k),
                    ceiling=ceiling(test),
                    prepare_s=seconds,
                )
                lines.append(
                    f"{task:<12} {seed:>4} {k:>2} {100 * row['prior']:8.1f} {100 * row['scorer']:8.1f} "
                    f"{100 * row['ceiling']:8.1f}"
                )
            lines.append(f"{task:<12} (prepare incl. scorer training: {seconds:.0f} s; {job.selection_report})")
    print(f"\n{'task':<12} {'seed':>4} {'k':>2} {'prior':>8} {'scorer':>8} {'ceiling':>8}   answer-fact recall@k, %")
    print("\n".join(lines))
    bench.write(args)


if __name__ == "__main__":
    main()
