"""Does the model answer better *because of the graph*? Every design against its baselines and controls.

Runs the main job's config (``configs/demo.yaml``: SmolLM2-135M-Instruct, 2,400 training and 200
held-out questions, 120 steps of 16) through :func:`kgpeft.pipeline.run` for each task and seed,
with these variants on the same data, steps and seed:

- ``base``: the untrained model; ``lora``: plain LoRA, budget-matched to KG-LoRA;
- ``lora+facts2`` / ``lora+facts4``: LoRA with the 2 / 4 prior-ranked facts (those touching a linked
  entity first) written into the prompt;
- ``graph+facts2``: LoRA with the 2 facts the trained fact scorer (an R-GCN over the question's
  subgraph, conditioned on the question) ranks first;
- ``memory``: KG-LoRA ``knowledge_mode: memory``, the scorer's 2 facts as key/value slots, nothing in
  the prompt (graph only);
- ``memory+joint`` / ``memory+joint-from-staged``: the same, its fact scorer trained with the adapter from the
  task loss (fresh, or from the staged scorer): it picks each batch's memory facts and its log-probabilities
  bias the attention to their slots; the scorer's answer-fact recall before and after is printed;
- ``memory+facts2``: the same adapter, and the 2 selected facts in the prompt too;
- ``memory+drop20`` / ``graph+facts2+drop20``: the same, trained with knowledge dropout (a fifth of
  the training questions without knowledge), so that they still answer when given none;
- ``token``: the first KG-LoRA design (node states added at linked tokens), for reference;

each evaluated with its own knowledge, another question's (shuffled) and none. It prints, per task,
the mean and spread (min..max) over the seeds of the headline metric, and the reliance
(correct - shuffled), writes every run's ``results.json`` under ``--output-dir`` and a row per task,
seed, variant and control to ``--output``.

    .venv/bin/python -m benchmarks.knowledge_quality --tasks hypernym_qa --seeds 0        # ~40 min, 2 cores
    .venv/bin/python -m benchmarks.knowledge_quality --tasks hypernym_qa relation_qa --seeds 0 1 2
    .venv/bin/python -m benchmarks.knowledge_quality --variants lora graph+facts2 memory  # a subset
    .venv/bin/python -m benchmarks.knowledge_quality --config configs/supersense_qa.yaml --tasks supersense_qa \
        --objective marginal --scorer-steps 100 --variants graph+facts2 memory   # no answer entities to learn from
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness import Benchmark
from benchmarks.main_job import result_rows
from kgpeft.pipeline import JobConfig, Variant, run
from kgpeft.selection import FactScorerConfig

#: The memory design read as a prefix in the text's softmax (README: "Why memory reads worse than text").
SHARED = {"memory_positions": "prefix", "memory_softmax": "shared"}


#: The main job's memory design (configs/demo.yaml): a key/value prefix in the text's softmax, gates held open, the
#: facts encoded together by the adapter's own LoRA.
MAIN = {
    **SHARED,
    "memory_gate_opening": 0.99,
    "memory_gate_scale": 1.0,
    "memory_encoder": "trained",
    "memory_facts_together": True,
}


def _memory(name: str, scorer_training: str | None = None, **settings) -> Variant:
    """A KG-LoRA memory variant with these ``KGLoraConfig`` settings."""
    return Variant(
        name, adapter="kg-lora", knowledge={"knowledge_mode": "memory", **settings}, scorer_training=scorer_training
    )


VARIANTS = {
    "base": Variant("base", adapter="none"),
    "lora": Variant("lora", adapter="lora"),
    "lora+facts2": Variant("lora+facts2", adapter="lora", facts="prior", num_facts=2),
    "lora+facts4": Variant("lora+facts4", adapter="lora", facts="prior", num_facts=4),
    "graph+facts2": Variant("graph+facts2", adapter="lora", facts="selected", num_facts=2),
    "memory": _memory("memory"),
    "memory+pos": _memory("memory+pos", memory_positions="prefix"),
    "memory+shared": _memory("memory+shared", **SHARED),
    "memory+shared+adapter": _memory("memory+shared+adapter", **SHARED, memory_encoder="adapter"),
    "memory+adapter": _memory("memory+adapter", memory_encoder="adapter"),
    "memory+shared+gate100": _memory("memory+shared+gate100", **SHARED, memory_gate_scale=100.0),
    "memory+shared+open": _memory("memory+shared+open", **SHARED, memory_gate_opening=0.99),
    # gates held open (scale 1: Adam's ~lr steps move tanh(0.99) by under 0.01 in 120 steps): a key/value prefix
    "memory+prefix": _memory("memory+prefix", **SHARED, memory_gate_opening=0.99, memory_gate_scale=1.0),
    "memory+prefix+trained": _memory(
        "memory+prefix+trained", **SHARED, memory_gate_opening=0.99, memory_gate_scale=1.0, memory_encoder="trained"
    ),
    "memory+prefix+trained+together": _memory(
        "memory+prefix+trained+together",
        **SHARED,
        memory_gate_opening=0.99,
        memory_gate_scale=1.0,
        memory_encoder="trained",
        memory_facts_together=True,
    ),
    # the main design (configs/demo.yaml's kg-lora) with its fact scorer trained jointly, from the task loss
    **{
        f"main+{training}": _memory(f"main+{training}", scorer_training=training, **MAIN)
        for training in ("staged", "joint", "joint-from-staged")
    },
    # the main design read by each layer's own attention function, once (memory_softmax='inline')
    "main+inline": _memory("main+inline", scorer_training="staged", **{**MAIN, "memory_softmax": "inline"}),
    # the main design, the facts' gradient reaching each layer's key/value LoRA only (no backward over the facts)
    "main+projections": _memory("main+projections", **{**MAIN, "memory_encoder": "projections"}),
    "memory+joint": _memory("memory+joint", scorer_training="joint"),
    "memory+joint-from-staged": _memory("memory+joint-from-staged", scorer_training="joint-from-staged"),
    "memory+shared+open+joint-from-staged": _memory(
        "memory+shared+open+joint-from-staged",
        scorer_training="joint-from-staged",
        **SHARED,
        memory_gate_opening=0.99,
    ),
    "memory+facts2": Variant(
        "memory+facts2", adapter="kg-lora", facts="selected", num_facts=2, knowledge={"knowledge_mode": "memory"}
    ),
    "memory+drop20": Variant(
        "memory+drop20", adapter="kg-lora", knowledge={"knowledge_mode": "memory"}, knowledge_dropout=0.2
    ),
    "graph+facts2+drop20": Variant(
        "graph+facts2+drop20", adapter="lora", facts="selected", num_facts=2, knowledge_dropout=0.2
    ),
    "token": Variant("token", adapter="kg-lora", knowledge={"knowledge_mode": "token"}),
}


def config_for(base: JobConfig, task: str, seed: int, variants: list[str], output: Path, steps: int | None):
    training = dataclasses.replace(base.training, output_dir=str(output / f"{task}-seed{seed}"))
    if steps is not None:
        training = dataclasses.replace(training, max_steps=steps)
    return dataclasses.replace(
        base,
        task=task,
        seed=seed,
        training=training,
        variants=[VARIANTS[v] for v in variants],
        controls=["correct", "shuffled", "none"],
    )


def summary(runs: dict[int, dict], metric: str) -> list[str]:
    """Mean and min..max over seeds, per variant and control; a joint scorer's recall before and after."""
    lines = []
    first = next(iter(runs.values()))
    for v in first["variants"]:
        name = v["name"]
        recalls = [next(x for x in r["variants"] if x["name"] == name).get("scorer_recall") for r in runs.values()]
        if all(recalls):
            before, after = (statistics.mean(100 * r[k] for r in recalls) for k in ("before", "after"))
            lines.append(f"  {name:<15} {'recall':<9} {before:6.1f} -> {after:.1f} (the scorer's answer facts)")
        for control in v["metrics"]:
            values = [
                100 * next(x for x in r["variants"] if x["name"] == name)["metrics"][control][metric]
                for r in runs.values()
            ]
            spread = f"{min(values):5.1f}..{max(values):5.1f}" if len(values) > 1 else ""
            lines.append(f"  {name:<15} {control:<9} {statistics.mean(values):6.1f}  {spread}")
        reliances = [next(x for x in r["variants"] if x["name"] == name)["reliance"] for r in runs.values()]
        if all(x is not None for x in reliances):
            lines.append(f"  {name:<15} {'reliance':<9} {100 * statistics.mean(reliances):6.1f}")
    return lines


def benchmark() -> Benchmark:
    bench = Benchmark("knowledge_quality", __doc__, config="configs/demo.yaml", threads=2)
    parser = bench.parser
    parser.add_argument("--tasks", nargs="+", default=["hypernym_qa", "relation_qa"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, help="replace the config's training steps")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/knowledge_quality"), help="where the runs train")
    parser.add_argument(
        "--objective",
        choices=["answers", "marginal"],
        help="train the fact scorer with this objective (`marginal`: from the answers' likelihood alone)",
    )
    parser.add_argument("--scorer-steps", type=int, help="replace the fact scorer's training steps")
    parser.add_argument(
        "--scorer-training",
        choices=["staged", "joint", "joint-from-staged"],
        help="replace `selection.training` (a job without a `selection:` section gets the default one): `joint` "
        "trains a fresh fact scorer with each memory variant, from the task loss alone",
    )
    parser.add_argument("--memory-facts", type=int, help="replace `retrieval.memory_facts` (slots per question)")
    parser.add_argument(
        "--memory-framing", choices=["fact", "block"], help="replace `retrieval.memory_framing` (how slots are written)"
    )
    parser.add_argument("--eval-examples", type=int, help="replace `max_eval_examples` (held-out questions)")
    parser.add_argument("--train-examples", type=int, help="replace `max_train_examples`")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    base = JobConfig.from_yaml(args.config)
    if args.objective or args.scorer_steps or args.scorer_training:
        selection = base.selection or FactScorerConfig()
        if args.objective:
            selection = dataclasses.replace(selection, objective=args.objective)
        if args.scorer_steps:
            selection = dataclasses.replace(selection, max_steps=args.scorer_steps)
        if args.scorer_training:
            selection = dataclasses.replace(selection, training=args.scorer_training)
        base = dataclasses.replace(base, selection=selection)
    if args.memory_facts is not None:
        base = dataclasses.replace(base, retrieval=dataclasses.replace(base.retrieval, memory_facts=args.memory_facts))
    if args.memory_framing is not None:
        framing = dataclasses.replace(base.retrieval, memory_framing=args.memory_framing)
        base = dataclasses.replace(base, retrieval=framing)
    for name in ("eval_examples", "train_examples"):
        if getattr(args, name) is not None:
            base = dataclasses.replace(base, **{f"max_{name}": getattr(args, name)})
    report = []
    for task in args.tasks:
        runs = {}
        for seed in args.seeds:
            config = config_for(base, task, seed, args.variants, args.output_dir, args.steps)
            results = run(config)
            runs[seed] = results.to_dict()
            metric = results.headline[0]
            for row in result_rows(runs[seed]):
                bench.add(**row)
        report.append(f"\n{task}: {metric} (%), mean and min..max over seeds {args.seeds}")
        report.extend(summary(runs, metric))
    print("\n".join(report))
    bench.write(args)


if __name__ == "__main__":
    main()
