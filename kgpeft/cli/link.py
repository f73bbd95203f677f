"""``kgpeft link``: link texts to KG entities and show their retrieved subgraphs and facts.

Its settings are a :class:`LinkConfig`: a config file (``--config``) holds them in the same keys
(``kg``, ``max_facts``, ``seed`` and a ``retrieval:`` section), and the options override it.
The retrieval defaults are :class:`~kgpeft.retrieval.RetrievalConfig`'s, as in a job.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kgpeft.configuration import ConfigError, check_field_types, dataclass_from_dict, read_yaml
from kgpeft.datasets import KGSource, load_kg
from kgpeft.graph import KnowledgeGraph
from kgpeft.linking import EntityLinker
from kgpeft.retrieval import RetrievalConfig, SubgraphRetriever, format_fact
from kgpeft.selection import rank_facts
from kgpeft.utils import surrogate_at

#: The retrieval settings linking and retrieval read (the others write facts for a model).
LINK_RETRIEVAL = ("num_neighbors", "max_nodes", "max_candidates")


@dataclass
class LinkConfig:
    """What ``kgpeft link`` (and the demo's linking) reads."""

    kg: str | KGSource = field(
        default="wordnet",
        metadata={
            "help": "Dataset name (wordnet, umls, ...), a saved KG folder or a triples file; or a mapping naming the "
            "files, '{triples: FILE, labels: FILE}' (KGSource keys)."
        },
    )
    retrieval: RetrievalConfig = field(
        default_factory=RetrievalConfig,
        metadata={"help": "RetrievalConfig settings: link candidates, fan-out, node cap."},
    )
    max_facts: int = field(default=6, metadata={"help": "Facts printed per text."})
    seed: int = field(default=0, metadata={"help": "Retrieval sampling seed."})

    def __post_init__(self) -> None:
        check_field_types(self, ConfigError)


def link_config(args: argparse.Namespace) -> LinkConfig:
    """The config file's settings (``--config``, if given) with the options given on the command line over them.

    Raises:
        ConfigError: an unknown key, a wrong type or an invalid value, named with the file.
    """
    values: dict[str, Any] = dict(read_yaml(args.config)) if args.config is not None else {}
    given = vars(args)
    values.update({name: given[name] for name in ("kg", "max_facts", "seed") if name in given})
    section = {name.removeprefix("retrieval."): v for name, v in given.items() if name.startswith("retrieval.")}
    if section and isinstance(values.get("retrieval") or {}, dict):
        values["retrieval"] = {**(values.get("retrieval") or {}), **section}
    try:
        return dataclass_from_dict(LinkConfig, values, "link config", ConfigError)
    except ConfigError as e:
        raise ConfigError(f"{args.config}: {e}" if args.config is not None else str(e)) from None


def link_parts(config: LinkConfig) -> tuple[KnowledgeGraph, EntityLinker, SubgraphRetriever]:
    """The KG, linker and retriever ``config`` names, built and described."""
    t0 = time.perf_counter()
    kg = load_kg(config.kg)
    linker = config.retrieval.build_linker(kg)
    retriever = config.retrieval.build_retriever(kg, seed=config.seed)
    print(f"{kg}\n{linker}\n{retriever}\n(ready in {time.perf_counter() - t0:.1f} s)")
    return kg, linker, retriever


def show_link(kg, linker, retriever, texts: Sequence[str], max_facts: int) -> None:
    """Each text's mentions with their candidates, its subgraph's size and its first ``max_facts`` facts."""
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


def texts_of(args: argparse.Namespace) -> list[str]:
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
    check_utf8(texts)
    return [text for _, text in texts]


def check_utf8(texts: Sequence[tuple[str, str]]) -> None:
    """Refuse the first of the ``(where, text)`` pairs whose text holds a lone surrogate, which no tokenizer encodes."""
    for where, text in texts:
        if (at := surrogate_at(text)) is not None:
            code = ord(text[at])  # an undecodable byte b arrives as the surrogate U+DC00 + b (surrogateescape)
            what = f"byte {code - 0xDC00:#04x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate {text[at]!r}"
            raise ConfigError(f"{where}: not UTF-8 ({what} at character {at + 1}); pass UTF-8 text.")


def cmd_link(args: argparse.Namespace) -> None:
    config = link_config(args)  # checked (ranges included) before the texts are read and the KG loads
    texts = texts_of(args)
    show_link(*link_parts(config), texts, config.max_facts)
