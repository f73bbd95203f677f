"""The ``kgpeft`` command line: ``kgpeft train | evaluate | predict | link | demo | kge``, each with ``--config FILE``.

A config file holds the same settings as the command-line options (``max_candidates: 3``);
options given on the command line win. An unknown key or a value of the wrong type is an
error naming the key.

``kgpeft kge train --config configs/kge/umls.yaml`` trains KG embeddings (:mod:`kgpeft.kge`) from a
config with the keys ``kg`` (a dataset name, a saved KG folder or a triples file), ``output`` (the
``.safetensors`` file to write) and ``kge`` (:class:`~kgpeft.kge.KGEConfig` settings; every one is
also an option, e.g. ``--epochs 5``); ``kgpeft kge evaluate --embeddings FILE --kg umls`` ranks a split.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import re
import sys
import time
import types
import typing
from collections.abc import Sequence
from pathlib import Path

import yaml

from kgpeft.errors import KGPeftError
from kgpeft.utils import atomic_file, resolve_device

DEMO_SENTENCES = [
    "The dog chased a cat across the river bank.",
    "She deposited the money at the bank before lunch.",
    "A violin is a bowed string instrument.",
    "The oak tree lost its leaves in autumn.",
]


class ConfigError(KGPeftError, ValueError):
    """A ``--config`` file is unreadable or holds an unknown key or a wrongly typed value."""


def _show_link(kg, linker, retriever, texts: Sequence[str], max_facts: int) -> None:
    from kgpeft.retrieval import format_fact, rank_facts

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


def _link_parts(args: argparse.Namespace):
    from kgpeft.linking import EntityLinker
    from kgpeft.retrieval import SubgraphRetriever

    t0 = time.perf_counter()
    from kgpeft.pipeline import load_kg

    kg = load_kg(args.kg)
    linker = EntityLinker(kg, max_candidates=args.max_candidates)
    retriever = SubgraphRetriever(kg, num_neighbors=args.num_neighbors, max_nodes=args.max_nodes, seed=args.seed)
    print(f"{kg}\n{linker}\n{retriever}\n(ready in {time.perf_counter() - t0:.1f} s)")
    return kg, linker, retriever


def cmd_link(args: argparse.Namespace) -> None:
    texts = args.text or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ConfigError("`kgpeft link` needs text: as arguments or on standard input.")
    _show_link(*_link_parts(args), texts, args.max_facts)


def cmd_demo(args: argparse.Namespace) -> None:
    from kgpeft import demo

    print("kgpeft demo: link sentences against WordNet 3.0 and retrieve their knowledge subgraphs")
    link_args = build_parser().parse_args(["link"])
    _show_link(*_link_parts(link_args), DEMO_SENTENCES, link_args.max_facts)
    print("\nkgpeft demo: KG-LoRA on hypernym QA, held-out entities")
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(demo.DemoConfig)}
    demo.run(demo.DemoConfig(**values))


def cmd_train(args: argparse.Namespace) -> None:
    from kgpeft.pipeline import JobConfig, train_job

    train_job(JobConfig.from_yaml(args.config))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from kgpeft.pipeline import JobConfig, build_model, evaluate_job, load_examples, load_kg

    config = JobConfig.from_yaml(args.config)
    kg = load_kg(config.kg)
    model, tokenizer = build_model(config, kg, adapter_dir=args.adapter)
    metrics = evaluate_job(model, config, load_examples(config, kg)[args.split], tokenizer, kg)
    print(json.dumps({args.split: metrics}, indent=2))


def cmd_predict(args: argparse.Namespace) -> None:
    from kgpeft.datasets.tasks import TaskExample
    from kgpeft.pipeline import JobConfig, build_model, datasets_for, load_kg
    from kgpeft.tasks import generate_texts, predict_classes

    config = JobConfig.from_yaml(args.config)
    texts = args.text or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ConfigError("`kgpeft predict` needs text: as arguments or on standard input.")
    kg = load_kg(config.kg)
    model, tokenizer = build_model(config, kg, adapter_dir=args.adapter)
    rows = [TaskExample(t, label=0) for t in texts]
    dataset = datasets_for(config, rows, tokenizer, kg, with_target=config.task_type == "classification")
    if config.task_type == "classification":
        outputs = [str(c) for c in predict_classes(model, dataset).tolist()]
    else:
        outputs = generate_texts(model, dataset, max_new_tokens=config.max_new_tokens)
    for i, (text, output) in enumerate(zip(texts, outputs, strict=True)):
        print(f"\n{text}")
        for m in dataset.mentions[i]:
            print(f"  linked {m.surface!r} -> {kg.labels[m.entity]} [{kg.entity_keys[m.entity]}]")
        for fact in dataset.facts(i, args.max_facts):
            print(f"  fact: {fact}")
        print(f"  answer: {output}")


KGE_JOB_KEYS = {"kg": str, "output": str, "kge": dict}


def _read_kge_job(path: Path) -> dict:
    """The top-level keys of a ``kgpeft kge train`` config, checked: ``kg``, ``output`` and the ``kge`` section."""
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(values).__name__}")
    for key, value in values.items():
        if key not in KGE_JOB_KEYS:
            from kgpeft.kge import KGEConfig

            close = difflib.get_close_matches(str(key), list(KGE_JOB_KEYS), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "known keys: kg, output, kge (the KGEConfig settings)"
            if key in {f.name for f in dataclasses.fields(KGEConfig)}:
                hint = f"{key!r} is a KGEConfig setting: put it under `kge:`"
            raise ConfigError(f"{path}: unknown key {key!r}; {hint}")
        want = KGE_JOB_KEYS[key]
        if not (isinstance(value, want) or (key == "kge" and value is None)):
            raise ConfigError(f"{path}: key {key!r} should be {want.__name__}, got {value!r}")
    return values


def _kge_config(args: argparse.Namespace, section: dict, source: str):
    """The config file's ``kge:`` section with the options given on the command line laid over it."""
    from kgpeft.kge import KGEConfig, KGEConfigError

    values = dict(section)
    for f in dataclasses.fields(KGEConfig):
        if hasattr(args, f"kge_{f.name}"):
            values[f.name] = getattr(args, f"kge_{f.name}")
    try:
        return KGEConfig.from_dict(values)
    except KGEConfigError as e:
        raise ConfigError(f"{source}: kge: {e}") from None


def _finite(value):
    """``value`` with NaN and infinities as ``None``, so that the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _write_json(path: Path, data) -> None:
    """Write ``data`` as JSON atomically, so a failed write leaves no half file."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(_finite(data), indent=2) + "\n", encoding="utf-8")


def _metrics_row(name: str, m, width: int) -> str:
    hits = " ".join(f"{m.hits[k]:>7.4f}" for k in (1, 3, 10))
    return f"  {name:<{width}} {m.count:>7} {m.mrr:>7.4f} {m.mr:>8.2f} {hits}"


def _metrics_header(first: str, width: int) -> str:
    return f"  {first:<{width}} {'ranks':>7} {'MRR':>7} {'MR':>8} {'Hits@1':>7} {'Hits@3':>7} {'Hits@10':>7}"


def _print_ranks(result, title: str, seconds: float | None = None, per_relation: bool = False) -> None:
    """Filtered metrics of a :class:`~kgpeft.kge.RankResult`: both directions, head, tail, and per relation."""
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    print(f"{title}: {result.relations.numel()} triples, filtered realistic ranks of heads and tails{took}")
    print(_metrics_header("direction", 9))
    for direction in ("both", "head", "tail"):
        print(_metrics_row(direction, result.metrics(direction), 9))
    if per_relation:
        rows = sorted(result.per_relation().items(), key=lambda kv: (-kv[1].count, kv[0]))
        width = max([8, *(len(name) for name, _ in rows)])
        print(f"per relation, both directions ({len(rows)} relations, most ranks first):")
        print(_metrics_header("relation", width))
        for name, m in rows:
            print(_metrics_row(name, m, width))


def cmd_kge_train(args: argparse.Namespace) -> None:
    from kgpeft.kge import train_kge
    from kgpeft.pipeline import load_kg

    job = _read_kge_job(args.config) if args.config else {}
    source = str(args.config) if args.config else "command line"
    config = _kge_config(args, job.get("kge") or {}, source)
    kg_name, output = args.kg or job.get("kg"), args.output or job.get("output")
    if not kg_name:
        raise ConfigError(f"{source}: no KG to train on; give `kg:` in the config or --kg.")
    if not output:
        raise ConfigError(f"{source}: no file to write; give `output:` in the config or --output FILE.safetensors.")
    output = Path(output)
    metrics_path = output.with_suffix(".metrics.json")

    t0 = time.perf_counter()
    kg = load_kg(kg_name)
    if kg.splits and "train" not in kg.splits:
        raise ConfigError(f"{kg_name}: the KG has splits {', '.join(kg.splits)} but no 'train' split to train on.")
    print(f"{kg} (loaded in {time.perf_counter() - t0:.1f} s)")
    print(f"config: {json.dumps(config.to_dict())}")
    if not kg.splits:
        print(f"{kg_name} has no splits: training on all {kg.num_triples} triples, without validation or test.")
    elif "valid" not in kg.splits or not config.eval_every:
        print("no validation: no 'valid' split or eval_every is 0; the last epoch's state is kept.")

    result = train_kge(kg, config, progress=args.progress)

    if result.history:
        print("validation (filtered MRR, both directions):")
        print(f"  {'epoch':>5} {'loss':>9} {'valid MRR':>9}")
        for row in result.history:
            best = "  <- best, kept" if row["epoch"] == result.best_epoch else ""
            print(f"  {row['epoch']:>5} {row['loss']:>9.4f} {row['valid_mrr']:>9.4f}{best}")
    print(
        f"trained {result.best_epoch if not result.history else result.history[-1]['epoch']} epochs: "
        f"{result.triples_per_second:,.0f} triples/s, {result.train_seconds:.1f} s training, "
        f"{result.eval_seconds:.1f} s validation"
    )
    if result.valid is not None:
        _print_ranks(result.valid, f"valid, epoch {result.best_epoch}")

    test, test_seconds = None, 0.0
    if "test" in kg.splits:
        start = time.perf_counter()
        test = result.embeddings.evaluate(kg, "test")
        test_seconds = time.perf_counter() - start
        _print_ranks(test, "test", test_seconds)
    else:
        print("the KG has no 'test' split: test evaluation skipped.")

    result.embeddings.save(output)
    report = {
        "kg": kg_name,
        "kg_fingerprint": kg.fingerprint,
        "num_entities": kg.num_entities,
        "num_relations": kg.num_relations,
        "splits": {name: int(triples.size(1)) for name, triples in kg.splits.items()},
        "embeddings": str(output),
        "config": config.to_dict(),
        "best_epoch": result.best_epoch,
        "history": result.history,
        "valid": result.valid.summary() if result.valid is not None else None,
        "test": test.summary() if test is not None else None,
        "test_per_relation": (
            {name: {**m.as_dict(), "count": m.count} for name, m in test.per_relation().items()}
            if test is not None
            else None
        ),
        "triples_per_second": result.triples_per_second,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "test_seconds": test_seconds,
    }
    _write_json(metrics_path, report)
    size = output.stat().st_size / 2**20
    print(f"wrote {output} ({size:.1f} MiB) and {metrics_path}")


def cmd_kge_evaluate(args: argparse.Namespace) -> None:
    from kgpeft.kge import KGEmbeddings
    from kgpeft.pipeline import load_kg

    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size should be at least 1, got {args.batch_size}")
    kg = load_kg(args.kg)
    embeddings = KGEmbeddings.load(args.embeddings, kg=kg, device=resolve_device(args.device))
    if args.split not in kg.splits:
        have = f"it has {', '.join(kg.splits)}" if kg.splits else "it has no splits"
        raise ConfigError(f"{args.kg}: the KG has no split {args.split!r}; {have}.")
    start = time.perf_counter()
    result = embeddings.evaluate(kg, args.split, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    if args.json:
        out = {"split": args.split, "embeddings": str(args.embeddings), "kg": args.kg, "metrics": result.summary()}
        if args.per_relation:
            out["per_relation"] = {n: {**m.as_dict(), "count": m.count} for n, m in result.per_relation().items()}
        print(json.dumps(_finite(out), indent=2))
        return
    c = embeddings.config
    print(f"{args.embeddings}: {c.model}, {c.hidden_channels} dims{', reciprocal' if c.reciprocal else ''}; {kg}")
    _print_ranks(result, args.split, seconds, per_relation=args.per_relation)


def _docstring_args(doc: str | None) -> dict[str, str]:
    """``{name: text}`` of the ``Args:`` entries of a Google-style docstring."""
    helps: dict[str, str] = {}
    name = None
    for line in (doc or "").splitlines():
        match = re.match(r"\s+(\w+) \([^)]*\): (.*)", line)
        if match:
            name = match.group(1)
            helps[name] = match.group(2)
        elif name and line.strip() and line.startswith(" " * 12):
            helps[name] += " " + line.strip()
        else:
            name = None
    return {k: v.replace("``", "").replace("%", "%%") for k, v in helps.items()}


def _add_kge_config_options(p: argparse.ArgumentParser) -> None:
    """One option per :class:`~kgpeft.kge.KGEConfig` field (``--hidden-channels``, ``--reciprocal/--no-reciprocal``),
    stored as ``kge_<field>`` only when given, to lay over the config file's ``kge:`` section."""
    from kgpeft.kge import KGEConfig

    hints = typing.get_type_hints(KGEConfig)
    helps = _docstring_args(KGEConfig.__doc__)
    group = p.add_argument_group("KGEConfig settings (override the config file's kge: section)")
    for f in dataclasses.fields(KGEConfig):
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
        group.add_argument(flag, dest=f"kge_{f.name}", default=argparse.SUPPRESS, help=helps.get(f.name), **kwargs)


def _add_kge_parsers(sub) -> None:
    kge = sub.add_parser("kge", help="train and evaluate KG embeddings (TransE, DistMult, ComplEx, RotatE)")
    kge_sub = kge.add_subparsers(dest="kge_command", required=True)

    p = kge_sub.add_parser(
        "train",
        help="train KG embeddings and write them with their metrics",
        description="Train KG embeddings as a config says (keys: kg, output, kge), test them when the KG has a "
        "test split, and write OUTPUT.safetensors and OUTPUT.metrics.json. Options override the config.",
    )
    p.add_argument("--config", type=Path, help="YAML with kg, output and a kge: section (see configs/kge/)")
    p.add_argument("--kg", help="dataset name (umls, nations, kinships, wordnet), a saved KG folder or a triples file")
    p.add_argument("--output", help="the .safetensors file to write; the metrics go next to it (.metrics.json)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    _add_kge_config_options(p)
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


def _add_dataclass_options(p: argparse.ArgumentParser, cls) -> None:
    types = {"int": int, "float": float, "str": str}
    for f in dataclasses.fields(cls):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=types[f.type], default=f.default, help=f.metadata["help"])


def build_parser() -> argparse.ArgumentParser:
    from kgpeft.demo import DemoConfig

    parser = argparse.ArgumentParser(prog="kgpeft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("link", help="link texts to KG entities and show the retrieved subgraphs")
    p.add_argument("--config", type=Path, help="YAML file with the same settings as the options")
    _add_link_options(p, kg="wordnet")
    p.set_defaults(func=cmd_link, subparser=p)

    p = sub.add_parser("demo", help="the main job: KG-LoRA vs LoRA on WordNet hypernym QA with SmolLM2")
    p.add_argument("--config", type=Path, help="YAML file with the same settings as the options")
    _add_dataclass_options(p, DemoConfig)
    p.set_defaults(func=cmd_demo, subparser=p)

    for name, func, help_ in [
        ("train", cmd_train, "train a KG-LoRA adapter as a job config says"),
        ("evaluate", cmd_evaluate, "evaluate a saved adapter on the job's task"),
        ("predict", cmd_predict, "show linked entities, retrieved facts and the answer for texts"),
    ]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", type=Path, required=True, help="the job's YAML config (see kgpeft.pipeline)")
        if name != "train":
            p.add_argument("--adapter", type=Path, required=True, help="a folder written by save_pretrained")
        if name == "evaluate":
            p.add_argument("--split", choices=["train", "valid", "test"], default="test")
        if name == "predict":
            p.add_argument("--max-facts", type=int, default=6, help="facts shown per text")
            p.add_argument("text", nargs="*", help="texts (default: standard input)")
        p.set_defaults(func=func, subparser=None)
    _add_kge_parsers(sub)
    return parser


def apply_config(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Fill ``args`` from ``args.config``; options given on the command line win."""
    if args.config is None or args.subparser is None:
        return  # train, evaluate and predict read their config themselves
    try:
        values = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{args.config}: cannot read config ({e})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{args.config}: expected a mapping of settings, got {type(values).__name__}")
    actions = {a.dest: a for a in args.subparser._actions if a.dest not in ("help", "config")}
    given = {a.dest for a in actions.values() for s in a.option_strings if any(x.split("=")[0] == s for x in argv)}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise ConfigError(f"{args.config}: unknown key {key!r}; known keys: {', '.join(sorted(actions))}")
        expected = action.type or str
        items = value if action.nargs in ("+", "*") else [value]
        if action.nargs in ("+", "*") and not isinstance(value, list):
            raise ConfigError(f"{args.config}: key {key!r} should be a list, got {value!r}")
        accepted = (int, float) if expected is float else expected  # YAML writes 1.0 as 1 too
        if any(isinstance(v, bool) or not isinstance(v, accepted) for v in items):
            raise ConfigError(f"{args.config}: key {key!r} should be {expected.__name__}, got {value!r}")
        if dest not in given:
            setattr(args, dest, value)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        apply_config(args, argv)
        args.func(args)
    except KGPeftError as e:
        print(f"kgpeft {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
