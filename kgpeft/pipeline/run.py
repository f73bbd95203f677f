"""Run a whole job, every variant under every control, and report the numbers.

:func:`run` is what ``kgpeft train`` and ``kgpeft demo`` call: it prepares the job once,
trains each variant in turn on the same data, steps and seed, evaluates it with the
correct, shuffled and no knowledge (as the config's ``controls`` say), prints one table,
and writes ``results.json`` (and, with matplotlib, ``results.png``) to the output folder.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgpeft.checkpoint import library_versions
from kgpeft.pipeline.budgets import Budgets
from kgpeft.pipeline.config import JobConfig
from kgpeft.pipeline.evaluate import evaluate_variant
from kgpeft.pipeline.job import Job, hold_output_dir, prepare
from kgpeft.pipeline.train import train_variant
from kgpeft.training.checkpoints import refuse_foreign_adapter_folder
from kgpeft.utils import atomic_file, writing

#: The report of a job's variants and controls, in ``training.output_dir``.
RESULTS_FILE = "results.json"
#: What an evaluation returns beside its metrics, kept apart from them in ``results.json``.
_APART = ("predictions", "truncation")


@dataclass
class VariantResult:
    """One variant: its cost, and its metrics under each knowledge control."""

    name: str
    trainable: int
    train_seconds: float
    steps: int
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: A jointly trained fact scorer's answer-fact recall on the test split, before and after training.
    scorer_recall: dict[str, float] | None = None
    truncation: dict[str, dict[str, Any]] = field(default_factory=dict)  # "train" and each control: the cuts

    @property
    def seconds_per_step(self) -> float:
        return self.train_seconds / self.steps if self.steps else 0.0

    def reliance(self, metric: str) -> float | None:
        """``metric`` with the correct knowledge minus with another example's, if both were run."""
        if "correct" in self.metrics and "shuffled" in self.metrics:
            return self.metrics["correct"][metric] - self.metrics["shuffled"][metric]
        return None


@dataclass
class JobResults:
    """Everything :func:`run` measured, in config order."""

    config: JobConfig
    variants: list[VariantResult]
    headline: tuple[str, str]
    seconds: float
    examples: list = field(default_factory=list, repr=False)
    selection: dict[str, Any] | None = None
    budgets: dict[str, Any] | None = None

    def table(self) -> str:
        """The results as a text table: one row per variant and control, scores in %."""
        first, second = self.headline
        lines = [
            f"{'variant':<18} {'control':<9} {first:>11} {second:>9} {'reliance':>8} {'trainable':>10} "
            f"{'s/step':>7} {'prompt tok':>10}"
        ]
        for v in self.variants:
            reliance = v.reliance(first)
            for control, m in v.metrics.items():
                rel = f"{100 * reliance:8.1f}" if reliance is not None and control == "correct" else " " * 8
                lines.append(
                    f"{v.name:<18} {control:<9} {100 * m[first]:11.1f} {100 * m.get(second, 0.0):9.1f} {rel} "
                    f"{v.trainable:>10,} {v.seconds_per_step:7.2f} {m['prompt_tokens']:10.1f}"
                )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.config.task,
            "model": self.config.model,
            "seed": self.config.seed,
            "seconds": self.seconds,
            "headline": list(self.headline),
            "versions": library_versions(),
            "selection": self.selection,
            "budgets": self.budgets,
            "variants": [
                {
                    "name": v.name,
                    "trainable": v.trainable,
                    "train_seconds": v.train_seconds,
                    "steps": v.steps,
                    "reliance": v.reliance(self.headline[0]),
                    **({"scorer_recall": v.scorer_recall} if v.scorer_recall is not None else {}),
                    "metrics": {c: {k: x for k, x in m.items() if k not in _APART} for c, m in v.metrics.items()},
                    "predictions": {c: m["predictions"] for c, m in v.metrics.items()},
                    "truncation": v.truncation,
                }
                for v in self.variants
            ],
        }


def run(config: JobConfig, job: Job | None = None, plot: bool = True) -> JobResults:
    """Prepare the job (unless given), train and evaluate every variant under every control, and report.

    ``training.output_dir`` is held for the whole run (:func:`~kgpeft.pipeline.job.hold_output_dir`):
    a second job writing there stops at once, naming the lock. ``results.json`` keeps the variants
    that earlier runs of the same task, model and seed wrote there and this run did not train again
    (:func:`write_results`).
    """
    t0 = time.perf_counter()
    with hold_output_dir(config):  # before loading the KG and the model: checks the folder can be written
        _check_variant_folders(config)
        job = job if job is not None else prepare(config)
        if job.selection_report is not None:
            print(f"fact scorer: {json.dumps(job.selection_report)}")
        results = []
        for variant in config.variants:
            print(f"\n== {variant.name}: adapter {variant.adapter}, facts {variant.facts}")
            trained = train_variant(job, variant)
            result = VariantResult(variant.name, trained.trainable, trained.seconds, trained.steps)
            if trained.scorer_recall is not None:
                result.scorer_recall = trained.scorer_recall
                print(f"{variant.name}: fact scorer's answer-fact recall (test): {json.dumps(trained.scorer_recall)}")
            if trained.truncation is not None:
                result.truncation["train"] = trained.truncation
            for control in config.controls if variant.uses_knowledge else ["correct"]:
                result.metrics[control] = evaluate_variant(job, variant, trained.model, control)
                result.truncation[control] = result.metrics[control]["truncation"]
            results.append(result)
            card = _card(config, variant, result, job.budgets)
            variant.kind.save(trained.model, Path(config.training.output_dir) / variant.name, card)
            del trained
        seconds = time.perf_counter() - t0
        headline = config.task_kind.headline_metrics(config.task_metric)
        budgets = job.budgets.to_dict()
        out = JobResults(config, results, headline, seconds, job.splits["test"], job.selection_report, budgets)
        print(f"\n{config.task}: {len(job.splits['test'])} held-out examples, scores in %")
        print(out.table())
        folder = Path(config.training.output_dir)
        write_results(out, folder / RESULTS_FILE)
        if plot:
            plot_results(out, folder / "results.png")
    return out


def _check_variant_folders(config: JobConfig) -> None:
    """Refuse, before anything is trained, a variant's adapter folder that holds files kgpeft did not write.

    The trainer and :meth:`~kgpeft.KGPeftModel.save_pretrained` refuse such a folder too, but only when
    they reach it, after the variants before it have trained.
    """
    for variant in config.variants:
        for name in variant.kind.folders:
            refuse_foreign_adapter_folder(Path(config.training.output_dir) / variant.name / name)


def write_results(results: JobResults, path: Path) -> None:
    """Write ``results`` to ``path`` (``results.json``) atomically, keeping what earlier runs of the job wrote there.

    A variant this run trained replaces its earlier entry; the entries of other variants stay,
    when the file holds the same task, model and seed (a job run again with other variants). A
    file of another job, or one that cannot be read, is replaced with a warning. Call it holding
    the folder (:func:`~kgpeft.pipeline.job.hold_output_dir`), so no other job writes it meanwhile.
    """
    report = results.to_dict()
    earlier = _read_results(path)
    if earlier is not None:
        same = ("task", "model", "seed")
        if all(earlier.get(k) == report[k] for k in same):
            variants = {v["name"]: v for v in earlier["variants"]}
            variants.update((v["name"], v) for v in report["variants"])
            report["variants"] = list(variants.values())
        else:
            what = ", ".join(f"{k} {earlier.get(k)!r}" for k in same)
            warnings.warn(f"Replacing {path}, which held the results of another job ({what}).", stacklevel=2)
    with writing(path), atomic_file(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")


def _read_results(path: Path) -> dict[str, Any] | None:
    """The report in ``path`` written by an earlier run, or ``None`` (with a warning if it cannot be read)."""
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        warnings.warn(f"Replacing {path}, which cannot be read ({e}).", stacklevel=3)
        return None
    variants = report.get("variants") if isinstance(report, dict) else None
    if not (
        isinstance(variants, list) and all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in variants)
    ):
        warnings.warn(f"Replacing {path}, which holds no list of variants.", stacklevel=3)
        return None
    return report


def _card(config: JobConfig, variant: Any, result: VariantResult, budgets: Budgets) -> dict[str, Any]:
    """What the saved adapter's card records of the job: task, training settings (the token budgets its rows
    were cut to among them), test results per control."""
    training = config.training
    return {
        "base_model": config.model,
        "task": config.task,
        "training": {
            "steps": result.steps,
            "train_seconds": round(result.train_seconds, 1),
            "batch_size": training.per_device_train_batch_size * training.gradient_accumulation_steps,
            "learning_rate": training.learning_rate,
            "mixed_precision": training.mixed_precision,
            "seed": config.seed,
            "prompt_facts": variant.facts,
            "trainable_parameters": result.trainable,
            "max_length": budgets.max_length,
            "max_fact_tokens": budgets.max_fact_tokens,
        },
        "results": {
            control: {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            for control, metrics in result.metrics.items()
        },
    }


def train_job(config: JobConfig) -> JobResults:
    """``kgpeft train``: run the job's variants (by default its one KG-LoRA adapter) and print the metrics as JSON."""
    results = run(config, plot=False)
    summary = {v["name"]: v["metrics"] for v in results.to_dict()["variants"]}
    print(json.dumps({"test": summary}, indent=2))
    return results


def _read_curve(folder: Path) -> list[tuple[int, float]]:
    """The training loss per logged step, from the CSV log the trainer writes (empty without one)."""
    path = folder / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as f:
        return [(int(row["step"]), float(row["value"])) for row in csv.DictReader(f) if row["name"] == "train/loss"]


def plot_results(results: JobResults, path: Path) -> None:
    """Training curves and the headline metric per variant and control, as a PNG (needs matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = results.headline[0]
    folder = Path(results.config.training.output_dir)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for v in results.variants:
        points = _read_curve(folder / v.name)
        if points:
            ax1.plot(*zip(*points, strict=True), label=v.name)
    ax1.set(xlabel="step", ylabel="training loss", title="Training curves")
    if ax1.lines:
        ax1.legend()
    controls = list(dict.fromkeys(c for v in results.variants for c in v.metrics))
    width = 0.8 / len(controls)
    for k, control in enumerate(controls):
        xs = [i + k * width for i, v in enumerate(results.variants) if control in v.metrics]
        ys = [100 * v.metrics[control][first] for v in results.variants if control in v.metrics]
        ax2.bar(xs, ys, width, label=control)
    ax2.set_xticks([i + width * (len(controls) - 1) / 2 for i in range(len(results.variants))])
    ax2.set_xticklabels([v.name for v in results.variants], rotation=20, ha="right")
    ax2.set(ylabel=f"{first} (%)", title=f"{results.config.task}, held-out examples, by control")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
