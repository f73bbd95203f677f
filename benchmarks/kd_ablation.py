"""Ablation: the main job's KG-LoRA with and without knowledge distillation and the relation-aware loss.

The main job's config (``configs/demo.yaml``: task, model, data, steps, seed) through
:func:`kgpeft.pipeline.run`, with its KG-LoRA adapter in ``--mode`` (default: the config's):

- ``kg-lora``: the task loss alone,
- ``+kd``: plus distillation from a WordNet KGE teacher (its softmax over its top candidate
  hypernyms and the gold ones, as soft targets for the first answer token),
- ``+rel``: plus the relation-aware link-prediction loss on the R-GCN states (modes with a graph
  encoder only: ``token``, ``cross``, ``prefix``),
- ``+kd+rel``: both.

Every run starts from the same initial weights and sees the same batches in the same order,
and is scored with its own, a shuffled and no knowledge. The teacher is trained once on all of
WordNet (``configs/kge/wordnet.yaml``) and cached. Prints the teacher's own accuracy (its top
candidate among all entities is a gold hypernym) on the held-out questions, then the table.

    .venv/bin/python -m benchmarks.kd_ablation                  # memory mode: kg-lora and +kd
    .venv/bin/python -m benchmarks.kd_ablation --mode token     # all four
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from benchmarks.harness import Benchmark
from benchmarks.main_job import result_rows
from kgpeft.datasets import load_kg
from kgpeft.kge import KGEConfig, train_kge
from kgpeft.kge.distillation import DistillationConfig
from kgpeft.pipeline import JobConfig, Variant, load_examples, run


def teacher_file(kg, config_file: Path, cache: Path) -> Path:
    if cache.is_file():
        print(f"teacher: {cache} (cached)")
        return cache
    spec = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config = KGEConfig.from_dict(spec["kge"])
    print(f"teacher: training {config.model} on {kg.num_triples:,} WordNet triples ({config_file})")
    t0 = time.perf_counter()
    result = train_kge(kg, config)
    print(f"teacher trained in {time.perf_counter() - t0:.0f} s ({result.triples_per_second:,.0f} triples/s)")
    cache.parent.mkdir(parents=True, exist_ok=True)
    result.embeddings.save(cache)
    return cache


def teacher_accuracy(distillation: DistillationConfig, kg, examples) -> float:
    """% of questions whose best teacher candidate (over all entities) is a gold hypernym."""
    teacher = distillation.build_teacher(kg)
    hits = 0
    for (ids, scores), e in zip(teacher.soft_targets(examples), examples, strict=True):
        best = ids[max(range(len(ids)), key=scores.__getitem__)]
        hits += kg.entity_keys[best] in e.answer_entities
    return 100 * hits / len(examples)


def benchmark() -> Benchmark:
    bench = Benchmark("kd_ablation", __doc__, config="configs/demo.yaml", seeds=None, threads=2)
    parser = bench.parser
    parser.add_argument("--mode", choices=["token", "cross", "prefix", "memory"], help="KG-LoRA's knowledge mode")
    parser.add_argument("--steps", type=int, help="replace the config's training steps")
    parser.add_argument("--kd-weight", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--num-candidates", type=int, default=8)
    parser.add_argument("--relation-weight", type=float, default=0.1)
    parser.add_argument("--teacher-config", type=Path, default=Path("configs/kge/wordnet.yaml"))
    parser.add_argument("--teacher", type=Path, default=Path("runs/kge/wordnet.safetensors"))
    parser.add_argument("--output-dir", type=Path, default=Path("runs/kd_ablation"), help="where the runs train")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    """The config holds the seed: every run starts from the same weights and batches."""
    bench = benchmark()
    args = bench.parse(argv)
    base = JobConfig.from_yaml(args.config)
    mode = args.mode or base.adapter.knowledge_mode
    kg = load_kg(base.kg)
    distillation = DistillationConfig(
        teacher=str(teacher_file(kg, args.teacher_config, args.teacher)),
        num_candidates=args.num_candidates,
        temperature=args.temperature,
        weight=args.kd_weight,
    )
    test = load_examples(base, kg)["test"]
    teacher = teacher_accuracy(distillation, kg, test)
    print(f"teacher alone: top-1 is a gold hypernym on {teacher:.1f}% of test")

    with_rel = mode != "memory"  # the relation-aware loss trains a graph encoder, which memory mode has none of
    rel = {"relation_loss_weight": args.relation_weight}

    def variant(name: str, relation: bool) -> Variant:
        return Variant(name, adapter="kg-lora", knowledge={"knowledge_mode": mode, **(rel if relation else {})})

    training = dataclasses.replace(base.training, output_dir=str(args.output_dir))
    if args.steps is not None:
        training = dataclasses.replace(training, max_steps=args.steps)
    jobs = [
        (None, [variant("kg-lora", False)] + ([variant("+rel", True)] if with_rel else [])),
        (distillation, [variant("+kd", False)] + ([variant("+kd+rel", True)] if with_rel else [])),
    ]
    tables = []
    for kd, variants in jobs:
        config = dataclasses.replace(base, training=training, distillation=kd, variants=variants)
        results = run(config, plot=False)
        tables.append(results.table())
        for row in result_rows(results.to_dict(), kd=kd is not None, mode=mode):
            bench.add(**row)
    print(f"\nKD: weight {args.kd_weight}, T {args.temperature}, {args.num_candidates} candidates; mode {mode}")
    print(f"relation-aware loss: weight {args.relation_weight}" if with_rel else "relation-aware loss: n/a in memory")
    print("\n".join(tables))
    bench.write(args, teacher_accuracy=teacher)


if __name__ == "__main__":
    main()
