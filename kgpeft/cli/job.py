"""The job commands: ``kgpeft train | evaluate | predict | explain | demo`` over a job config, and ``info``."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from kgpeft.card import adapter_info, render_card
from kgpeft.checkpoint import CONFIG_NAME, read_adapter_config
from kgpeft.cli.link import LinkConfig, check_utf8, link_parts, show_link, texts_of
from kgpeft.configuration import ConfigError
from kgpeft.datasets import load_kg
from kgpeft.explain import explain, plot_explanation
from kgpeft.inference import generate_texts, predict_classes
from kgpeft.model import KGPeftModel
from kgpeft.pipeline import (
    Job,
    JobConfig,
    Variant,
    evaluate_variant,
    load_base_model,
    load_variant_model,
    prepare,
    run,
    train_job,
)
from kgpeft.pipeline.answer import as_examples, predict
from kgpeft.pipeline.job import hold_output_dir
from kgpeft.utils import ensure_writable

DEMO_SENTENCES = [
    "The dog chased a cat across the river bank.",
    "She deposited the money at the bank before lunch.",
    "A violin is a bowed string instrument.",
    "The oak tree lost its leaves in autumn.",
]


def job_config(args: argparse.Namespace) -> JobConfig:
    """``--config`` with ``--seed``, ``--output-dir`` and ``--resume`` laid over it; kept as ``args.job_config``."""
    config = JobConfig.from_yaml(args.config)
    overrides = {k: getattr(args, k) for k in ("seed",) if getattr(args, k, None) is not None}
    training = {}
    if getattr(args, "output_dir", None) is not None:
        training["output_dir"] = str(args.output_dir)
    if getattr(args, "resume", False):
        training["resume_from_checkpoint"] = "latest"
    if training:
        overrides["training"] = dataclasses.replace(config.training, **training)
    args.job_config = dataclasses.replace(config, **overrides) if overrides else config
    return args.job_config


def _adapter_dir(args: argparse.Namespace) -> Path:
    """``--adapter``, checked to be a folder before anything loads."""
    if not args.adapter.is_dir():
        raise ConfigError(f"--adapter: {args.adapter} is not a folder (one written by save_pretrained).")
    return args.adapter


def _variant(config: JobConfig, name: str | None) -> Variant:
    """The variant called ``name``, or the job's first variant that reads the KG itself (KG-LoRA)."""
    if name is not None:
        for variant in config.variants:
            if variant.name == name:
                return variant
        raise ConfigError(
            f"--variant: no variant {name!r} in the config; variants: {[v.name for v in config.variants]}"
        )
    return next((v for v in config.variants if v.kind.reads_knowledge), config.variants[0])


def cmd_demo(args: argparse.Namespace) -> None:
    if not Path(args.config).exists():
        raise ConfigError(f"--config: {args.config} does not exist (the main job is configs/demo.yaml in the repo).")
    config = job_config(args)
    torch.set_num_threads(args.threads)
    if isinstance(config.kg, str) and config.kg.lower() == "wordnet":  # the sentences are WordNet's words
        print("kgpeft demo: link sentences against WordNet 3.0 and retrieve their knowledge subgraphs")
        link = LinkConfig(kg=config.kg)
        show_link(*link_parts(link), DEMO_SENTENCES, link.max_facts)
    print(f"\nkgpeft demo: {args.config}: {', '.join(v.name for v in config.variants)} on {config.task}")
    with hold_output_dir(config):  # checked before loading the KG and the model, held until the results are written
        job = prepare(config)
        results = run(config, job)
    names = [v.name for v in results.variants]
    predictions = {v.name: v.metrics["correct"]["predictions"] for v in results.variants}
    test = results.examples
    print(f"\nExamples (question -> gold | {' | '.join(names)}):")
    for i, e in enumerate(test[:6]):
        gold = e.answer if e.answer is not None else e.label  # a classifier's rows carry a class index
        print(f"  {e.text} -> {gold} | " + " | ".join(str(predictions[n][i]) for n in names))
    folder = Path(config.training.output_dir)
    for variant in config.variants:
        adapter = folder / variant.name / "adapter"
        if adapter.is_dir():
            size = sum(f.stat().st_size for f in adapter.rglob("*") if f.is_file())
            print(f"{variant.name} adapter saved to {adapter} ({size / 1e6:.2f} MB)")
    picture = _show_explanations(job, folder)
    print(f"Results: {folder / 'results.json'}, {folder / 'results.png'}{picture}; total time {results.seconds:.0f} s")


def _show_explanations(job: Job, folder: Path, count: int = 2) -> str:
    """Explain the first KG-LoRA variant's answers to ``count`` held-out questions; draw the first."""
    variant = next((v for v in job.config.variants if v.kind.reads_knowledge), None)
    if variant is None or not job.config.task_kind.explainable:
        return ""
    model = load_variant_model(job, variant, folder / variant.name / "adapter")
    data = job.dataset("test", variant, with_target=False)
    explanations = explain(model, data, list(range(count)), scorer=job.scorer, max_new_tokens=job.config.max_new_tokens)
    print(
        f"\nWhich facts drove {variant.name}'s answers (leave-one-out: the answer's log-probability lost without it):"
    )
    for e, example in zip(explanations, data.examples[:count], strict=True):
        print(f"  {e.text} -> {e.answer} (gold: {example.answer})")
        for fact in e.top_facts(3):
            print(f"    {fact.leave_one_out:+7.2f}  {fact.text} ({fact.read_as})")
    path = folder / "explanation.png"
    try:
        plot_explanation(explanations[0], path)
    except ImportError:
        return ""
    return f", {path}"


def cmd_train(args: argparse.Namespace) -> None:
    train_job(job_config(args))


def cmd_evaluate(args: argparse.Namespace) -> None:
    config = job_config(args)
    variant = _variant(config, args.variant)
    adapter = _adapter_dir(args)
    job = prepare(config, train_scorer=False)
    model = load_variant_model(job, variant, adapter)
    controls = config.controls if variant.uses_knowledge else ["correct"]
    metrics = {c: evaluate_variant(job, variant, model, c, split=args.split) for c in controls}
    for m in metrics.values():
        m.pop("predictions")
    print(json.dumps({args.split: metrics}, indent=2))


def cmd_predict(args: argparse.Namespace) -> None:
    if args.config is None:
        model, tokenizer = _adapter_alone(args)
        texts = texts_of(args)
        dataset, outputs = predict(model, texts, tokenizer)
        return _show_predictions(args, texts, dataset, outputs)
    if args.kg is not None or args.model is not None:
        raise ConfigError("--kg and --model go without --config: the job's config names its KG and base model.")
    config = job_config(args)
    variant = _variant(config, args.variant)
    texts = texts_of(args)
    adapter = _adapter_dir(args)
    job = prepare(config, train_scorer=False)
    model = load_variant_model(job, variant, adapter)
    rows = as_examples(config.task, texts, label=0)
    classify = config.task_kind.classifier
    dataset = job.dataset("test", variant, with_target=classify, examples=rows)
    if classify:
        outputs = [str(c) for c in predict_classes(model, dataset).tolist()]
    else:
        outputs = generate_texts(model, dataset, max_new_tokens=config.max_new_tokens)
    _show_predictions(args, texts, dataset, outputs)


def _adapter_alone(args: argparse.Namespace) -> tuple[KGPeftModel, Any]:
    """``--adapter`` on its base model (``--model``, or the one its card names) and ``--kg``, with no job config."""
    if args.kg is None:
        raise ConfigError("--kg: give the KG the adapter reads (or the job's --config).")
    if args.variant is not None:
        raise ConfigError("--variant names a variant of a job's --config; without one, --adapter is the adapter.")
    adapter = _adapter_dir(args)
    meta = read_adapter_config(adapter)
    settings = meta["answering"]
    if settings is None:
        raise ConfigError(
            f"--adapter: {adapter / CONFIG_NAME} holds no `answering` settings (saved outside a job, or by an older "
            "kgpeft); pass the job's --config."
        )
    name = args.model or meta["card"].get("base_model")
    if not isinstance(name, str):
        raise ConfigError(f"--model: {adapter / CONFIG_NAME} names no base model (`card.base_model`); pass --model.")
    config = JobConfig(
        model=name,
        task_type=settings.task_type,
        num_labels=settings.num_labels,
        seed=settings.seed,
        variants=[Variant("base", adapter="none")],  # a job of the base model alone: nothing else is checked
    )
    base, tokenizer = load_base_model(config)
    kg = load_kg(args.kg)
    return KGPeftModel.from_pretrained(base, adapter, kg, tokenizer=tokenizer), tokenizer


def _show_predictions(args: argparse.Namespace, texts: list[str], dataset: Any, outputs: list) -> None:
    """Each text with its linked entities, its first ``--max-facts`` facts and the model's answer."""
    kg = dataset.kg
    for i, (text, output) in enumerate(zip(texts, outputs, strict=True)):
        print(f"\n{text}")
        for m in dataset.mentions[i]:
            print(f"  linked {m.surface!r} -> {kg.labels[m.entity]} [{kg.entity_keys[m.entity]}]")
        for fact in dataset.facts(i, args.max_facts):
            print(f"  fact: {fact}")
        print(f"  answer: {output}")


def cmd_explain(args: argparse.Namespace) -> None:
    config = job_config(args)
    variant = _variant(config, args.variant)
    if not variant.kind.reads_knowledge:
        raise ConfigError(f"--variant: {variant.name!r} is plain {variant.adapter}; explanations need a KG-LoRA one.")
    if not config.task_kind.explainable:
        raise ConfigError(f"`kgpeft explain` explains generated answers (causal_lm tasks), not {config.task_type!r}.")
    texts = texts_of(args)
    if args.answer is not None and len(args.answer) != len(texts):
        raise ConfigError(f"--answer: {len(args.answer)} answers for {len(texts)} texts; give one per text.")
    check_utf8([(f"--answer {i}", answer) for i, answer in enumerate(args.answer or [], start=1)])
    if args.plot is not None:
        ensure_writable(args.plot, "--plot", folder=False)  # before the model loads, not after the work
    adapter = _adapter_dir(args)
    job = prepare(config, train_scorer=False)
    model = load_variant_model(job, variant, adapter)
    dataset = job.dataset("test", variant, with_target=False, examples=as_examples(config.task, texts, answer=""))
    explanations = explain(model, dataset, answers=args.answer, scorer=job.scorer, max_new_tokens=config.max_new_tokens)
    if args.plot is not None:
        for i, e in enumerate(explanations):
            path = args.plot if len(texts) == 1 else args.plot.with_name(f"{args.plot.stem}-{i + 1}{args.plot.suffix}")
            plot_explanation(e, path)
    if args.json:
        print(json.dumps([e.to_dict() for e in explanations], indent=2))
        return
    for e in explanations:
        print(f"\n{e.summary(args.top)}")


def cmd_info(args: argparse.Namespace) -> None:
    info = adapter_info(args.adapter)
    print(json.dumps(info, indent=2) if args.json else render_card(info), end="\n" if args.json else "")
