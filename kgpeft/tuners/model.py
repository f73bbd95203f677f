"""`KGLoraModel`: peft's LoRA plus the knowledge path, injected into a base model.

As peft's ``LoraModel`` is to ``PeftModel``, this is the tuner under the user-facing
:class:`~kgpeft.model.KGPeftModel`: it adds adapters (peft's LoRA weights, the knowledge
hooks on each ``lora_A`` and one graph encoder per adapter), turns a
:class:`~kgpeft.tuners.knowledge.KnowledgeBatch` into the state the layers read
(:meth:`KGLoraModel.encode_knowledge`, by its knowledge mode) and computes the auxiliary relation loss. Running
the model, generating and checkpoint files are the wrapper's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, get_peft_model
from torch import nn

from kgpeft.checkpoint import CheckpointError, check_adapter_name
from kgpeft.graph import KnowledgeGraph
from kgpeft.kge import KGEmbeddings
from kgpeft.nn import GraphEncoder, KGENodeFeatures, LearnedNodeFeatures, RGCNEncoder, TextNodeFeatures
from kgpeft.tuners.config import KGLoraConfig
from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import (
    KnowledgeContext,
    KnowledgeError,
    KnowledgeState,
    mark_position_calls,
    unmark_position_calls,
)
from kgpeft.tuners.mode import KnowledgeMode
from kgpeft.tuners.modes import KNOWLEDGE_MODES
from kgpeft.tuners.sites import AttentionSite
from kgpeft.tuners.targets import resolve_target_modules, targets_conv1d
from kgpeft.utils import quiet_checkpointing_deprecation


@contextmanager
def _restored_on_failure(model: nn.Module) -> Iterator[None]:
    """If the block raises, put every module of ``model`` back as it was, and whether each parameter trains.

    A module's attributes are restored, and the dicts among them (children, parameters, buffers,
    hooks) refilled in place, so that handles to its hooks keep working: peft wraps targets one
    by one and may refuse one after wrapping others, and freezes the base model.
    """
    saved = []
    for module in model.modules():
        attributes = dict(vars(module))
        saved.append((module, attributes, {k: dict(v) for k, v in attributes.items() if isinstance(v, dict)}))
    trainable = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield
    except BaseException:
        for module, attributes, contents in saved:
            vars(module).clear()
            vars(module).update(attributes)
            for name, content in contents.items():
                attributes[name].clear()
                attributes[name].update(content)
        for p, flag in trainable:
            p.requires_grad_(flag)
        raise


class KGLoraModel(nn.Module):
    """A base model whose attention projections carry KG-LoRA adapters fed by a graph encoder.

    Each adapter has a graph encoder (unless its mode reads none), a relation decoder with
    ``relation_loss_weight > 0``, and the modules its knowledge mode builds
    (:class:`~kgpeft.tuners.mode.KnowledgeMode`, one file per mode), each kind in an
    ``nn.ModuleDict`` keyed by adapter name (:attr:`KNOWLEDGE_MODULES`). Only the active
    adapter's modules are trainable; the base model stays frozen.

    Args:
        model (PreTrainedModel): the base model (decoder, encoder or encoder-decoder).
        config (KGLoraConfig): the first adapter's configuration.
        kg (KnowledgeGraph): the graph the adapters read.
        tokenizer (PreTrainedTokenizerBase, optional): needed for ``node_features="text"``.
        adapter_name (str): name of the first adapter. (default: ``"default"``)
        kge_embeddings (Tensor | KGEmbeddings | str, optional): for ``node_features="kge"``:
            ``(num_entities, d)`` pretrained vectors, a :class:`~kgpeft.kge.KGEmbeddings`, or the path of
            an embedding file (checked against the KG's fingerprint). (default: the config's ``kge_path``)
    """

    #: The per-adapter knowledge modules: attributes holding an ``nn.ModuleDict`` keyed by
    #: adapter name, named as the prefix of their weights in ``kgpeft_model.safetensors``: the graph
    #: encoders, the kinds each knowledge mode builds, the relation decoders.
    #: :meth:`set_adapter`, :meth:`knowledge_state_dict` and
    #: :meth:`load_knowledge_state_dict` all read this one list.
    KNOWLEDGE_MODULES = tuple(
        dict.fromkeys(
            ("graph_encoders", *(k for mode in KNOWLEDGE_MODES.values() for k in mode.modules), "relation_decoders")
        )
    )

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
        self.kg = kg
        self.tokenizer = tokenizer
        self.kge_embeddings = kge_embeddings
        self.context = KnowledgeContext()
        self.kg_configs: dict[str, KGLoraConfig] = {}
        self.target_modules: dict[str, list[str] | str] = {}
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        for kind in self.KNOWLEDGE_MODULES:
            self.add_module(kind, nn.ModuleDict())
        self._hooks: dict[str, list[torch.utils.hooks.RemovableHandle]] = {}
        self.sites: dict[str, list[AttentionSite]] = {}  # per adapter, the attention layers its mode reads
        self.peft_model: PeftModel | None = None
        self._base = model
        self.add_adapter(adapter_name, config)
        self._position_modules = mark_position_calls(self.base_model, self.context)

    # ---------------------------------------------------------------- adapters
    @property
    def base_model(self) -> nn.Module:
        return self.peft_model.get_base_model()

    @property
    def config(self):
        """The base model's config."""
        return self.base_model.config

    @property
    def _no_split_modules(self) -> list[str]:
        """The base model's layer classes that must stay whole, for FSDP's transformer wrap policy
        and ``device_map`` (as transformers models declare them)."""
        return list(getattr(self.base_model, "_no_split_modules", None) or [])

    @property
    def active_adapter(self) -> str:
        return self.peft_model.active_adapter

    @property
    def active_config(self) -> KGLoraConfig:
        return self.kg_configs[self.active_adapter]

    def add_adapter(self, adapter_name: str, config: KGLoraConfig) -> None:
        """Add a KG-LoRA adapter (its LoRA weights, knowledge projections and graph encoder).

        A refused first adapter leaves the model as it was passed: an attention layout its
        ``knowledge_mode`` cannot read is refused before anything is injected, and what peft or the
        graph encoder refuse after injecting (a target LoRA cannot adapt, a tokenizer whose ids the
        embeddings lack) is undone.

        Raises:
            PathNameError: ``adapter_name`` cannot name the adapter's folder in a checkpoint
                (:func:`~kgpeft.checkpoint.check_adapter_name`), checked before anything is added.
        """
        check_adapter_name(adapter_name, "`adapter_name`")
        if adapter_name in self.kg_configs:
            raise ValueError(f"An adapter named {adapter_name!r} exists already.")
        mode = KNOWLEDGE_MODES[config.knowledge_mode]
        first = self.peft_model is None
        base = self._base if first else self.base_model
        targets = resolve_target_modules(base, config.target_modules)
        mode.sites(base, config)  # refuses attention the mode cannot read, before anything is injected
        lora_config = config.to_lora_config(targets, fan_in_fan_out=targets_conv1d(base, targets))
        with _restored_on_failure(base) if first else nullcontext():
            if first:
                with quiet_checkpointing_deprecation():
                    self.peft_model = get_peft_model(base, lora_config, adapter_name=adapter_name)
            else:
                self.peft_model.add_adapter(adapter_name, lora_config)
            sites = mode.sites(self.base_model, config)  # the same layers, their projections now LoRA's
            encoder = self._make_graph_encoder(config) if mode.graph_encoder else None
        if first:
            del self._base
        self.kg_configs[adapter_name] = config
        self.target_modules[adapter_name] = targets
        self.sites[adapter_name] = sites
        if encoder is not None:
            self.graph_encoders[adapter_name] = encoder
        if config.relation_loss_weight > 0:  # DistMult relation vectors over node states, starting as a dot product
            self.relation_decoders[adapter_name] = nn.Embedding(2 * self.kg.num_relations, config.graph_channels)
            nn.init.ones_(self.relation_decoders[adapter_name].weight)
        self._hooks[adapter_name] = mode.build(self, adapter_name, config, sites)
        self.set_adapter(self.active_adapter)  # peft keeps the first adapter active

    def _make_graph_encoder(self, config: KGLoraConfig) -> GraphEncoder:
        d = config.graph_channels
        if config.node_features == "text":
            if self.tokenizer is None:
                raise ValueError(
                    "`node_features='text'` reads entity labels with the base model's tokenizer; pass `tokenizer=`."
                )
            features = TextNodeFeatures(self.kg, self.tokenizer, self._input_embeddings(), d)
        elif config.node_features == "kge":
            features = KGENodeFeatures(self._kge_vectors(config), d)
        else:
            features = LearnedNodeFeatures(self.kg.num_entities, d)
        rgcn = RGCNEncoder(
            d,
            d,
            num_relations=2 * self.kg.num_relations,
            num_layers=config.num_graph_layers,
            num_bases=config.num_bases,
            num_blocks=config.num_blocks,
            dropout=config.graph_dropout,
        )
        return GraphEncoder(features, rgcn)

    def _kge_vectors(self, config: KGLoraConfig) -> torch.Tensor:
        source = self.kge_embeddings if self.kge_embeddings is not None else config.kge_path
        if source is None:
            raise ValueError(
                "`node_features='kge'` needs KG embeddings: set `kge_path` in the config (a file from "
                "`kgpeft kge train`) or pass `kge_embeddings=`."
            )
        if isinstance(source, (str, os.PathLike)):
            source = KGEmbeddings.load(source, self.kg)
        if isinstance(source, KGEmbeddings):
            source.check_kg(self.kg)
            source = source.entity_embeddings()
        if source.size(0) != self.kg.num_entities:
            raise ValueError(
                f"`kge_embeddings` has {source.size(0)} rows but the KG has {self.kg.num_entities} entities."
            )
        return source

    def _input_embeddings(self) -> nn.Embedding:
        model = self._base if self.peft_model is None else self.base_model
        return model.get_input_embeddings()

    def set_adapter(self, adapter_name: str) -> None:
        """Make ``adapter_name`` the active adapter; only it is used and trained."""
        if adapter_name not in self.kg_configs:
            raise ValueError(f"Unknown adapter {adapter_name!r}; adapters: {sorted(self.kg_configs)}.")
        self.peft_model.set_adapter(adapter_name)
        for modules in self.knowledge_modules().values():
            for name, module in modules.items():
                module.requires_grad_(name == adapter_name)

    def remove_knowledge_hooks(self) -> None:
        """Detach every adapter's knowledge path from its ``lora_A`` (before merging LoRA away)."""
        for handles in self._hooks.values():
            for handle in handles:
                handle.remove()
        self._hooks.clear()
        unmark_position_calls(self._position_modules)
        self._position_modules = []

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Turn on gradient checkpointing in the base model, keeping the knowledge for recomputation."""
        ckpt = {"use_reentrant": False, "context_fn": self.context.checkpoint_context_fn, **kwargs}
        base = self.base_model
        if hasattr(base, "activation_checkpointing_enable"):
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt)

    # ---------------------------------------------------------- module registry
    def knowledge_modules(self) -> dict[str, nn.ModuleDict]:
        """kgpeft's own per-adapter modules, one ``ModuleDict`` per kind of :attr:`KNOWLEDGE_MODULES`."""
        return {kind: getattr(self, kind) for kind in self.KNOWLEDGE_MODULES}

    def knowledge_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights of every :attr:`KNOWLEDGE_MODULES` kind, keyed ``"{kind}.{adapter}...."``; no LoRA."""
        return {
            f"{prefix}.{k}": v.detach().cpu().contiguous()
            for prefix, modules in self.knowledge_modules().items()
            for k, v in modules.state_dict().items()
        }

    def load_knowledge_state_dict(self, state: dict[str, torch.Tensor], source: str | Path = "the state dict") -> None:
        """Load weights written by :meth:`knowledge_state_dict`.

        Raises:
            CheckpointError: the keys differ from this model's; the message names ``source``
                and the first missing and unexpected keys.
        """
        own = set(self.knowledge_state_dict())
        missing = own - set(state)
        for mode in KNOWLEDGE_MODES.values():
            outdated = mode.outdated(missing)
            if outdated is not None:
                raise CheckpointError(f"{source} holds {outdated}")
        if missing or set(state) - own:
            raise CheckpointError(
                f"{source} does not fit the config: missing {sorted(own - set(state))[:5]}, "
                f"unexpected {sorted(set(state) - own)[:5]}."
            )
        for prefix, modules in self.knowledge_modules().items():
            modules.load_state_dict({k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")})

    # ---------------------------------------------------------------- knowledge
    @property
    def active_mode(self) -> type[KnowledgeMode]:
        """The knowledge mode of the active adapter."""
        return KNOWLEDGE_MODES[self.active_config.knowledge_mode]

    def encode_knowledge(self, knowledge: KnowledgeBatch) -> KnowledgeState:
        """The state the active adapter's layers read, from its mode (:meth:`KnowledgeMode.encode`)."""
        return self.active_mode.encode(self, self.active_adapter, knowledge)

    def _check_knowledge(self, knowledge: KnowledgeBatch | None, kwargs: dict[str, Any]) -> KnowledgeBatch:
        if knowledge is None:
            raise KnowledgeError(
                f"Adapter {self.active_adapter!r} reads the knowledge graph: pass `knowledge=` (a KnowledgeBatch), "
                "`KnowledgeBatch.empty(batch_size, seq_len)` for plain LoRA, or run inside `disable_adapter()`."
            )
        inputs = kwargs.get("input_ids")
        if inputs is None:
            inputs = kwargs.get("inputs_embeds")
        knowledge.validate(self.kg.num_entities, *(inputs.shape[:2] if inputs is not None else (None, None)))
        return knowledge

    # --------------------------------------------------------- auxiliary losses
    def relation_loss(self, knowledge: KnowledgeBatch, generator: torch.Generator | None = None) -> torch.Tensor:
        """Relation-aware auxiliary loss: link prediction on the R-GCN's node states.

        A ``relation_holdout`` fraction of the batch's subgraph triples is removed (both
        directions) and the graph encoded without them; a DistMult decoder over the node
        states, :math:`\\langle z_h, w_r, z_t \rangle / \\sqrt{d}`, then scores each held-out
        edge against ``relation_negatives`` corruptions of its tail by other nodes of the same
        subgraph, with the logistic loss. The encoder learns states from which the KG's
        relations can be read. Zero when the batch has no edges.
        """
        config = self.active_config
        graph = knowledge.graph
        decoder = self.relation_decoders[self.active_adapter]
        device = graph.edge_index.device
        forward_edges = (graph.edge_type < self.kg.num_relations).nonzero().view(-1)
        if forward_edges.numel() == 0:
            return decoder.weight.sum() * 0.0
        coin = torch.rand(forward_edges.numel(), generator=generator, device=device)
        picked = forward_edges[coin < config.relation_holdout]
        if picked.numel() == 0:
            picked = forward_edges[coin.argmin()].view(1)
        held = torch.isin(graph.edge_id, graph.edge_id[picked])  # the triple and its inverse, in every sample
        masked = graph.clone()
        masked.edge_index, masked.edge_type = graph.edge_index[:, ~held], graph.edge_type[~held]
        z = self.graph_encoders[self.active_adapter](masked)  # (N, d)
        src, dst = graph.edge_index[:, picked]
        w = decoder(graph.edge_type[picked])  # (P, d)
        k = config.relation_negatives
        sample = graph.batch[src]
        low, size = graph.ptr[sample], graph.ptr[sample + 1] - graph.ptr[sample]
        neg = low[:, None] + (torch.rand(src.numel(), k, generator=generator, device=device) * size[:, None]).long()
        scale = z.size(1) ** -0.5
        pos_score = (z[src] * w * z[dst]).sum(-1) * scale  # (P,)
        neg_score = ((z[src] * w)[:, None] * z[neg]).sum(-1) * scale  # (P, k)
        neg_score = neg_score.masked_fill(neg == dst[:, None], float("-inf"))  # the true tail is no negative
        losses = torch.cat([nn.functional.softplus(-pos_score), nn.functional.softplus(neg_score).view(-1)])
        return losses.mean()
