"""The main job: KG-LoRA on WordNet hypernym QA with the real SmolLM2-135M-Instruct.

It links a few sentences against WordNet and shows their subgraphs, then trains, with the
same steps, data order and seed:

- ``lora``: plain LoRA with a trainable-parameter budget matched to KG-LoRA's,
- ``lora+facts``: the same, with the top retrieved facts written into the prompt as text,
- ``kg-lora``: KG-LoRA, the graph entering the attention layers,

and evaluates each, with the untrained base model, on questions about held-out entities
(no test synset is the subject of a training question). It prints a results table, saves
the KG-LoRA adapter (its size printed) and writes a PNG of the training curves and results.
"""

from __future__ import annotations

import copy
import csv
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kgpeft.datasets import hypernym_qa, load
from kgpeft.evaluation import exact_match_score, token_f1_score
from kgpeft.model import get_kg_peft_model
from kgpeft.pretrained import load_packaged_model
from kgpeft.retrieval import RetrievalConfig
from kgpeft.tasks import first_line, generate_texts
from kgpeft.training import KnowledgeCollator, KnowledgeDataset, TrainingConfig, train
from kgpeft.tuners import KGLoraConfig

QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]


@dataclass
class DemoConfig:
    """Settings of the main job; a ``--config`` YAML file holds the same keys."""

    output_dir: str = field(default="demo_output", metadata={"help": "Where adapters, logs and the PNG go."})
    model: str = field(default="SmolLM2-135M-Instruct", metadata={"help": "A packaged causal LM."})
    train_examples: int = field(default=2400, metadata={"help": "Training questions (sampled)."})
    test_examples: int = field(default=200, metadata={"help": "Held-out test questions (sampled)."})
    max_steps: int = field(default=120, metadata={"help": "Optimizer steps per trained variant."})
    batch_size: int = field(default=16, metadata={"help": "Questions per step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (linear decay)."})
    r: int = field(default=8, metadata={"help": "KG-LoRA rank."})
    knowledge_mode: str = field(default="token", metadata={"help": "KG-LoRA's knowledge mode."})
    num_facts: int = field(default=2, metadata={"help": "Facts written into the prompt for `lora+facts`."})
    max_nodes: int = field(default=32, metadata={"help": "Subgraph nodes per question."})
    max_new_tokens: int = field(default=8, metadata={"help": "Answer length at evaluation."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling, retrieval and training."})
    threads: int = field(default=2, metadata={"help": "torch CPU threads."})

    def adapter_config(self, **overrides: Any) -> KGLoraConfig:
        """KG-LoRA's settings in the main job; ``overrides`` replace some (e.g. ``knowledge_mode``)."""
        values = {
            "r": self.r,
            "target_modules": QKVO,
            "knowledge_mode": self.knowledge_mode,
        }
        return KGLoraConfig(**(values | overrides))

    def training_config(self, output_dir: str | Path, **overrides: Any) -> TrainingConfig:
        """The training settings every trained variant shares; ``overrides`` replace some."""
        values = {
            "output_dir": str(output_dir),
            "max_steps": self.max_steps,
            "per_device_train_batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "warmup_steps": 10,
            "logging_steps": 5,
            "seed": self.seed,
            "log_with": ["csv"],
            "save_best": False,
        }
        return TrainingConfig(**(values | overrides))


def _sample(examples: list, n: int, seed: int) -> list:
    examples = list(examples)
    random.Random(seed).shuffle(examples)
    return examples[:n]


def _lora_params_per_rank(model) -> int:
    return sum(
        m.in_features + m.out_features
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in QKVO
    )


def _evaluate(model, dataset: KnowledgeDataset, examples: list, config: DemoConfig) -> dict[str, float]:
    predictions = generate_texts(model, dataset, max_new_tokens=config.max_new_tokens, batch_size=32)
    predictions = [first_line(p) for p in predictions]
    answers = [list(e.answers) for e in examples]
    return {
        "exact_match": 100 * exact_match_score(predictions, answers),
        "token_f1": 100 * token_f1_score(predictions, answers),
        "predictions": predictions,
    }


def _read_curve(folder: Path) -> list[tuple[int, float]]:
    """The training loss per logged step, from the CSV log the trainer writes."""
    with open(folder / "logs" / "metrics.csv", encoding="utf-8") as f:
        return [(int(row["step"]), float(row["value"])) for row in csv.DictReader(f) if row["name"] == "train/loss"]


def _plot(results: dict[str, dict[str, Any]], curves: dict[str, list], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in curves.items():
        if points:
            ax1.plot(*zip(*points, strict=True), label=name)
    ax1.set(xlabel="step", ylabel="training loss", title="Training curves")
    if any(curves.values()):
        ax1.legend()
    names = list(results)
    ax2.bar(names, [results[n]["exact_match"] for n in names], color="tab:blue", label="exact match")
    ax2.set(ylabel="% of held-out questions", title="Hypernym QA, held-out entities")
    for i, n in enumerate(names):
        ax2.text(i, results[n]["exact_match"] + 0.5, f"{results[n]['exact_match']:.1f}", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(config: DemoConfig) -> dict[str, dict[str, Any]]:
    """Run the main job and return each variant's metrics."""
    t_start = time.perf_counter()
    torch.set_num_threads(config.threads)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    kg = load("wordnet")
    tasks = hypernym_qa(kg, seed=config.seed)
    train_examples = _sample(tasks["train"], config.train_examples, config.seed)
    test_examples = _sample(tasks["test"], config.test_examples, config.seed)
    print(f"hypernym QA: {len(train_examples)} training and {len(test_examples)} held-out questions, e.g.")
    for e in test_examples[:3]:
        print(f"  {e.text!r} -> {e.answer!r}")

    base, tokenizer = load_packaged_model(config.model)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    retriever = RetrievalConfig(max_nodes=config.max_nodes).build_retriever(kg, seed=config.seed)

    def data(examples, with_target, num_facts=0):
        max_length = 96 if num_facts else 48
        return KnowledgeDataset(
            examples,
            tokenizer,
            kg,
            retrieval=RetrievalConfig(max_nodes=config.max_nodes, num_facts=num_facts),
            retriever=retriever,
            with_target=with_target,
            max_length=max_length,
            seed=config.seed,
        )

    plain_train, plain_test = data(train_examples, True), data(test_examples, False)
    facts_train = data(train_examples, True, config.num_facts)
    facts_test = data(test_examples, False, config.num_facts)

    kg_model = get_kg_peft_model(copy.deepcopy(base), config.adapter_config(), kg, tokenizer)
    kg_trainable, _ = kg_model.get_nb_trainable_parameters()
    matched_r = max(1, round(kg_trainable / _lora_params_per_rank(base)))

    from peft import LoraConfig, get_peft_model

    def lora():
        return get_peft_model(
            copy.deepcopy(base), LoraConfig(r=matched_r, lora_alpha=2 * matched_r, target_modules=QKVO)
        )

    pad = tokenizer.pad_token_id
    variants = {
        "lora": (lora(), plain_train, plain_test, KnowledgeCollator(pad, with_knowledge=False)),
        "lora+facts": (lora(), facts_train, facts_test, KnowledgeCollator(pad, with_knowledge=False)),
        "kg-lora": (kg_model, plain_train, plain_test, KnowledgeCollator(pad)),
    }
    results: dict[str, dict[str, Any]] = {}
    results["base"] = _evaluate(base, plain_test, test_examples, config) | {"trainable": 0, "train_s": 0.0}
    curves = {}
    for name, (model, train_ds, test_ds, collator) in variants.items():
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"\n== {name}: {trainable:,} trainable parameters, {config.max_steps} steps")
        t0 = time.perf_counter()
        train(model, train_ds, collator, config.training_config(out / name))
        seconds = time.perf_counter() - t0
        results[name] = _evaluate(model, test_ds, test_examples, config) | {"trainable": trainable, "train_s": seconds}
        curves[name] = _read_curve(out / name)

    adapter = out / "kg-lora-adapter"
    kg_model.save_pretrained(adapter)
    size = sum(f.stat().st_size for f in adapter.rglob("*") if f.is_file())

    print("\nHypernym QA on held-out WordNet entities (exact match and token F1, %)")
    print(f"{'model':<12} {'trainable':>11} {'train s':>8} {'EM':>6} {'F1':>6}")
    for name, r in results.items():
        print(f"{name:<12} {r['trainable']:>11,} {r['train_s']:>8.0f} {r['exact_match']:>6.1f} {r['token_f1']:>6.1f}")
    print("\nExamples (question -> gold | base | lora | lora+facts | kg-lora):")
    for i, e in enumerate(test_examples[:6]):
        print(f"  {e.text} -> {e.answer} | " + " | ".join(results[n]["predictions"][i] for n in results))
    print(f"\nKG-LoRA adapter saved to {adapter} ({size / 1e6:.2f} MB)")
    _plot(results, curves, out / "results.png")
    print(f"Training curves and results: {out / 'results.png'}")
    print(f"Total time: {time.perf_counter() - t_start:.0f} s")
    return results
