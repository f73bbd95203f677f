"""`KGPeftModel`: a Hugging Face model with knowledge-conditioned LoRA adapters."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, get_peft_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch_geometric.utils import to_dense_batch

from kgpeft.errors import KGFileNotFoundError, KGPeftError
from kgpeft.graph import KnowledgeGraph
from kgpeft.kge import KGEmbeddings
from kgpeft.kge.distillation import SoftTargets, distillation_loss
from kgpeft.nn import KGENodeFeatures, LearnedNodeFeatures, RGCNEncoder, TextNodeFeatures
from kgpeft.tuners.config import CONFIG_FORMAT_VERSION, KGLoraConfig
from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import (
    CrossFusion,
    KnowledgeContext,
    KnowledgeError,
    KnowledgeState,
    TokenFusion,
    knowledge_hook,
)
from kgpeft.tuners.targets import resolve_target_modules, targets_conv1d
from kgpeft.utils import atomic_folder

CONFIG_NAME = "kgpeft_config.json"
WEIGHTS_NAME = "kgpeft_model.safetensors"
PEFT_WEIGHTS_NAME = "adapter_model.safetensors"
_DECODER = re.compile(r"(^|\.)decoder\.")


class CheckpointError(KGPeftError, ValueError):
    """A checkpoint is unreadable or does not fit the base model or the KG."""


class GraphEncoder(nn.Module):
    """Node features followed by the R-GCN: ``Z = RGCN(features(n_id), edge_index, edge_type)``."""

    def __init__(self, features: nn.Module, rgcn: RGCNEncoder) -> None:
        super().__init__()
        self.features = features
        self.rgcn = rgcn

    def forward(self, graph) -> torch.Tensor:
        x = self.features(graph.n_id)  # (N, d_graph)
        return self.rgcn(x, graph.edge_index, graph.edge_type)  # (N, d_graph)


def base_model_signature(model: nn.Module) -> dict[str, Any]:
    """What a checkpoint remembers of its base model, to refuse loading onto another one.

    The architecture fields of the config, plus a checksum of the first rows of the input
    embedding (rounded through float16, so a bf16 or fp16 copy of the same weights fits).
    """
    config = model.config
    fields = ("model_type", "vocab_size", "hidden_size", "d_model", "n_embd", "num_hidden_layers", "num_layers")
    signature: dict[str, Any] = {k: getattr(config, k) for k in fields if getattr(config, k, None) is not None}
    weight = model.get_input_embeddings().weight.detach()[:256].to("cpu", torch.float16).contiguous()
    signature["embedding_checksum"] = hashlib.sha256(weight.numpy().tobytes()).hexdigest()[:16]
    return signature


def _module_key(name: str) -> str:
    return name.replace(".", "__")  # nn.ModuleDict keys cannot hold dots


class KGPeftModel(nn.Module):
    """A base model whose attention projections carry KG-LoRA adapters fed by a graph encoder.

    Build one with :func:`get_kg_peft_model`. Only the adapters, the knowledge projections
    and the graph encoder are trainable; the base model stays frozen.

    Args:
        model (PreTrainedModel): the base model (decoder, encoder or encoder-decoder).
        config (KGLoraConfig): the adapter configuration.
        kg (KnowledgeGraph): the graph the adapters read.
        tokenizer (PreTrainedTokenizerBase, optional): needed for ``node_features="text"``.
        adapter_name (str): name of the first adapter. (default: ``"default"``)
        kge_embeddings (Tensor | KGEmbeddings | str, optional): for ``node_features="kge"``:
            ``(num_entities, d)`` pretrained vectors, a :class:`~kgpeft.kge.KGEmbeddings`, or the path of
            an embedding file (checked against the KG's fingerprint). (default: the config's ``kge_path``)
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
        self.kg = kg
        self.tokenizer = tokenizer
        self.kge_embeddings = kge_embeddings
        self.context = KnowledgeContext()
        self.kg_configs: dict[str, KGLoraConfig] = {}
        self.target_modules: dict[str, list[str] | str] = {}
        self.base_signature = base_model_signature(model)
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.graph_encoders = nn.ModuleDict()
        self.fusions = nn.ModuleDict()
        self.prefix_projections = nn.ModuleDict()
        self.relation_decoders = nn.ModuleDict()
        self._hooks: dict[str, list[torch.utils.hooks.RemovableHandle]] = {}
        self._adapters_enabled = True
        self.peft_model: PeftModel | None = None
        self._base = model
        self.add_adapter(adapter_name, config)

    # ---------------------------------------------------------------- adapters
    @property
    def base_model(self) -> nn.Module:
        return self.peft_model.get_base_model()

    @property
    def config(self):
        """The base model's config."""
        return self.base_model.config

    @property
    def active_adapter(self) -> str:
        return self.peft_model.active_adapter

    @property
    def active_config(self) -> KGLoraConfig:
        return self.kg_configs[self.active_adapter]

    def add_adapter(self, adapter_name: str, config: KGLoraConfig) -> None:
        """Add a KG-LoRA adapter (its LoRA weights, knowledge projections and graph encoder)."""
        if adapter_name in self.kg_configs:
            raise ValueError(f"An adapter named {adapter_name!r} exists already.")
        base = self._base if self.peft_model is None else self.base_model
        targets = resolve_target_modules(base, config.target_modules)
        lora_config = config.to_lora_config(targets, fan_in_fan_out=targets_conv1d(base, targets))
        if self.peft_model is None:
            self.peft_model = get_peft_model(self._base, lora_config, adapter_name=adapter_name)
            del self._base
        else:
            self.peft_model.add_adapter(adapter_name, lora_config)
        self.kg_configs[adapter_name] = config
        self.target_modules[adapter_name] = targets
        self.graph_encoders[adapter_name] = self._make_graph_encoder(config)
        if config.knowledge_mode == "prefix":
            d_model = self.base_model.get_input_embeddings().embedding_dim
            self.prefix_projections[adapter_name] = nn.Linear(config.graph_channels, config.num_prefix_tokens * d_model)
        if config.relation_loss_weight > 0:  # DistMult relation vectors over node states, starting as a dot product
            self.relation_decoders[adapter_name] = nn.Embedding(2 * self.kg.num_relations, config.graph_channels)
            nn.init.ones_(self.relation_decoders[adapter_name].weight)
        fusions = nn.ModuleDict()
        handles = []
        if config.knowledge_mode != "prefix":
            for name, module in self.base_model.named_modules():
                if not isinstance(module, LoraLayer) or adapter_name not in module.lora_A:
                    continue
                lora_a = module.lora_A[adapter_name]
                if config.knowledge_mode == "token":
                    if self.is_encoder_decoder and _DECODER.search(name):
                        continue  # decoder tokens are not the linked input: nothing to fuse there
                    fusion = TokenFusion(config.graph_channels, config.r)
                else:
                    fusion = CrossFusion(lora_a.in_features, config.graph_channels, config.r)
                fusions[_module_key(name)] = fusion
                handles.append(lora_a.register_forward_hook(knowledge_hook(fusion, self.context)))
        self.fusions[adapter_name] = fusions
        self._hooks[adapter_name] = handles
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
        from kgpeft.kge import KGEmbeddings

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
        for name in self.kg_configs:
            active = name == adapter_name
            for modules in (self.graph_encoders, self.fusions, self.prefix_projections):
                if name in modules:
                    modules[name].requires_grad_(active)

    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Run the base model alone (no LoRA, no knowledge) inside the ``with`` block."""
        self._adapters_enabled = False
        try:
            with self.peft_model.disable_adapter():
                yield
        finally:
            self._adapters_enabled = True

    # ---------------------------------------------------------------- knowledge
    def encode_knowledge(self, knowledge: KnowledgeBatch) -> KnowledgeState:
        """Run the active adapter's graph encoder and lay its states out for the layers."""
        config = self.active_config
        graph = knowledge.graph
        b = knowledge.batch_size
        z = self.graph_encoders[self.active_adapter](graph)  # (N, d_graph)
        if config.knowledge_mode == "token":
            padded = torch.cat([z, z.new_zeros(1, z.size(1))])  # the last row stands for "no node"
            index = knowledge.token_node_index
            return KnowledgeState(b, token_states=padded[index.masked_fill(index < 0, z.size(0))])  # (B, T, d)
        node_states, node_mask = to_dense_batch(z, graph.batch, batch_size=b)  # (B, M, d), (B, M)
        return KnowledgeState(b, node_states=node_states, node_mask=node_mask)

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

    @property
    def _prefix_position(self) -> int:
        # Encoders read their pooled output from the first token ([CLS]): the soft tokens go after it.
        return 0 if self.base_model.can_generate() else 1

    def _prefix_inputs(self, knowledge: KnowledgeBatch, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Insert the pooled-graph soft tokens (``prefix`` mode) into the embedded input."""
        config = self.active_config
        input_ids = kwargs.pop("input_ids", None)
        if input_ids is None:
            raise KnowledgeError("`prefix` mode builds the input embeddings itself; pass `input_ids`.")
        if kwargs.get("position_ids") is not None:
            raise KnowledgeError(
                "`prefix` mode adds soft tokens, so the model must number positions itself; do not pass `position_ids`."
            )
        b, m, at = input_ids.size(0), config.num_prefix_tokens, self._prefix_position
        state = self.encode_knowledge(knowledge)  # not token mode: the nodes laid out per sample
        node_states, node_mask = state.node_states, state.node_mask  # (B, M, d_graph), (B, M)
        count = node_mask.sum(1, keepdim=True)  # (B, 1)
        pooled = node_states.sum(1) / count.clamp(min=1)  # (B, d_graph)
        embeds = self.base_model.get_input_embeddings()(input_ids)  # (B, T, d_model)
        prefix = self.prefix_projections[self.active_adapter](pooled).view(b, m, -1).to(embeds.dtype)  # (B, m, d)

        def insert(t: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
            return torch.cat([t[:, :at], soft, t[:, at:]], dim=1)

        kwargs["inputs_embeds"] = insert(embeds, prefix)
        mask = kwargs.get("attention_mask")
        if mask is None:
            mask = torch.ones_like(input_ids)
        # a sample without nodes hides its soft tokens
        kwargs["attention_mask"] = insert(mask, (count > 0).to(mask.dtype).expand(b, m))
        if kwargs.get("token_type_ids") is not None:
            kwargs["token_type_ids"] = insert(kwargs["token_type_ids"], kwargs["token_type_ids"].new_zeros(b, m))
        labels = kwargs.get("labels")
        if labels is not None and not self.is_encoder_decoder and labels.dim() == 2:
            kwargs["labels"] = insert(labels, labels.new_full((b, m), -100))
        return kwargs

    def _drop_prefix(self, outputs, num_tokens: int):
        """Remove the soft-token positions from token-level outputs, so shapes match the input."""
        at, m = self._prefix_position, self.active_config.num_prefix_tokens
        for name in ("logits", "last_hidden_state"):
            value = getattr(outputs, name, None)
            if value is not None and value.dim() == 3 and value.size(1) == num_tokens + m:
                setattr(outputs, name, torch.cat([value[:, :at], value[:, at + m :]], dim=1))
        return outputs

    # ------------------------------------------------------------------ running
    def forward(
        self,
        *args: Any,
        knowledge: KnowledgeBatch | None = None,
        distillation: SoftTargets | None = None,
        **kwargs: Any,
    ):
        """The base model's forward, with the graph states of ``knowledge`` in the adapters.

        With ``distillation`` (a KGE teacher's soft targets, see
        :mod:`kgpeft.kge.distillation`), ``loss`` also holds the weighted distillation
        loss; in training mode with ``relation_loss_weight > 0``, the weighted relation-aware
        loss (:meth:`relation_loss`). Each term is also returned on its own
        (``distillation_loss``, ``relation_loss``).
        """
        if args:
            kwargs["input_ids"] = args[0]
            if len(args) > 1:
                raise TypeError("Pass model inputs other than `input_ids` by keyword.")
        if not self._adapters_enabled:
            outputs = self.peft_model(**kwargs)
        elif self.active_config.knowledge_mode == "prefix":
            self._check_knowledge(knowledge, kwargs)
            num_tokens = kwargs["input_ids"].size(1)
            outputs = self.peft_model(**self._prefix_inputs(knowledge, kwargs))
            outputs = outputs if self.is_encoder_decoder else self._drop_prefix(outputs, num_tokens)
        else:
            state = self.encode_knowledge(self._check_knowledge(knowledge, kwargs))
            with self.context.activate(state):
                outputs = self.peft_model(**kwargs)
        if distillation is not None:
            outputs["distillation_loss"] = kd = distillation_loss(outputs.logits, distillation)
            if outputs.get("loss") is not None:
                outputs["loss"] = outputs.loss + distillation.weight * kd
        weight = self.active_config.relation_loss_weight
        if self._adapters_enabled and self.training and weight > 0 and knowledge is not None:
            outputs["relation_loss"] = rel = self.relation_loss(knowledge)
            if outputs.get("loss") is not None:
                outputs["loss"] = outputs.loss + weight * rel
        return outputs

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
        if self.active_config.knowledge_mode == "prefix":
            self._check_knowledge(knowledge, kwargs)
            input_ids = kwargs["input_ids"]
            out = self.peft_model.generate(**self._prefix_inputs(knowledge, kwargs))
            return out if self.is_encoder_decoder else torch.cat([input_ids, out], dim=1)
        state = self.encode_knowledge(self._check_knowledge(knowledge, kwargs))
        handle = None
        if state.token_states is not None and not self.is_encoder_decoder:
            if kwargs.get("use_cache", True):
                # with a KV cache, steps after the prefill see only generated tokens, linked to nothing

                def after_prefill(module, args, output):
                    self.context.state = dataclasses.replace(self.context.state, token_states=None)

                handle = self.base_model.register_forward_hook(after_prefill)
            else:
                state.extends = True
        try:
            with self.context.activate(state):
                return self.peft_model.generate(**kwargs)
        finally:
            if handle is not None:
                handle.remove()

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Turn on gradient checkpointing in the base model, keeping the knowledge for recomputation."""
        ckpt = {"use_reentrant": False, "context_fn": self.context.checkpoint_context_fn, **kwargs}
        base = self.base_model
        if hasattr(base, "activation_checkpointing_enable"):
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt)

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
        for handles in self._hooks.values():
            for handle in handles:
                handle.remove()
        self._hooks.clear()
        return self.peft_model.merge_and_unload()

    # -------------------------------------------------------------- checkpoints
    def _knowledge_modules(self) -> dict[str, nn.ModuleDict]:
        """kgpeft's own modules, keyed by the prefix of their weights in ``kgpeft_model.safetensors``."""
        return {
            "graph_encoders": self.graph_encoders,
            "fusions": self.fusions,
            "prefix_projections": self.prefix_projections,
            "relation_decoders": self.relation_decoders,
        }

    def knowledge_state_dict(self) -> dict[str, torch.Tensor]:
        """The kgpeft weights (graph encoders, knowledge projections, prefix projections), no LoRA."""
        return {
            f"{prefix}.{k}": v.detach().cpu().contiguous()
            for prefix, modules in self._knowledge_modules().items()
            for k, v in modules.state_dict().items()
        }

    def save_pretrained(self, save_directory: str | os.PathLike, overwrite: bool = True) -> None:
        """Write the adapters to ``save_directory``, atomically.

        The LoRA part goes in peft's own format (``adapter_config.json``,
        ``adapter_model.safetensors``; other adapters in subfolders), loadable by plain
        :meth:`peft.PeftModel.from_pretrained`. Next to it: ``kgpeft_config.json`` (the
        KG-LoRA configs, the KG fingerprint, the base model's signature and a format
        version) and ``kgpeft_model.safetensors`` (graph encoders and knowledge weights).
        Everything is written to a temporary folder first and renamed into place.
        """
        with atomic_folder(save_directory, overwrite) as tmp:
            self.peft_model.save_pretrained(str(tmp))
            save_file(self.knowledge_state_dict(), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
            meta = {
                "format_version": CONFIG_FORMAT_VERSION,
                "kgpeft_version": _version(),
                "kg_fingerprint": self.kg.fingerprint,
                "kg_size": {"num_entities": self.kg.num_entities, "num_relations": self.kg.num_relations},
                "base_model": self.base_signature,
                "active_adapter": self.active_adapter,
                "adapters": {name: c.to_dict() for name, c in self.kg_configs.items()},
                "target_modules": self.target_modules,
            }
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2), encoding="utf-8")

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

        Refuses, with a message saying what differs, a checkpoint from a newer format, for
        another KG (fingerprint) or another base model (architecture or weights).
        """
        path = Path(pretrained_path)
        meta_file = path / CONFIG_NAME
        if not meta_file.is_file():
            raise KGFileNotFoundError(f"No kgpeft checkpoint at {path} (missing {CONFIG_NAME}).")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{meta_file}: not valid JSON ({e}).") from None
        if meta.get("format_version", 0) > CONFIG_FORMAT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint format version {meta.get('format_version')}; this kgpeft "
                f"({_version()}) reads up to {CONFIG_FORMAT_VERSION}. Upgrade kgpeft."
            )
        if meta["kg_fingerprint"] != kg.fingerprint:
            raise CheckpointError(
                f"{path} was trained on another knowledge graph: fingerprint {meta['kg_fingerprint'][:12]}... "
                f"({meta['kg_size']['num_entities']} entities, {meta['kg_size']['num_relations']} relations), "
                f"but the given KG has {kg.fingerprint[:12]}... ({kg.num_entities} entities, "
                f"{kg.num_relations} relations)."
            )
        signature = base_model_signature(model)
        differs = {k: (v, signature.get(k)) for k, v in meta["base_model"].items() if signature.get(k) != v}
        if differs:
            what = ", ".join(f"{k}: checkpoint {a!r}, model {b!r}" for k, (a, b) in differs.items())
            raise CheckpointError(f"{path} was trained on another base model ({what}).")

        configs = {name: KGLoraConfig.from_dict(c) for name, c in meta["adapters"].items()}
        first, *others = configs
        for name in configs:
            configs[name].target_modules = meta["target_modules"][name]
        self = cls(model, configs[first], kg, tokenizer, adapter_name=first, kge_embeddings=kge_embeddings)
        for name in others:
            self.add_adapter(name, configs[name])
        for name in configs:
            folder = path if name == first else path / name
            peft_state = load_safetensors(folder / PEFT_WEIGHTS_NAME)
            result = set_peft_model_state_dict(self.peft_model, peft_state, adapter_name=name)
            missing = [k for k in result.missing_keys if "lora_" in k and f".{name}." in k]
            if result.unexpected_keys or missing:
                raise CheckpointError(
                    f"{folder / PEFT_WEIGHTS_NAME} does not fit adapter {name!r}: "
                    f"missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}."
                )
        state = load_safetensors(path / WEIGHTS_NAME)
        own = set(self.knowledge_state_dict())
        if set(state) != own:
            raise CheckpointError(
                f"{path / WEIGHTS_NAME} does not fit the config: missing {sorted(own - set(state))[:5]}, "
                f"unexpected {sorted(set(state) - own)[:5]}."
            )
        for prefix, modules in self._knowledge_modules().items():
            modules.load_state_dict({k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")})
        self.set_adapter(meta.get("active_adapter", first))
        if not is_trainable:
            self.eval()
            self.requires_grad_(False)
        return self


def load_safetensors(file: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, naming it in the error if it is missing, truncated or corrupt."""
    if not file.is_file():
        raise KGFileNotFoundError(f"Checkpoint file missing: {file}")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file} is not a readable safetensors file (truncated or corrupt?): {e}") from None


def _version() -> str:
    from kgpeft import __version__

    return __version__


def get_kg_peft_model(
    model: nn.Module,
    config: KGLoraConfig,
    kg: KnowledgeGraph,
    tokenizer=None,
    adapter_name: str = "default",
    kge_embeddings: torch.Tensor | KGEmbeddings | str | os.PathLike | None = None,
) -> KGPeftModel:
    """Wrap ``model`` with a KG-LoRA adapter (the counterpart of :func:`peft.get_peft_model`)."""
    return KGPeftModel(model, config, kg, tokenizer, adapter_name=adapter_name, kge_embeddings=kge_embeddings)
