"""Ablation: the main job's KG-LoRA with and without knowledge distillation and the relation-aware loss.

The main job's task (hypernym QA on WordNet, questions about held-out entities), model
(SmolLM2-135M-Instruct), data, steps and seed, as ``kgpeft demo``; four KG-LoRA runs:

- ``kg-lora``: the task loss alone,
- ``+kd``: plus distillation from a WordNet KGE teacher (its softmax over its top candidate
  hypernyms and the gold ones, as soft targets for the first answer token),
- ``+rel``: plus the relation-aware link-prediction loss on the R-GCN states,
- ``+kd+rel``: both.

Every run starts from the same initial weights and sees the same batches in the same order.
The teacher is trained once on all of WordNet (``configs/kge/wordnet.yaml``) and cached.
Prints exact match and token F1 on the held-out questions, and the teacher's own accuracy
(its top candidate among all entities is a gold hypernym) on the same questions.

    .venv/bin/python benchmarks/kd_ablation.py               # about 25 minutes on 2 CPU cores
    .venv/bin/python benchmarks/kd_ablation.py --steps 40    # a quicker look
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import yaml

from kgpeft.datasets import hypernym_qa, load
from kgpeft.demo import DemoConfig, _evaluate, _sample
from kgpeft.kge import KGEConfig, KGEmbeddings, train_kge
from kgpeft.kge.distillation import KGETeacher
from kgpeft.model import get_kg_peft_model
from kgpeft.pretrained import load_packaged_model
from kgpeft.retrieval import RetrievalConfig
from kgpeft.training import KnowledgeCollator, KnowledgeDataset, train


def teacher_embeddings(kg, config_file: Path, cache: Path) -> KGEmbeddings:
    if cache.is_file():
        print(f"teacher: {cache} (cached)")
        return KGEmbeddings.load(cache, kg)
    spec = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config = KGEConfig.from_dict(spec["kge"])
    print(f"teacher: training {config.model} on {kg.num_triples:,} WordNet triples ({config_file})")
    t0 = time.perf_counter()
    result = train_kge(kg, config)
    print(f"teacher trained in {time.perf_counter() - t0:.0f} s ({result.triples_per_second:,.0f} triples/s)")
    result.embeddings.save(cache)
    return result.embeddings


def teacher_accuracy(teacher: KGETeacher, examples) -> float:
    """% of questions whose best teacher candidate (over all entities) is a gold hypernym."""
    kg = teacher.kg
    hits = 0
    for (ids, scores), e in zip(teacher.soft_targets(examples), examples, strict=True):
        best = ids[max(range(len(ids)), key=scores.__getitem__)]
        hits += kg.entity_keys[best] in e.answer_entities
    return 100 * hits / len(examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    demo = DemoConfig()
    parser.add_argument("--steps", type=int, default=demo.max_steps)
    parser.add_argument("--train-examples", type=int, default=demo.train_examples)
    parser.add_argument("--test-examples", type=int, default=demo.test_examples)
    parser.add_argument("--seed", type=int, default=demo.seed)
    parser.add_argument("--kd-weight", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--num-candidates", type=int, default=8)
    parser.add_argument("--relation-weight", type=float, default=0.1)
    parser.add_argument("--teacher-config", type=Path, default=Path("configs/kge/wordnet.yaml"))
    parser.add_argument("--teacher", type=Path, default=Path("runs/kge/wordnet.safetensors"))
    parser.add_argument("--output-dir", type=Path, default=Path("runs/kd_ablation"))
    parser.add_argument("--variants", nargs="+", default=["kg-lora", "+kd", "+rel", "+kd+rel"])
    parser.add_argument("--threads", type=int, default=demo.threads, help="torch CPU threads")
    args = parser.parse_args()
    demo = DemoConfig(
        max_steps=args.steps, train_examples=args.train_examples, test_examples=args.test_examples, seed=args.seed
    )
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    kg = load("wordnet")
    tasks = hypernym_qa(kg, seed=args.seed)
    train_examples = _sample(tasks["train"], args.train_examples, args.seed)
    test_examples = _sample(tasks["test"], args.test_examples, args.seed)
    print(f"hypernym QA: {len(train_examples)} training and {len(test_examples)} held-out questions")

    embeddings = teacher_embeddings(kg, args.teacher_config, args.teacher)
    teacher = KGETeacher(
        embeddings, kg, num_candidates=args.num_candidates, temperature=args.temperature, weight=args.kd_weight
    )
    print(f"teacher alone: top-1 is a gold hypernym on {teacher_accuracy(teacher, test_examples):.1f}% of test")

    base, tokenizer = load_packaged_model(demo.model)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    retriever = RetrievalConfig(max_nodes=demo.max_nodes).build_retriever(kg, seed=args.seed)

    def data(examples, with_target, teacher=None):
        kwargs = {"retriever": retriever, "max_length": 48, "seed": args.seed, "teacher": teacher}
        return KnowledgeDataset(examples, tokenizer, kg, with_target=with_target, **kwargs)

    plain_train, kd_train, test = (
        data(train_examples, True),
        data(train_examples, True, teacher),
        data(test_examples, False),
    )
    results = {}
    for name in args.variants:
        kd, rel = "kd" in name, "rel" in name
        config = demo.adapter_config(relation_loss_weight=args.relation_weight if rel else 0.0)
        torch.manual_seed(args.seed)  # the same initial adapter and encoder in every run
        model = get_kg_peft_model(copy.deepcopy(base), config, kg, tokenizer)
        training = demo.training_config(args.output_dir / name.replace("+", "plus-"))
        print(f"\n== {name}: {args.steps} steps")
        t0 = time.perf_counter()
        result = train(model, kd_train if kd else plain_train, KnowledgeCollator(tokenizer.pad_token_id), training)
        seconds = time.perf_counter() - t0
        metrics = _evaluate(model, test, test_examples, demo)
        results[name] = {**metrics, "train_s": seconds, "train_loss": result.train_loss}

    print(f"\nHypernym QA on held-out WordNet entities, KG-LoRA, {args.steps} steps, seed {args.seed}")
    print(f"KD: weight {args.kd_weight}, T {args.temperature}, {args.num_candidates} candidates")
    print(f"relation-aware loss: weight {args.relation_weight}; the train loss includes the auxiliary terms")
    print(f"{'variant':<10} {'EM':>6} {'F1':>6} {'train loss':>11} {'train s':>8}")
    for name, r in results.items():
        em, f1 = r["exact_match"], r["token_f1"]
        print(f"{name:<10} {em:>6.1f} {f1:>6.1f} {r['train_loss']:>11.4f} {r['train_s']:>8.0f}")
    print(f"Total time: {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
