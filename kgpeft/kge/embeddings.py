"""A trained KG embedding as one object: the model, its config, the KG it belongs to; saved as safetensors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from kgpeft.errors import KGPeftError
from kgpeft.kge.config import KGEConfig
from kgpeft.kge.evaluation import AnswerIndex, RankResult, evaluate_ranks
from kgpeft.kge.models import KGEModel, build_model
from kgpeft.utils import atomic_file

if TYPE_CHECKING:
    from kgpeft.graph import KnowledgeGraph

FORMAT = "kgpeft.kge"
FORMAT_VERSION = 1


class EmbeddingFileError(KGPeftError, ValueError):
    """An embedding file that cannot be read, or that belongs to another KG."""


class KGEmbeddings:
    """A KG embedding model with what it needs to be used and shared.

    Heads are predicted as tails of the reciprocal relation ``r + num_relations`` when the
    model was trained with ``reciprocal=True``, and with :meth:`KGEModel.score_heads` otherwise.

    Args:
        model (KGEModel): the embedding model.
        config (KGEConfig): the config it was built and trained with.
        num_relations (int): the KG's relations (the model has twice as many when reciprocal).
        kg_fingerprint (str): :attr:`KnowledgeGraph.fingerprint` of the KG it was trained on.
        relation_keys (list[str], optional): relation names, for per-relation metrics.
    """

    def __init__(
        self,
        model: KGEModel,
        config: KGEConfig,
        num_relations: int,
        kg_fingerprint: str,
        relation_keys: list[str] | None = None,
    ) -> None:
        self.model, self.config = model, config
        self.num_relations, self.kg_fingerprint = num_relations, kg_fingerprint
        self.relation_keys = list(relation_keys) if relation_keys is not None else None

    @property
    def num_entities(self) -> int:
        return self.model.num_nodes

    @property
    def device(self) -> torch.device:
        return self.model.node_emb.weight.device

    def score_tails(self, head_index: Tensor, rel_type: Tensor, candidates: Tensor | None = None) -> Tensor:
        """``(B, N)`` scores of ``(head, relation, c)`` for all entities (or ``candidates``) ``c``."""
        return self.model.score_tails(head_index, rel_type, candidates)

    def score_heads(self, rel_type: Tensor, tail_index: Tensor, candidates: Tensor | None = None) -> Tensor:
        """``(B, N)`` scores of ``(c, relation, tail)`` for all entities (or ``candidates``) ``c``."""
        if self.config.reciprocal:
            return self.model.score_tails(tail_index, rel_type + self.num_relations, candidates)
        return self.model.score_heads(rel_type, tail_index, candidates)

    def entity_embeddings(self) -> Tensor:
        """``(num_entities, d)`` real entity vectors (real and imaginary parts concatenated), for node features."""
        return self.model.entity_embeddings().cpu()

    @torch.no_grad()
    def evaluate_triples(self, triples: Tensor, known: AnswerIndex, batch_size: int = 256) -> RankResult:
        """Filtered ranks of ``triples``'s heads and tails; ``known`` holds the true triples to filter."""
        was_training = self.model.training
        self.model.eval()
        try:

            def score(entity: Tensor, relation: Tensor, heads: bool) -> Tensor:
                return self.score_heads(relation, entity) if heads else self.score_tails(entity, relation)

            return evaluate_ranks(
                score, triples, known, batch_size=batch_size, relation_keys=self.relation_keys, device=self.device
            )
        finally:
            self.model.train(was_training)

    def evaluate(self, kg: KnowledgeGraph, split: str = "test", batch_size: int | None = None) -> RankResult:
        """Filtered rank evaluation on ``kg.splits[split]``, filtering the triples of every split.

        Raises:
            EmbeddingFileError: the KG is not the one the embeddings were trained on.
        """
        self.check_kg(kg)
        if split not in kg.splits:
            raise KeyError(f"The KG has no split {split!r}; it has {', '.join(kg.splits) or 'none'}.")
        known = AnswerIndex([*kg.splits.values(), kg.triples], kg.num_entities, kg.num_relations)
        return self.evaluate_triples(kg.splits[split], known, batch_size or self.config.eval_batch_size)

    def check_kg(self, kg: KnowledgeGraph, source: str | os.PathLike | None = None) -> None:
        """Raise :class:`EmbeddingFileError` unless ``kg`` has the fingerprint these embeddings were trained on."""
        if kg.fingerprint != self.kg_fingerprint:
            where = f"The embeddings in {source}" if source else "These embeddings"
            raise EmbeddingFileError(
                f"{where} were trained on a KG with fingerprint {self.kg_fingerprint[:12]}…, but this KG's "
                f"fingerprint is {kg.fingerprint[:12]}… ({kg.num_entities} entities, {kg.num_relations} relations): "
                "its entities or relations differ, so the vectors would belong to the wrong entities. "
                "Train embeddings on this KG (`kgpeft kge train`) or load the KG they were trained on."
            )

    def save(self, path: str | os.PathLike) -> None:
        """Write one safetensors file: the model's tensors, with config and KG fingerprint as metadata.

        The file is written under a temporary name and renamed, so a failed save leaves any
        previous file intact.
        """
        metadata = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "config": json.dumps(self.config.to_dict()),
            "kg_fingerprint": self.kg_fingerprint,
            "num_entities": str(self.num_entities),
            "num_relations": str(self.num_relations),
            "relation_keys": json.dumps(self.relation_keys),
        }
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_file(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)

    @classmethod
    def load(
        cls, path: str | os.PathLike, kg: KnowledgeGraph | None = None, device: str | torch.device = "cpu"
    ) -> KGEmbeddings:
        """Read a file written by :meth:`save`; with ``kg``, refuse it unless its fingerprint matches.

        Raises:
            EmbeddingFileError: unreadable file, not a kgpeft embedding file, a newer format, or another KG.
        """
        path = Path(path)
        if not path.is_file():
            raise EmbeddingFileError(f"No embedding file at {path}.")
        try:
            with safe_open(path, framework="pt", device="cpu") as f:
                meta: dict[str, Any] = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as e:
            raise EmbeddingFileError(f"{path} is not a readable safetensors file: {e}") from e
        if meta.get("format") != FORMAT:
            raise EmbeddingFileError(f"{path} is not a kgpeft KG embedding file (no '{FORMAT}' metadata).")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise EmbeddingFileError(
                f"{path} has format version {meta['format_version']}, newer than this kgpeft reads "
                f"({FORMAT_VERSION}); upgrade kgpeft."
            )
        try:
            config = KGEConfig.from_saved(json.loads(meta["config"]))
            num_entities, num_relations = int(meta["num_entities"]), int(meta["num_relations"])
            keys = json.loads(meta["relation_keys"])
            fingerprint = meta["kg_fingerprint"]
        except (KeyError, ValueError, TypeError) as e:  # JSONDecodeError and KGEConfigError are ValueErrors
            raise EmbeddingFileError(f"{path}: unreadable kgpeft metadata ({type(e).__name__}: {e}).") from e
        model_relations = 2 * num_relations if config.reciprocal else num_relations
        model = build_model(
            config.model, num_entities, model_relations, config.hidden_channels, **config.model_kwargs()
        )
        try:
            model.load_state_dict(tensors)
        except RuntimeError as e:
            raise EmbeddingFileError(f"{path}: the tensors do not fit a {config.model} model: {e}") from e
        self = cls(model.to(device).eval(), config, num_relations, fingerprint, keys)
        if kg is not None:
            self.check_kg(kg, source=path)
        return self

    def __repr__(self) -> str:
        return f"KGEmbeddings({self.model!r}, reciprocal={self.config.reciprocal}, kg={self.kg_fingerprint[:12]})"
