"""The ``kgpeft`` command line: ``kgpeft link | demo``, each with ``--config FILE.yaml``.

A config file holds the same settings as the command-line options (``max_candidates: 3``);
options given on the command line win. An unknown key or a value of the wrong type is an
error naming the key.
"""

from __future__ import annotations

import argparse
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


def _load_kg(name_or_path: str):
    from kgpeft.datasets import DATASETS, load
    from kgpeft.graph import KnowledgeGraph, read_pykeen_folder, read_triples

    path = Path(name_or_path)
    if name_or_path.lower() in DATASETS:
        return load(name_or_path)
    if (path / "kg.json").is_file():
        return KnowledgeGraph.load(path)
    if path.is_dir():
        return read_pykeen_folder(path)
    return read_triples(path)


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
    kg = _load_kg(args.kg)
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
    print("kgpeft demo: link sentences against WordNet 3.0 and retrieve their knowledge subgraphs")
    _show_link(*_link_parts(args), args.text or DEMO_SENTENCES, args.max_facts)


def _add_link_options(p: argparse.ArgumentParser, kg: str) -> None:
    p.add_argument("--kg", default=kg, help="dataset name (wordnet, umls, ...), a saved KG folder or a triples file")
    p.add_argument("--max-candidates", type=int, default=3, help="candidate entities kept per mention")
    p.add_argument("--num-neighbors", type=int, nargs="+", default=[8, 4], help="fan-out cap per hop (-1: all)")
    p.add_argument("--max-nodes", type=int, default=32, help="most subgraph nodes per text")
    p.add_argument("--max-facts", type=int, default=6, help="facts printed per text")
    p.add_argument("--seed", type=int, default=0, help="retrieval sampling seed")
    p.add_argument("text", nargs="*", help="texts to link")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kgpeft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in [
        ("link", cmd_link, "link texts to KG entities and show the retrieved subgraphs"),
        ("demo", cmd_demo, "the main job: link example sentences against WordNet and show their subgraphs"),
    ]:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", type=Path, help="YAML file with the same settings as the options")
        _add_link_options(p, kg="wordnet")
        p.set_defaults(func=func, subparser=p)
    return parser


def apply_config(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Fill ``args`` from ``args.config``; options given on the command line win."""
    if args.config is None:
        return
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
        if any(isinstance(v, bool) or not isinstance(v, expected) for v in items):
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
