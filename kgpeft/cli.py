"""The ``kgpeft`` command line: ``kgpeft train | evaluate | predict | link | demo``, each with ``--config FILE.yaml``.

A config file holds the same settings as the command-line options (``max_candidates: 3``);
options given on the command line win. An unknown key or a value of the wrong type is an
error naming the key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from kgpeft.errors import KGPeftError

DEMO_SENTENCES = [
    "The dog chased a cat across the river bank.",
    "She deposited the money at the bank before lunch.",
    "A violin is a bowed string instrument.",
    "The oak tree lost its leaves in autumn.",
]


class ConfigError(KGPeftError, ValueError):
    """A ``--config`` file is unreadable or holds an unknown key or a wrongly typed value."""


def _show_link(kg, linker, retriever, texts: Sequence[str], max_facts: int) -> None:
    mentions = linker.link_batch(texts)
    graph = retriever([[m.entity for m in ms] for ms in mentions])
    for i, (text, ms) in enumerate(zip(texts, mentions, strict=True)):
        print(f"\n{text}")
        for m in ms:
            options = ", ".join(
                f"{kg.labels[c]} [{kg.entity_keys[c]}] {s:.2f}" for c, s in zip(m.candidates, m.scores, strict=True)
            )
            print(f"  {m.start:>3}-{m.end:<3} {m.surface!r:<18} -> {options}")
        lo, hi = int(graph.ptr[i]), int(graph.ptr[i + 1])
        in_sample = (graph.edge_index[0] >= lo) & (graph.edge_index[0] < hi)
        edges = in_sample.nonzero().flatten()
        print(f"  subgraph: {hi - lo} nodes, {edges.numel()} edges (both directions)")
        shown = set()
        for e in edges.tolist():
            triple = int(graph.edge_id[e])
            if triple in shown or len(shown) >= max_facts:
                continue
            shown.add(triple)
            h, r, t = kg.triples[:, triple].tolist()
            print(f"    {kg.labels[h]} --{kg.relation_keys[r]}--> {kg.labels[t]}")


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
