"""`KGPeftModel`: a Hugging Face model with knowledge-conditioned LoRA adapters.

The user-facing wrapper, as peft's ``PeftModel``: running (:meth:`KGPeftModel.forward`,
:meth:`KGPeftModel.generate`), saving and loading, reporting and merging. Adding and
switching adapters, the graph encoders, the knowledge path and the auxiliary losses are the
tuner's, :class:`~kgpeft.tuners.model.KGLoraModel`; the checkpoint format is
:mod:`kgpeft.checkpoint`'s.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import save_file
from torch import nn

from kgpeft.card import write_card
from kgpeft.checkpoint import (
    CONFIG_NAME,
    PEFT_WEIGHTS_NAME,
    SCORER_NAME,
    STAGED_SCORER_NAME,
    WEIGHTS_NAME,
    AnswerSettings,
    CheckpointError,
    base_model_signature,
    check_adapter_name,
    foreign_entries,
    load_safetensors,
    read_checkpoint_config,
    weight_digests,
    write_checkpoint_config,
    written_by_newer_kgpeft,
)
from kgpeft.configuration import ConfigError
from kgpeft.errors import OutputPathError
from kgpeft.graph import KnowledgeGraph
from kgpeft.kge import KGEmbeddings
from kgpeft.selection import FactScorer, load_fact_scorer, save_fact_scorer, select_memory_facts
from kgpeft.tuners.config import KGLoraConfig
from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import KnowledgeError
from kgpeft.tuners.model import KGLoraModel
from kgpeft.utils import atomic_folder, foreign_entries_or_refuse

__all__ = ["CheckpointError", "KGPeftModel", "get_kg_peft_model"]


class KGPeftModel(nn.Module):
    """A base model whose attention projections carry KG-LoRA adapters fed by a graph encoder.

    Build one with :func:`get_kg_peft_model` (the arguments are those of
    :class:`~kgpeft.tuners.model.KGLoraModel`). Only the adapters, the knowledge projections
    and the graph encoder are trainable; the base model stays frozen. As peft's ``PeftModel``
    holds its ``LoraModel``, this holds the tuner, :attr:`tuner`, which adds and switches
    adapters and encodes the knowledge; attributes it lacks (``peft_model``, ``graph_encoders``,
    ``set_adapter``, ``active_config``, ...) are the tuner's.
    """

    def __init__(
        self,
        model: nn.Module,
        config: KGLoraConfig,
        kg: KnowledgeGraph,
        tokenizer=None,
        adapter_name: str = "default",
        kge_embeddings: torch.Tensor | KGEmbeddings | str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.base_signature = base_model_signature(model)  # what a checkpoint of these adapters fits
        tuner = KGLoraModel(model, config, kg, tokenizer, adapter_name=adapter_name, kge_embeddings=kge_embeddings)
        # The tuner's modules are registered here under their own names, not under "tuner.": parameter
        # names (state_dict keys, training checkpoints, the optimizer state) stay those of a model that
        # was the tuner. The tuner itself is held outside the module tree so that each is counted once.
        for name, module in tuner.named_children():
            self.add_module(name, module)
        object.__setattr__(self, "tuner", tuner)
        # What the adapter card (README.md of a saved adapter) shows beyond what the model knows of
        # itself: "task", "training", "results" (see kgpeft.card.CARD_KEYS); JSON values only.
        self.card: dict[str, Any] = {}
        self._adapters_enabled = True  # False inside disable_adapter()
        self.fact_scorer: FactScorer | None = None  # picks the memory facts per batch (attach_fact_scorer)
        self.set_answering(None)

    def set_answering(self, settings: AnswerSettings | None, staged_scorer: FactScorer | None = None) -> None:
        """Save with the adapter how its job built each question's knowledge and answered (``settings``), and
        the staged fact scorer that ranked the facts (``settings.fact_ranking == "staged"``), so that the
        adapter folder alone answers as the job did (:func:`kgpeft.pipeline.answer.predict`).

        The staged scorer is held outside the module tree: it is no part of the model's parameters, state
        dict or trainable count (a jointly trained one, :meth:`attach_fact_scorer`, is).
        """
        if settings is not None and (settings.fact_ranking == "staged") != (staged_scorer is not None):
            raise ValueError("Pass `staged_scorer` exactly when `settings.fact_ranking` is 'staged'.")
        self.answering = settings
        object.__setattr__(self, "staged_scorer", staged_scorer)

    def attach_fact_scorer(self, scorer: FactScorer) -> None:
        """Train ``scorer`` with the adapter and let it pick each batch's memory facts from ``knowledge.candidates``.

        The scorer (built by :func:`~kgpeft.selection.build_fact_scorer`, which gives it its ``config``)
        becomes a trainable part of this model (:mod:`kgpeft.selection.joint`): its log-probability of
        each fact biases the attention to the fact's memory slots, so the task loss trains it; it is
        saved with the adapter (``fact_scorer.safetensors``) and loaded back with it.
        """
        if not hasattr(scorer, "config"):
            raise TypeError(
                "attach_fact_scorer takes a scorer from kgpeft.selection.build_fact_scorer (with `config`)."
            )
        scorer.requires_grad_(True)
        self.fact_scorer = scorer

    def _select_facts(self, knowledge: KnowledgeBatch | None) -> KnowledgeBatch | None:
        """``knowledge`` with the fact scorer's memory facts when it carries candidates to pick from."""
        if knowledge is None or knowledge.candidates is None:
            return knowledge
        if self.fact_scorer is None:
            raise KnowledgeError(
                "`knowledge` carries fact candidates (a dataset `with_fact_candidates()`) for a fact scorer to pick "
                "memory facts from, but the model has none: attach one with `attach_fact_scorer`."
            )
        return select_memory_facts(self.fact_scorer, knowledge)

    def __getattr__(self, name: str) -> Any:
        """The tuner's attribute, for what this model does not have itself (as peft's ``PeftModel``)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "tuner":  # not set yet (unpickling): no tuner to ask
                raise
            return getattr(self.tuner, name)

    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Run the base model alone (no LoRA, no knowledge) inside the ``with`` block."""
        self._adapters_enabled = False
        try:
            with self.peft_model.disable_adapter():
                yield
        finally:
            self._adapters_enabled = True

    # ------------------------------------------------------------------ running
    def forward(
        self,
        *args: Any,
        knowledge: KnowledgeBatch | None = None,
        **kwargs: Any,
    ):
        """The base model's forward, with the graph states of ``knowledge`` in the adapters.

        In training mode with ``relation_loss_weight > 0``, ``loss`` also holds the weighted
        relation-aware loss (:meth:`~kgpeft.tuners.model.KGLoraModel.relation_loss`), also returned
        on its own (``relation_loss``) and weighted as ``auxiliary_loss`` (also when no ``labels``
        were passed, so no ``loss`` was computed). It is computed here, not by the trainer, because
        under DDP a parameter used outside the forward call (the relation decoder) breaks the
        gradient reduction. The distillation loss is the trainer's
        (:func:`kgpeft.training.loss.batch_loss`).
        """
        if args:
            kwargs["input_ids"] = args[0]
            if len(args) > 1:
                raise TypeError("Pass model inputs other than `input_ids` by keyword.")
        if "distillation" in kwargs:  # the base model would take it silently among its **kwargs
            raise TypeError(
                "KGPeftModel.forward takes no `distillation`: the distillation loss is the trainer's; use "
                "`kgpeft.training.loss.batch_loss(model, batch)`."
            )
        if not self._adapters_enabled:
            outputs = self.peft_model(**kwargs)
        else:
            state = self.encode_knowledge(self._check_knowledge(self._select_facts(knowledge), kwargs))
            with self.context.activate(state):
                outputs = self.peft_model(**kwargs)
        weight = self.active_config.relation_loss_weight
        if self._adapters_enabled and self.training and weight > 0 and knowledge is not None:
            outputs["relation_loss"] = rel = self.relation_loss(knowledge)
            outputs["auxiliary_loss"] = aux = weight * rel
            if outputs.get("loss") is not None:
                outputs["loss"] = outputs.loss + aux
        return outputs

    @torch.no_grad()
    def generate(self, *args: Any, knowledge: KnowledgeBatch | None = None, **kwargs: Any):
        """``generate`` with the knowledge in the adapters, using the KV cache.

        The token-to-node index describes the prompt, so it applies to the first (prefill)
        step only; generated tokens are linked to nothing. ``cross`` mode attends over the
        subgraph at every step.
        """
        if args:
            kwargs["input_ids"] = args[0]
        if not self._adapters_enabled:
            return self.peft_model.generate(**kwargs)
        state = self.encode_knowledge(self._check_knowledge(self._select_facts(knowledge), kwargs))
        handle = None
        if state.links_tokens and not self.is_encoder_decoder:
            if kwargs.get("use_cache", True):
                # with a KV cache, steps after the prefill see only generated tokens, linked to nothing
                handle = self.base_model.register_forward_hook(self.context.after_prefill_hook())
            else:
                state.extends = True  # only a state that links tokens (`token` mode) has it
        try:
            with self.context.activate(state):
                return self.peft_model.generate(**kwargs)
        finally:
            if handle is not None:
                handle.remove()

    # --------------------------------------------------------------- reporting
    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """``(trainable, all)`` parameter counts, the frozen base model included in ``all``."""
        params = {id(p): p for p in self.parameters()}
        trainable = sum(p.numel() for p in params.values() if p.requires_grad)
        return trainable, sum(p.numel() for p in params.values())

    def print_trainable_parameters(self) -> None:
        trainable, total = self.get_nb_trainable_parameters()
        print(f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}")

    # ----------------------------------------------------------------- merging
    def merge_and_unload(self) -> nn.Module:
        """Merge the plain LoRA part ``s * B A`` into the base weights and return the base model.

        The knowledge path ``s * B G(x, Z)`` depends on each input's graph, so it cannot be
        merged into a weight: the merged model computes plain LoRA, which is what KG-LoRA
        computes for text without linked entities. Use the unmerged model to keep using
        the knowledge graph.
        """
        warnings.warn(
            "merge_and_unload merges only the plain LoRA part; the knowledge path (graph encoder and knowledge "
            "projections) depends on each input and is dropped.",
            stacklevel=2,
        )
        self.remove_knowledge_hooks()
        return self.peft_model.merge_and_unload()

    # -------------------------------------------------------------- checkpoints
    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        overwrite: bool = True,
        force: bool = False,
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Write the adapters to ``save_directory``, atomically.

        The LoRA part goes in peft's own format (``adapter_config.json``,
        ``adapter_model.safetensors``; other adapters in subfolders), loadable by plain
        :meth:`peft.PeftModel.from_pretrained`. Next to it: ``kgpeft_config.json`` (the
        KG-LoRA configs, the KG fingerprint, the base model's signature, the sha256 of each
        weight file, a format version and, for an adapter a job trained, its :attr:`answering`
        settings) and ``kgpeft_model.safetensors`` (graph encoders and knowledge weights); the
        fact scorers, when it has them (``fact_scorer.safetensors``, jointly trained;
        ``staged_fact_scorer.safetensors``, the job's staged one). Everything is written to a
        temporary folder first and renamed into place.

        Args:
            save_directory (str or PathLike): the folder to write; the current directory (``"."``) works.
            overwrite (bool): replace a kgpeft adapter folder already there. (default: ``True``)
            force (bool): also write into a folder holding other files: the adapter's files
                replace those of the same names, the others are kept. (default: ``False``)
            state_dict (dict, optional): the weights to write instead of the model's own, keyed
                as in :meth:`state_dict`: the full state dict gathered from a sharded model
                (FSDP, DeepSpeed ZeRO-3), whose own parameters are only shards. (default: the
                model's parameters)

        Raises:
            OutputPathError: ``save_directory`` is a file; or a folder holding files that are
                not a kgpeft adapter's (without ``force``); or any existing folder (with
                ``overwrite=False``).
            PathNameError: an adapter's name cannot name its subfolder (one added to
                ``peft_model`` directly, past :meth:`add_adapter`'s check).
            ValueError: ``state_dict`` lacks some of the knowledge weights.
        """
        for name in self.peft_model.peft_config:  # what peft writes: each adapter but "default" in its subfolder
            check_adapter_name(name, "An adapter name (a key of `peft_model.peft_config`)")
        knowledge = self.knowledge_state_dict() if state_dict is None else self._knowledge_from(state_dict)
        peft_state = None
        if state_dict is not None:
            peft_state = {
                k.removeprefix("peft_model."): v for k, v in state_dict.items() if k.startswith("peft_model.")
            }
        target = Path(save_directory)
        others = foreign_entries_or_refuse(
            target, foreign_entries, force, writer="save_pretrained", owner="a kgpeft adapter's", thing="the adapter"
        )
        if not overwrite and target.is_dir() and any(target.iterdir()):
            raise OutputPathError(f"{target} exists; pass overwrite=True to replace the adapter saved there.")
        with atomic_folder(target, keep=others) as tmp:
            self.peft_model.save_pretrained(str(tmp), state_dict=peft_state)
            save_file(knowledge, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            if self.fact_scorer is not None:
                save_fact_scorer(self.fact_scorer, self.fact_scorer.config, self.kg, tmp / SCORER_NAME)
            if self.staged_scorer is not None:
                save_fact_scorer(self.staged_scorer, self.staged_scorer.config, self.kg, tmp / STAGED_SCORER_NAME)
            write_checkpoint_config(
                tmp,
                self.kg,
                self.base_signature,
                self.active_adapter,
                {name: c.to_dict() for name, c in self.kg_configs.items()},
                self.target_modules,
                digests=weight_digests(tmp),
                card=self._card_data(),
                answering=self.answering,
            )
            write_card(tmp, location=target)

    def _knowledge_from(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The knowledge weights in a full ``state_dict`` (keyed as :meth:`state_dict` keys them)."""
        kinds = set(self.KNOWLEDGE_MODULES)
        knowledge = {k: v.detach().cpu().contiguous() for k, v in state_dict.items() if k.split(".", 1)[0] in kinds}
        missing = sorted(set(self.knowledge_state_dict()) - set(knowledge))
        if missing:
            raise ValueError(f"`state_dict` lacks knowledge weights of the model: {missing[:5]}.")
        return knowledge

    def _card_data(self) -> dict[str, Any]:
        """:attr:`card` with what the model knows of itself filled in (base model name, KG name and size)."""
        name = getattr(self.config, "_name_or_path", None) or None
        known = {"base_model": name, "kg_name": self.kg.info.get("name"), "kg_triples": self.kg.num_triples}
        card = {**{k: v for k, v in known.items() if v is not None}, **self.card}
        try:
            json.dumps(card)
        except (TypeError, ValueError) as e:
            raise TypeError(f"`KGPeftModel.card` should hold only JSON values: {e}") from None
        return card

    @classmethod
    def from_pretrained(
        cls,
        model: nn.Module,
        pretrained_path: str | os.PathLike,
        kg: KnowledgeGraph,
        tokenizer=None,
        is_trainable: bool = False,
        kge_embeddings: torch.Tensor | KGEmbeddings | str | os.PathLike | None = None,
    ) -> KGPeftModel:
        """Load a checkpoint written by :meth:`save_pretrained` onto ``model``.

        ``kgpeft_config.json`` is checked whole before anything is loaded: a malformed or
        hand-edited one is refused with a message naming the file and the key, as is an adapter
        config whose sizes (``r``, ``graph_channels``, ...) no longer fit the saved weights.
        Also refused, with a message saying what differs: a checkpoint from a newer format, for
        another KG (fingerprint) or another base model (architecture or weights), and a weight
        file whose sha256 differs from the one recorded when it was saved (checkpoints saved
        before kgpeft recorded digests load unchecked). The fact scorers saved with the adapter
        are attached (they need ``tokenizer``), and its ``answering`` settings set, so that
        :func:`kgpeft.pipeline.predict` answers as the job that trained it did.
        """
        path = Path(pretrained_path)
        meta = read_checkpoint_config(path, kg, model)
        config_file = path / CONFIG_NAME
        digests = meta["sha256"]

        def load(file: Path) -> dict[str, torch.Tensor]:
            return load_safetensors(file, digests.get(file.relative_to(path).as_posix()), config_file)

        strict = not written_by_newer_kgpeft(meta, config_file)
        configs = {}
        for name, values in meta["adapters"].items():
            try:
                configs[name] = KGLoraConfig.from_dict(values, strict=strict)
            except ConfigError as e:
                raise CheckpointError(f"{config_file}: adapter {name!r}: {e}") from None
            configs[name].target_modules = meta["target_modules"][name]
        first, *others = configs
        self = cls(model, configs[first], kg, tokenizer, adapter_name=first, kge_embeddings=kge_embeddings)
        for name in others:
            self.add_adapter(name, configs[name])
        # peft's layout: the adapter named "default" at the top, every other one in the subfolder of its name
        folders = {name: path if name == "default" else path / name for name in configs}
        peft_states = {name: load(folder / PEFT_WEIGHTS_NAME) for name, folder in folders.items()}
        knowledge = load(path / WEIGHTS_NAME)
        own_knowledge = self.knowledge_state_dict()
        for name, config in configs.items():
            own_peft = get_peft_model_state_dict(self.peft_model, adapter_name=name)
            _check_shapes(peft_states[name], own_peft, folders[name] / PEFT_WEIGHTS_NAME, config_file, name, config)
            mine = {k: v for k, v in knowledge.items() if k.partition(".")[2].startswith(f"{name}.")}
            _check_shapes(mine, own_knowledge, path / WEIGHTS_NAME, config_file, name, config)
        for name, peft_state in peft_states.items():
            result = set_peft_model_state_dict(self.peft_model, peft_state, adapter_name=name)
            missing = [k for k in result.missing_keys if "lora_" in k and f".{name}." in k]
            if result.unexpected_keys or missing:
                raise CheckpointError(
                    f"{folders[name] / PEFT_WEIGHTS_NAME} does not fit adapter {name!r}: "
                    f"missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}."
                )
        self.load_knowledge_state_dict(knowledge, source=path / WEIGHTS_NAME)
        if (path / SCORER_NAME).is_file():
            self.attach_fact_scorer(self._load_fact_scorer(path / SCORER_NAME, load, tokenizer))
        answering = meta["answering"]
        staged = None
        if answering is not None and answering.fact_ranking == "staged":
            staged = self._load_fact_scorer(path / STAGED_SCORER_NAME, load, tokenizer)
        self.set_answering(answering, staged)
        self.set_adapter(meta["active_adapter"] or first)
        if not is_trainable:
            self.eval()
            self.requires_grad_(False)
        return self

    def _load_fact_scorer(self, file: Path, check: Any, tokenizer) -> FactScorer:
        """The fact scorer saved with the adapter, its bytes checked first (``check``: the digest check)."""
        if tokenizer is None:
            raise CheckpointError(
                f"{file}: the adapter was trained with a fact scorer, which needs the base model's "
                "tokenizer to read entity labels; pass `tokenizer=` to from_pretrained."
            )
        check(file)
        embedding = self.base_model.get_input_embeddings()
        return load_fact_scorer(file, self.kg, tokenizer, embedding).to(embedding.weight.device)


# The adapter settings that size its tensors, named when a saved tensor does not fit them.
_SIZE_KEYS = ("r", "graph_channels", "num_bases", "num_blocks", "num_prefix_tokens")


def _check_shapes(
    saved: dict[str, torch.Tensor],
    own: dict[str, torch.Tensor],
    file: Path,
    config_file: Path,
    adapter: str,
    config: KGLoraConfig,
) -> None:
    """Refuse a saved tensor whose shape differs from the model's, naming the adapter setting that sized it."""
    for key, tensor in saved.items():
        want = own.get(key)
        if want is None or want.shape == tensor.shape:
            continue
        sizes = {w for w, s in zip(want.shape, tensor.shape, strict=False) if w != s} or set(want.shape)
        keys = [k for k in _SIZE_KEYS if getattr(config, k) in sizes]
        why = f" (from {' or '.join(f'`{k}` = {getattr(config, k)}' for k in keys)})" if keys else ""
        raise CheckpointError(
            f"{config_file}: adapter {adapter!r} expects tensor {key!r} of shape {tuple(want.shape)}{why}, but "
            f"{file} holds it with shape {tuple(tensor.shape)}. Was the adapter config edited after saving?"
        )


def get_kg_peft_model(
    model: nn.Module,
    config: KGLoraConfig,
    kg: KnowledgeGraph,
    tokenizer=None,
    adapter_name: str = "default",
    kge_embeddings: torch.Tensor | KGEmbeddings | str | os.PathLike | None = None,
) -> KGPeftModel:
    """Wrap ``model`` with a KG-LoRA adapter (the counterpart of :func:`peft.get_peft_model`).

    A refused ``model`` (targets that match nothing or that LoRA cannot adapt, attention that the
    ``knowledge_mode`` cannot read, node features missing their tokenizer or embeddings) is left
    as it was passed: the same modules, weights, trainable flags and attributes.
    """
    return KGPeftModel(model, config, kg, tokenizer, adapter_name=adapter_name, kge_embeddings=kge_embeddings)
