"""The ``kgpeft`` command line: ``kgpeft train | evaluate | predict | explain | link | demo | info | kge``.

A config file holds the same settings as the command-line options (``max_candidates: 3``);
options given on the command line win. An unknown key or a value of the wrong type is an
error naming the key.

``kgpeft kge train --config configs/kge/umls.yaml`` trains KG embeddings (:mod:`kgpeft.kge`) from a
config with the keys ``kg`` (a dataset name, a saved KG folder or a triples file), ``output`` (the
``.safetensors`` file to write) and ``kge`` (:class:`~kgpeft.kge.KGEConfig` settings; every one is
also an option, e.g. ``--num-epochs 5``); ``kgpeft kge evaluate --embeddings FILE --kg umls`` ranks a split.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import sys
import time
import types
import typing
from collections.abc import Sequence
from pathlib import Path

from kgpeft.configuration import ConfigError, field_help, read_yaml
from kgpeft.errors import KGPeftError

RESUME_HELP = (
    "continue from the newest checkpoint-* of each variant (training.resume_from_checkpoint: latest); "
    "a variant without one starts over"
)
DEMO_SENTENCES = [
    "The dog chased a cat across the river bank.",
    "She deposited the money at the bank before lunch.",
    "A violin is a bowed string instrument.",
    "The oak tree lost its leaves in autumn.",
]


def _show_link(kg, linker, retriever, texts: Sequence[str], max_facts: int) -> None:
    from kgpeft.retrieval import format_fact
    from kgpeft.selection import rank_facts

    mentions = linker.link_batch(texts)
    graph = retriever([[m.entity for m in ms] for ms in mentions])
    for i, (text, ms) in enumerate(zip(texts, mentions, strict=True)):
        print(f"\n{text}")
        for m in ms:
            options = ", ".join(
                f"{kg.labels[c]} [{kg.entity_keys[c]}] {s:.2f}" for c, s in zip(m.candidates, m.scores, strict=True)
            )
            print(f"  {m.start:>3}-{m.end:<3} {m.surface!r:<18} -> {options}")
        sample = graph.get_example(i)
        print(f"  subgraph: {sample.num_nodes} nodes, {sample.num_edges} edges (both directions)")
        for triple in rank_facts(sample, {m.entity for m in ms})[:max_facts]:
            print(f"    {format_fact(kg, triple, 'arrow')}")


def _texts(args: argparse.Namespace) -> list[str]:
    """The texts given as arguments, or else the non-blank lines of standard input; each checked to be UTF-8 text."""
    if args.text:
        texts = [(f"text argument {i}", text) for i, text in enumerate(args.text, start=1)]
    else:
        try:
            lines = [(f"standard input line {i}", line.rstrip("\n")) for i, line in enumerate(sys.stdin, start=1)]
        except UnicodeDecodeError as e:  # standard input decoded strictly (a locale other than C.UTF-8)
            raise ConfigError(
                f"standard input is not UTF-8 (byte {e.object[e.start]:#04x}); pass UTF-8 text."
            ) from None
        texts = [(where, line) for where, line in lines if line.strip()]
    if not texts:
        raise ConfigError(f"`kgpeft {args.command}` needs text: as arguments or on standard input.")
    _check_utf8(texts)
    return [text for _, text in texts]


def _check_utf8(texts: Sequence[tuple[str, str]]) -> None:
    """Refuse the first of the ``(where, text)`` pairs whose text holds a lone surrogate, which no tokenizer encodes."""
    from kgpeft.utils import surrogate_at

    for where, text in texts:
        if (at := surrogate_at(text)) is not None:
            code = ord(text[at])  # an undecodable byte b arrives as the surrogate U+DC00 + b (surrogateescape)
            what = f"byte {code - 0xDC00:#04x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate {text[at]!r}"
            raise ConfigError(f"{where}: not UTF-8 ({what} at character {at + 1}); pass UTF-8 text.")


def _link_parts(args: argparse.Namespace):
    from kgpeft.retrieval import RetrievalConfig

    t0 = time.perf_counter()
    # The retrieval settings are checked (ranges included) before the KG loads.
    config = RetrievalConfig(
        num_neighbors=args.num_neighbors, max_nodes=args.max_nodes, max_candidates=args.max_candidates
    )
    from kgpeft.pipeline import load_kg

    kg = load_kg(args.kg)
    linker, retriever = config.build_linker(kg), config.build_retriever(kg, seed=args.seed)
    print(f"{kg}\n{linker}\n{retriever}\n(ready in {time.perf_counter() - t0:.1f} s)")
    return kg, linker, retriever


def cmd_link(args: argparse.Namespace) -> None:
    texts = _texts(args)
    _show_link(*_link_parts(args), texts, args.max_facts)


def _job_config(args: argparse.Namespace):
    from kgpeft.pipeline import JobConfig

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


def _variant(config, name: str | None):
    """The variant called ``name``, or the job's first KG-LoRA variant."""
    if name is not None:
        for variant in config.variants:
            if variant.name == name:
                return variant
        raise ConfigError(
            f"--variant: no variant {name!r} in the config; variants: {[v.name for v in config.variants]}"
        )
    return next((v for v in config.variants if v.adapter == "kg-lora"), config.variants[0])


def cmd_demo(args: argparse.Namespace) -> None:
    from kgpeft.pipeline import prepare, run
    from kgpeft.pipeline.job import hold_output_dir

    if not Path(args.config).exists():
        raise ConfigError(f"--config: {args.config} does not exist (the main job is configs/demo.yaml in the repo).")
    import torch

    config = _job_config(args)
    torch.set_num_threads(args.threads)
    print("kgpeft demo: link sentences against WordNet 3.0 and retrieve their knowledge subgraphs")
    link_args = build_parser().parse_args(["link"])
    _show_link(*_link_parts(link_args), DEMO_SENTENCES, link_args.max_facts)
    print(f"\nkgpeft demo: {args.config}: {', '.join(v.name for v in config.variants)} on {config.task}")
    with hold_output_dir(config):  # checked before loading the KG and the model, held until the results are written
        job = prepare(config)
        results = run(config, job)
    names = [v.name for v in results.variants]
    predictions = {v.name: v.metrics["correct"]["predictions"] for v in results.variants}
    test = results.examples
    print(f"\nExamples (question -> gold | {' | '.join(names)}):")
    for i, e in enumerate(test[:6]):
        print(f"  {e.text} -> {e.answer} | " + " | ".join(predictions[n][i] for n in names))
    folder = Path(config.training.output_dir)
    for variant in config.variants:
        adapter = folder / variant.name / "adapter"
        if adapter.is_dir():
            size = sum(f.stat().st_size for f in adapter.rglob("*") if f.is_file())
            print(f"{variant.name} adapter saved to {adapter} ({size / 1e6:.2f} MB)")
    picture = _show_explanations(job, folder)
    print(f"Results: {folder / 'results.json'}, {folder / 'results.png'}{picture}; total time {results.seconds:.0f} s")


def _show_explanations(job, folder: Path, count: int = 2) -> str:
    """Explain the first KG-LoRA variant's answers to ``count`` held-out questions; draw the first."""
    from kgpeft.explain import explain, plot_explanation
    from kgpeft.pipeline import load_variant_model

    variant = next((v for v in job.config.variants if v.adapter == "kg-lora"), None)
    if variant is None or job.config.task_type != "causal_lm":
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
    from kgpeft.pipeline import train_job

    train_job(_job_config(args))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from kgpeft.pipeline import evaluate_variant, load_variant_model, prepare

    config = _job_config(args)
    variant = _variant(config, args.variant)
    adapter = _adapter_dir(args)
    job = prepare(config, train_scorer=False)
    model = load_variant_model(job, variant, adapter)
    controls = config.controls if variant.uses_knowledge else ["correct"]
    metrics = {c: evaluate_variant(job, variant, model, c, split=args.split) for c in controls}
    for m in metrics.values():
        m.pop("predictions")
    print(json.dumps({args.split: metrics}, indent=2))


def _free_text_examples(config, texts: Sequence[str], **fields) -> list:
    """A user's texts as examples: read through the task's templates where it has them, so that
    a question is linked at its subject only, as the training examples were."""
    from kgpeft.tasks import TASKS, TaskExample

    task = TASKS.get(config.task)
    return [task.example(t, **fields) if task is not None else TaskExample(t, **fields) for t in texts]


def cmd_predict(args: argparse.Namespace) -> None:
    from kgpeft.inference import generate_texts, predict_classes
    from kgpeft.pipeline import load_variant_model, prepare

    config = _job_config(args)
    variant = _variant(config, args.variant)
    texts = _texts(args)
    adapter = _adapter_dir(args)
    job = prepare(config, train_scorer=False)
    model = load_variant_model(job, variant, adapter)
    rows = _free_text_examples(config, texts, label=0)
    classify = config.task_type == "classification"
    dataset = job.dataset("test", variant, with_target=classify, examples=rows)
    if classify:
        outputs = [str(c) for c in predict_classes(model, dataset).tolist()]
    else:
        outputs = generate_texts(model, dataset, max_new_tokens=config.max_new_tokens)
    kg = job.kg
    for i, (text, output) in enumerate(zip(texts, outputs, strict=True)):
        print(f"\n{text}")
        for m in dataset.mentions[i]:
            print(f"  linked {m.surface!r} -> {kg.labels[m.entity]} [{kg.entity_keys[m.entity]}]")
        for fact in dataset.facts(i, args.max_facts):
            print(f"  fact: {fact}")
        print(f"  answer: {output}")


def cmd_explain(args: argparse.Namespace) -> None:
    from kgpeft.explain import explain, plot_explanation
    from kgpeft.pipeline import load_variant_model, prepare
    from kgpeft.utils import ensure_writable

    config = _job_config(args)
    variant = _variant(config, args.variant)
    if variant.adapter != "kg-lora":
        raise ConfigError(f"--variant: {variant.name!r} is plain {variant.adapter}; explanations need a KG-LoRA one.")
    if config.task_type != "causal_lm":
        raise ConfigError(f"`kgpeft explain` explains generated answers (causal_lm tasks), not {config.task_type!r}.")
    texts = _texts(args)
    if args.answer is not None and len(args.answer) != len(texts):
        raise ConfigError(f"--answer: {len(args.answer)} answers for {len(texts)} texts; give one per text.")
    _check_utf8([(f"--answer {i}", answer) for i, answer in enumerate(args.answer or [], start=1)])
    if args.plot is not None:
        ensure_writable(args.plot, "--plot", folder=False)  # before the model loads, not after the work
    adapter = _adapter_dir(args)
    job = prepare(config, train_scorer=False)
    model = load_variant_model(job, variant, adapter)
    dataset = job.dataset("test", variant, with_target=False, examples=_free_text_examples(config, texts, answer=""))
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
    from kgpeft.card import adapter_info, render_card

    info = adapter_info(args.adapter)
    print(json.dumps(info, indent=2) if args.json else render_card(info), end="\n" if args.json else "")


def cmd_kge_train(args: argparse.Namespace) -> None:
    from kgpeft.kge.job import train_job

    overrides = {key: getattr(args, key) for key in ("kg", "output") if getattr(args, key)}
    overrides["kge"] = {name[len("kge.") :]: value for name, value in vars(args).items() if name.startswith("kge.")}
    train_job(args.config, overrides, progress=args.progress)


def cmd_kge_evaluate(args: argparse.Namespace) -> None:
    from kgpeft.kge.job import evaluate_job, finite, format_ranks, per_relation_dict

    done = evaluate_job(args.embeddings, args.kg, args.split, batch_size=args.batch_size, device=args.device)
    if args.json:
        out = {"split": args.split, "embeddings": str(args.embeddings), "kg": args.kg, "metrics": done.result.summary()}
        if args.per_relation:
            out["per_relation"] = per_relation_dict(done.result)
        print(json.dumps(finite(out), indent=2))
        return
    c = done.embeddings.config
    print(f"{args.embeddings}: {c.model}, {c.hidden_channels} dims{', reciprocal' if c.reciprocal else ''}; {args.kg}")
    print(format_ranks(done.result, args.split, done.seconds, per_relation=args.per_relation))


def _add_config_options(p: argparse.ArgumentParser, cls: type, prefix: str, title: str) -> None:
    """One option per field of the config dataclass ``cls`` (``--hidden-channels``, ``--reciprocal/--no-reciprocal``),
    helped by its ``metadata["help"]`` and stored as ``<prefix><field>`` only when given."""
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    group = p.add_argument_group(title)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(options) == 1:
            hint = options[0]  # `X | None`: None (a default chosen from other settings) is no command-line value
        if typing.get_origin(hint) is typing.Literal and all(isinstance(a, str) for a in typing.get_args(hint)):
            kwargs = {"choices": typing.get_args(hint), "type": str.lower}
        elif typing.get_origin(hint) is typing.Literal:
            kwargs = {"choices": typing.get_args(hint)}
        elif hint is bool:
            kwargs = {"action": argparse.BooleanOptionalAction}
        elif hint in (int, float, str):
            kwargs = {"type": hint, "metavar": hint.__name__.upper()}
        else:
            continue  # a setting with no simple command-line form: config file only
        flag = f"--{f.name.replace('_', '-')}"
        help_ = helps[f.name].replace("%", "%%")
        group.add_argument(flag, dest=f"{prefix}{f.name}", default=argparse.SUPPRESS, help=help_, **kwargs)


def _add_kge_parsers(sub) -> None:
    from kgpeft.kge import KGEConfig
    from kgpeft.kge.job import KGEJob

    job_help = field_help(KGEJob)
    kge = sub.add_parser("kge", help="train and evaluate KG embeddings (TransE, DistMult, ComplEx, RotatE)")
    kge_sub = kge.add_subparsers(dest="kge_command", required=True)

    p = kge_sub.add_parser(
        "train",
        help="train KG embeddings and write them with their metrics",
        description="Train KG embeddings as a config says (keys: kg, output, kge), test them when the KG has a "
        "test split, and write OUTPUT.safetensors and OUTPUT.metrics.json. Options override the config.",
    )
    p.add_argument("--config", type=Path, help="YAML with kg, output and a kge: section (see configs/kge/)")
    p.add_argument("--kg", help=job_help["kg"])
    p.add_argument("--output", help=job_help["output"])
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    _add_config_options(p, KGEConfig, "kge.", "KGEConfig settings (override the config file's kge: section)")
    p.set_defaults(func=cmd_kge_train, subparser=None, command="kge train")

    p = kge_sub.add_parser(
        "evaluate",
        help="filtered rank metrics of saved KG embeddings on a split",
        description="Rank the heads and tails of a split's triples against all entities, filtering known triples.",
    )
    p.add_argument("--embeddings", type=Path, required=True, help="a file written by `kgpeft kge train`")
    p.add_argument("--kg", required=True, help="the KG the embeddings were trained on (its fingerprint is checked)")
    p.add_argument("--split", default="test", help="the split to rank (default: test)")
    p.add_argument("--per-relation", action="store_true", help="also print the metrics of each relation")
    p.add_argument("--batch-size", type=int, help="queries scored at once (default: the training config's)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ... (default: auto)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_kge_evaluate, subparser=None, config=None, command="kge evaluate")


def _add_link_options(p: argparse.ArgumentParser, kg: str) -> None:
    p.add_argument("--kg", default=kg, help="dataset name (wordnet, umls, ...), a saved KG folder or a triples file")
    p.add_argument("--max-candidates", type=int, default=3, help="candidate entities kept per mention")
    p.add_argument("--num-neighbors", type=int, nargs="+", default=[8, 4], help="fan-out cap per hop (-1: all)")
    p.add_argument("--max-nodes", type=int, default=32, help="most subgraph nodes per text")
    p.add_argument("--max-facts", type=int, default=6, help="facts printed per text")
    p.add_argument("--seed", type=int, default=0, help="retrieval sampling seed")
    p.add_argument("text", nargs="*", help="texts to link")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line on standard error, exit status 2, as every other kgpeft user error."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kgpeft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("link", help="link texts to KG entities and show the retrieved subgraphs")
    p.add_argument("--config", type=Path, help="YAML file with the same settings as the options")
    _add_link_options(p, kg="wordnet")
    p.set_defaults(func=cmd_link, subparser=p)

    p = sub.add_parser("demo", help="the main job: KG-LoRA vs LoRA on WordNet hypernym QA with SmolLM2")
    p.add_argument("--config", type=Path, default=Path("configs/demo.yaml"), help="the job config of the main job")
    p.add_argument("--seed", type=int, help="replace the config's seed")
    p.add_argument("--output-dir", type=Path, help="replace the config's training.output_dir")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP)
    p.set_defaults(func=cmd_demo, subparser=None)

    for name, func, help_ in [
        ("train", cmd_train, "train a KG-LoRA adapter as a job config says"),
        ("evaluate", cmd_evaluate, "evaluate a saved adapter on the job's task"),
        ("predict", cmd_predict, "show linked entities, retrieved facts and the answer for texts"),
        ("explain", cmd_explain, "which nodes and facts drove the answer: leave-one-out, gradients, attention"),
    ]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", type=Path, required=True, help="the job's YAML config (see kgpeft.pipeline)")
        p.add_argument("--seed", type=int, help="replace the config's seed")
        p.add_argument("--output-dir", type=Path, help="replace the config's training.output_dir")
        if name == "train":
            p.add_argument("--resume", action="store_true", help=RESUME_HELP)
        else:
            p.add_argument("--adapter", type=Path, required=True, help="a folder written by save_pretrained")
            p.add_argument("--variant", help="the config's variant the adapter belongs to (default: the first KG-LoRA)")
        if name == "evaluate":
            p.add_argument("--split", choices=["train", "valid", "test"], default="test")
        if name == "predict":
            p.add_argument("--max-facts", type=int, default=6, help="facts shown per text")
        if name == "explain":
            p.add_argument("--answer", nargs="+", help="explain these answers (one per text), not the generated ones")
            p.add_argument("--top", type=int, default=3, help="facts shown per text (default: 3)")
            p.add_argument("--json", action="store_true", help="print the explanations as JSON")
            p.add_argument("--plot", type=Path, help="draw the subgraph coloured by leave-one-out to this PNG")
        if name in ("predict", "explain"):
            p.add_argument("text", nargs="*", help="texts (default: standard input)")
        p.set_defaults(func=func, subparser=None)
    p = sub.add_parser(
        "info",
        help="show a saved adapter's card: base model, KG and fingerprint, mode, task, training, results",
        description="Print the adapter card (the README.md save_pretrained writes), rendered from the folder's "
        "kgpeft_config.json; nothing is loaded but that file.",
    )
    p.add_argument("adapter", type=Path, help="a folder written by save_pretrained")
    p.add_argument("--json", action="store_true", help="print the card's contents as JSON")
    p.set_defaults(func=cmd_info, subparser=None, config=None)
    _add_kge_parsers(sub)
    return parser


def apply_config(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Fill ``args`` from ``args.config``; options given on the command line win."""
    if args.config is None or args.subparser is None:
        return  # train, evaluate and predict read their config themselves
    from kgpeft.utils import short_repr

    values = read_yaml(args.config)
    actions = {a.dest: a for a in args.subparser._actions if a.dest not in ("help", "config")}
    given = {a.dest for a in actions.values() for s in a.option_strings if any(x.split("=")[0] == s for x in argv)}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise ConfigError(f"{args.config}: unknown key {short_repr(key)}; known keys: {', '.join(sorted(actions))}")
        expected = action.type or str
        items = value if action.nargs in ("+", "*") else [value]
        if action.nargs in ("+", "*") and not isinstance(value, list):
            raise ConfigError(f"{args.config}: key {key!r} should be a list, got {short_repr(value)}")
        accepted = (int, float) if expected is float else expected  # YAML writes 1.0 as 1 too
        if any(isinstance(v, bool) or not isinstance(v, accepted) for v in items):
            raise ConfigError(f"{args.config}: key {key!r} should be {expected.__name__}, got {short_repr(value)}")
        if dest not in given:
            setattr(args, dest, value)


def check_options(args: argparse.Namespace) -> None:
    """The command-line-only numbers in range (the config sections check their own)."""
    for dest, least in (("max_facts", 0), ("threads", 1), ("top", 1)):
        value = getattr(args, dest, None)
        if value is not None and value < least:
            raise ConfigError(f"--{dest.replace('_', '-')} should be at least {least}, got {value}.")


def interrupted(args: argparse.Namespace, argv: Sequence[str]) -> str:
    """What to print when Ctrl-C stops ``args.command``: for a training run, where it stopped and how to resume."""
    config = getattr(args, "job_config", None)
    if config is None or args.command not in ("train", "demo"):
        return f"kgpeft {args.command}: interrupted."
    from kgpeft.errors import KGFileNotFoundError
    from kgpeft.training.checkpoints import find_checkpoint

    folder = Path(config.training.output_dir)
    found = []
    for variant in config.variants:
        try:
            found.append(find_checkpoint("latest", folder / variant.name))
        except KGFileNotFoundError:
            continue
    if not found:
        return (
            f"kgpeft {args.command}: interrupted before any checkpoint was written in {folder} (set "
            "`training.save_steps` to write them); run the same command to start over."
        )
    last = max(found, key=lambda p: p.stat().st_mtime)
    step = last.name.rsplit("-", 1)[-1]
    command = shlex.join(["kgpeft", *[a for a in argv if a != "--resume"], "--resume"])
    return f"kgpeft {args.command}: interrupted; last checkpoint {last} (step {step}). Resume with: {command}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command: exit status 0 when done, 2 on a user error (one line on standard error), 130 on Ctrl-C,
    141 (as a process killed by SIGPIPE) when standard output is closed early (``kgpeft link ... | head -1``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        apply_config(args, argv)
        check_options(args)
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
    except KGPeftError as e:
        message = " ".join(line.strip() for line in str(e).splitlines())
        print(f"kgpeft {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{interrupted(args, argv)}", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        _discard_stdout()
        return 128 + getattr(signal, "SIGPIPE", 13)
    return 0


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit raises no second BrokenPipeError."""
    with contextlib.suppress(OSError, ValueError):  # not a real file (captured in tests): nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
