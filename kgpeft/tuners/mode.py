"""`KnowledgeMode`: how an adapter's knowledge reaches the model, one subclass per ``knowledge_mode``.

As peft's ``LoraVariant`` is to a LoRA layer, a knowledge mode is to the tuner
(:class:`~kgpeft.tuners.model.KGLoraModel`): the tuner injects LoRA, builds the graph encoder
and the relation decoder every mode with a graph shares, and asks the adapter's mode for the
rest. A mode is a class of class methods (no state of its own; the modules it builds are the
tuner's, for saving and for switching adapters):

- :meth:`~KnowledgeMode.sites`: the attention layers it reads, refusing a model it cannot read,
  before anything is injected;
- :meth:`~KnowledgeMode.build`: its per-adapter modules, put in the tuner's ``ModuleDict`` of each
  kind it names in :attr:`~KnowledgeMode.modules`, and the hooks that read its state;
- :meth:`~KnowledgeMode.encode`: a :class:`~kgpeft.tuners.knowledge.KnowledgeBatch` turned into
  its :class:`~kgpeft.tuners.layer.KnowledgeState` for one forward call.

A new mode is one file with one such class, and a line in :data:`kgpeft.tuners.modes.KNOWLEDGE_MODES`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch_geometric.utils import to_dense_batch

from kgpeft.tuners.knowledge import KnowledgeBatch
from kgpeft.tuners.layer import KnowledgeState, fuse_into_lora
from kgpeft.tuners.sites import AttentionSite


def node_states(tuner: Any, adapter_name: str, knowledge: KnowledgeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The adapter's graph encoder over ``knowledge``'s subgraphs: each sample's node states, padded to
    ``(B, M, d_graph)``, and their mask ``(B, M)`` (the modes that read nodes: ``cross``, ``prefix``)."""
    z = tuner.graph_encoders[adapter_name](knowledge.graph)  # (N, d_graph)
    return to_dense_batch(z, knowledge.graph.batch, batch_size=knowledge.batch_size)


class KnowledgeMode:
    """The interface of a knowledge mode (see the module's docstring)."""

    #: The ``knowledge_mode`` value.
    name: ClassVar[str]
    #: The help text of the value, in :class:`~kgpeft.tuners.config.KGLoraConfig`'s field.
    help: ClassVar[str]
    #: The kinds of per-adapter modules it builds: attributes of the tuner holding an
    #: ``nn.ModuleDict`` keyed by adapter name, and the prefixes of their weights in
    #: ``kgpeft_model.safetensors``.
    modules: ClassVar[tuple[str, ...]] = ()
    #: Whether its adapters have a graph encoder (and may have a relation decoder).
    graph_encoder: ClassVar[bool] = True
    #: Whether it reads the selected facts as memory slots (``RetrievalConfig.memory_facts`` of them).
    reads_fact_memory: ClassVar[bool] = False

    @classmethod
    def check_config(cls, config: Any) -> str | None:
        """What in a ``KGLoraConfig`` this mode cannot honour, as the error message; ``None`` when all is well."""
        return None

    @classmethod
    def outdated(cls, missing: set[str]) -> str | None:
        """What a saved adapter lacking the weights ``missing`` (keys of ``kgpeft_model.safetensors``) is, when
        they say it is this mode's, written by an older kgpeft; ``None`` when they do not."""
        return None

    @classmethod
    def sites(cls, model: nn.Module, config: Any) -> list[AttentionSite]:
        """The attention layers the mode reads in ``model`` with the adapter's ``config`` (none for modes that read
        none).

        Raises:
            KGPeftError: attention the mode cannot read.
        """
        return []

    @classmethod
    def build(
        cls, tuner: Any, adapter_name: str, config: Any, sites: list[AttentionSite]
    ) -> list[torch.utils.hooks.RemovableHandle]:
        """Build the adapter's modules into ``tuner`` (its ``ModuleDict`` of each of :attr:`modules`) and hook them.

        ``sites`` is :meth:`sites` of the model with the adapter's LoRA injected. Returns the
        handles of the hooks, to remove them.
        """
        raise NotImplementedError

    @classmethod
    def encode(cls, tuner: Any, adapter_name: str, knowledge: KnowledgeBatch) -> KnowledgeState:
        """The state the adapter's layers read in a forward call with ``knowledge``."""
        raise NotImplementedError


class FusionMode(KnowledgeMode):
    """A mode whose knowledge path is a fusion module on each ``lora_A``, in rank space (``token``, ``cross``)."""

    modules = ("fusions",)

    @classmethod
    def fusion(cls, tuner: Any, config: Any, name: str, lora_a: nn.Module) -> nn.Module | None:
        """The fusion of the ``lora_A`` of module ``name``; ``None``: that projection gets no knowledge."""
        raise NotImplementedError

    @classmethod
    def build(
        cls, tuner: Any, adapter_name: str, config: Any, sites: list[AttentionSite]
    ) -> list[torch.utils.hooks.RemovableHandle]:
        def fusion(name: str, lora_a: nn.Module) -> nn.Module | None:
            return cls.fusion(tuner, config, name, lora_a)

        tuner.fusions[adapter_name], handles = fuse_into_lora(tuner.base_model, adapter_name, tuner.context, fusion)
        return handles
