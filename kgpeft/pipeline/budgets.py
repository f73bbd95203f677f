"""A job's token budgets, ``max_length`` and ``retrieval.max_fact_tokens``: as set, or derived from its own data.

A budget left unset is derived from the job's examples and the facts their subgraphs offer (the
facts the job can select), so that no row of the job is cut: ``max_length`` from the longest row
(a training row with its answer, an evaluation prompt) written with its ``k`` longest facts as text
(``k``: the most facts a variant writes into its prompt), ``max_fact_tokens`` from the longest
fact; each rounded up to a multiple of :data:`MULTIPLE` and capped by the base model's positions.
Rows are padded to the longest in their batch, so a budget costs nothing until a row uses it.

A training job writes the budgets it used to ``training.output_dir/budgets.json``
(:data:`BUDGETS_FILE`); evaluating or predicting with that job's adapters reads them back, so the
adapter is read with the lengths it was trained with, whatever the data is since.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from kgpeft.configuration import is_int
from kgpeft.data import KnowledgeDataset
from kgpeft.pipeline.config import JobConfig
from kgpeft.retrieval import format_fact, memory_fact_texts
from kgpeft.utils import atomic_file, writing

#: Where a training job records the budgets it used, in ``training.output_dir``.
BUDGETS_FILE = "budgets.json"
#: A derived budget is rounded up to a multiple of this.
MULTIPLE = 8
#: The budgets a job has, by the setting that holds them in a job config.
SETTINGS = {"max_length": "max_length", "max_fact_tokens": "retrieval.max_fact_tokens"}


@dataclass
class Budgets:
    """The token budgets a job's rows are cut to, and how each unset one was found."""

    max_length: int
    max_fact_tokens: int
    derived: dict[str, str] = field(default_factory=dict)  # budget -> where its value came from

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One line: each budget, and where a derived one came from."""
        return ", ".join(
            f"{SETTINGS[name]} {getattr(self, name)}"
            + (f" ({self.derived[name]})" if name in self.derived else " (set)")
            for name in SETTINGS
        )


def given_budgets(config: JobConfig) -> dict[str, int | None]:
    """The budgets ``config`` sets (``None``: to derive)."""
    return {"max_length": config.max_length, "max_fact_tokens": config.retrieval.max_fact_tokens}


def max_positions(model: nn.Module) -> int | None:
    """The most positions ``model`` reads (``max_position_embeddings`` or ``n_positions``), or ``None``."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if is_int(value) and value > 0:
            return value
    return None


def round_up(tokens: int, cap: int | None) -> int:
    """``tokens`` rounded up to a multiple of :data:`MULTIPLE` (at least one), at most ``cap``."""
    value = max(MULTIPLE, -(-tokens // MULTIPLE) * MULTIPLE)
    return min(value, cap) if cap is not None else value


def derive_budgets(config: JobConfig, probes: list[KnowledgeDataset], cap: int | None) -> Budgets:
    """``config``'s budgets, those it leaves unset derived from ``probes``: the job's rows, linked and retrieved,
    tokenised with no cut (``max_length`` at ``cap``, no ``max_fact_tokens``).

    ``max_fact_tokens`` covers the longest fact of their subgraphs (every fact a row can select);
    ``max_length`` the longest row written with its ``k`` longest facts as text (``k``: the most facts
    a variant writes into its prompt).
    """
    given = given_budgets(config)
    triples = sorted({t for probe in probes for graph in probe.graphs for t in graph.edge_id.tolist()})
    kg, style, tokenizer = probes[0].kg, probes[0].retrieval.fact_format, probes[0].tokenizer
    # A job whose questions link to nothing has no facts (a fast tokenizer fails on an empty batch).
    ids = (
        tokenizer([format_fact(kg, t, style) for t in triples], add_special_tokens=False)["input_ids"]
        if triples
        else []
    )
    length = dict(zip(triples, map(len, ids), strict=True))
    values, derived = dict(given), {}
    if given["max_fact_tokens"] is None:
        if triples and probes[0].retrieval.memory_framing == "block":  # a memory fact's longest: "Facts: <fact>.\n"
            pieces = [memory_fact_texts(kg, [t], style, "block")[0] for t in triples]
            ids = tokenizer(pieces, add_special_tokens=False)["input_ids"]
        longest = max(map(len, ids), default=1)
        values["max_fact_tokens"] = round_up(longest, cap)
        derived["max_fact_tokens"] = f"derived: the longest of {len(triples):,} facts its rows can select"
        derived["max_fact_tokens"] += f" has {longest} tokens"
    if given["max_length"] is None:
        k = max(config.variant_facts(v) for v in config.variants)
        rows = probes
        if k:  # each row with the k longest facts it can select, written as text
            with_facts = dataclasses.replace(probes[0].retrieval, num_facts=k)
            rows = [
                p.with_fact_ranking(
                    [sorted(g.edge_id.unique().tolist(), key=lambda t: -length[t]) for g in p.graphs]
                ).with_retrieval(with_facts)
                for p in probes
            ]
        tokens = max((_row_tokens(f) for data in rows for f in data.features), default=1)
        values["max_length"] = round_up(tokens, cap)
        facts = f" with its {k} longest facts as text" if k else ""
        count = sum(len(data) for data in rows)
        derived["max_length"] = f"derived: the longest of {count:,} rows (training rows with answers){facts}"
        derived["max_length"] += f" has {tokens} tokens"
    for name, value in values.items():
        if name in derived and cap is not None and value == cap:
            derived[name] += f", cut to the model's {cap} positions"
    return Budgets(values["max_length"], values["max_fact_tokens"], derived)


def _row_tokens(feature: dict[str, Any]) -> int:
    """A row's tokens: its prompt and answer (one sequence), or the longer of the two (an encoder-decoder's)."""
    labels = feature.get("labels")
    return max(len(feature["input_ids"]), len(labels) if isinstance(labels, list) else 0)


def write_budgets(budgets: Budgets, path: Path) -> None:
    """Write ``budgets`` to ``path`` (``budgets.json``) atomically."""
    with writing(path), atomic_file(path) as tmp:
        tmp.write_text(json.dumps(budgets.to_dict(), indent=2), encoding="utf-8")


def read_budgets(path: Path, config: JobConfig) -> Budgets | None:
    """The budgets a training job wrote to ``path``, under those ``config`` sets; ``None`` (with a warning if the
    file is there but cannot be read): derive them again."""
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        values = {name: saved[name] for name in SETTINGS}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as e:
        warnings.warn(f"{path} cannot be read ({e!r}); deriving the budgets again.", stacklevel=3)
        return None
    if not all(is_int(v) and v > 0 for v in values.values()):
        warnings.warn(f"{path} holds no positive budgets ({values}); deriving them again.", stacklevel=3)
        return None
    given = given_budgets(config)
    derived = {name: f"read from {path}" for name, value in given.items() if value is None}
    values.update({name: value for name, value in given.items() if value is not None})
    return Budgets(values["max_length"], values["max_fact_tokens"], derived)
