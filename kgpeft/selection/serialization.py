"""A trained fact scorer on disk: safetensors weights with its config and the KG's fingerprint."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from kgpeft.configuration import dataclass_from_dict
from kgpeft.errors import KGFileNotFoundError
from kgpeft.graph import KnowledgeGraph
from kgpeft.selection.config import FactScorerConfig, FactScorerError
from kgpeft.selection.scorer import FactScorer, build_fact_scorer
from kgpeft.utils import atomic_file

SCORER_FORMAT = "kgpeft.fact_scorer"


def save_fact_scorer(scorer: FactScorer, config: FactScorerConfig, kg: KnowledgeGraph, path: str | os.PathLike) -> None:
    """Write the scorer's weights (the frozen embedding excluded) with its config and the KG fingerprint."""
    meta = {"format": SCORER_FORMAT, "config": json.dumps(asdict(config)), "kg_fingerprint": kg.fingerprint}
    state = {k: v.detach().cpu().contiguous() for k, v in scorer.state_dict().items()}
    with atomic_file(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def load_fact_scorer(path: str | os.PathLike, kg: KnowledgeGraph, tokenizer, embedding: nn.Embedding) -> FactScorer:
    """Read a scorer written by :func:`save_fact_scorer`; refuse one trained on another KG."""
    path = Path(path)
    if not path.is_file():
        raise KGFileNotFoundError(f"No fact scorer at {path}.")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as e:  # safetensors raises several kinds for a damaged file
        raise FactScorerError(f"{path} is not a readable safetensors file: {e}") from None
    if meta.get("format") != SCORER_FORMAT:
        raise FactScorerError(f"{path} is no kgpeft fact scorer (format {meta.get('format')!r}).")
    if meta.get("kg_fingerprint") != kg.fingerprint:
        raise FactScorerError(f"{path} was trained on another knowledge graph (fingerprint differs).")
    try:
        values = json.loads(meta["config"])
    except KeyError:
        raise FactScorerError(f"{path} has no `config` in its metadata.") from None
    except json.JSONDecodeError as e:
        raise FactScorerError(f"{path}: the `config` in its metadata is not valid JSON ({e}).") from None
    config = dataclass_from_dict(FactScorerConfig, values, f"the `config` metadata of {path}", FactScorerError)
    scorer = build_fact_scorer(kg, tokenizer, embedding, config)
    try:
        scorer.load_state_dict(state)
    except RuntimeError as e:
        raise FactScorerError(f"{path} does not fit its own config: {e}") from None
    scorer.eval()
    return scorer
