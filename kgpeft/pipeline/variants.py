"""Variant kinds: what a variant's ``adapter`` names (``none``, ``lora``, ``kg-lora``), one object each.

Like peft's ``LoraVariant`` strategy objects, a :class:`VariantKind` says how a variant's model is
built and loaded back, whether it reads the KG, and which folders its training writes; the
pipeline and the command line ask it instead of comparing the name. The job config keeps the
name (``adapter: kg-lora``), so configs and saved runs read as before.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from kgpeft.model import KGPeftModel, get_kg_peft_model
from kgpeft.pipeline.answer import answer_settings
from kgpeft.training.checkpoints import ADAPTER_FOLDERS
from kgpeft.tuners.modes import KNOWLEDGE_MODES
from kgpeft.tuners.targets import resolve_target_modules
from kgpeft.utils import quiet_checkpointing_deprecation, writing

if TYPE_CHECKING:  # annotations only: the job holds its config, whose variants name these kinds
    from kgpeft.pipeline.config import JobConfig, Variant
    from kgpeft.pipeline.job import Job


class VariantKind:
    """How a kind of variant's model is built, trained, saved and loaded, and whether it reads the KG."""

    #: What a variant's ``adapter`` says.
    name: ClassVar[str]
    #: One line for the config's help text.
    help: ClassVar[str]
    #: Whether the model itself reads the KG (a KG-LoRA adapter), beside any facts written into its prompt.
    reads_knowledge: ClassVar[bool] = False
    #: Whether it is trained (the untrained base model is not).
    trains: ClassVar[bool] = True
    #: The folders its training writes in ``output_dir/<variant name>``.
    folders: ClassVar[tuple[str, ...]] = ADAPTER_FOLDERS

    def build(self, job: Job, variant: Variant) -> nn.Module:
        """A fresh model for ``variant``, on a copy of the job's base model."""
        raise NotImplementedError

    def load(self, job: Job, adapter_dir: Path) -> nn.Module:
        """The job's base model with the adapter saved in ``adapter_dir``."""
        raise NotImplementedError

    def save(self, model: nn.Module, folder: Path, card: dict[str, Any]) -> None:
        """Save what the trainer did not, in ``folder`` (``output_dir/<variant name>``); ``card``: the results."""

    def reads_fact_memory(self, config: JobConfig, variant: Variant) -> bool:
        """Whether ``variant``'s model reads the selected facts as memory slots."""
        return False

    def memory_facts(self, config: JobConfig, variant: Variant) -> int:
        """How many facts ``variant``'s model reads as memory slots (0: none)."""
        return config.retrieval.memory_facts if self.reads_fact_memory(config, variant) else 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class BaseModelKind(VariantKind):
    name = "none"
    help = "the base model, untrained"
    trains = False
    folders = ()

    def build(self, job: Job, variant: Variant) -> nn.Module:
        return job.base

    def load(self, job: Job, adapter_dir: Path) -> nn.Module:
        return job.base


class LoraKind(VariantKind):
    name = "lora"
    help = "plain peft LoRA with a trainable-parameter budget matched to the job's KG-LoRA adapter"

    def build(self, job: Job, variant: Variant) -> nn.Module:
        config = job.config
        adapter = config.variant_adapter(variant)
        targets = resolve_target_modules(job.base, adapter.target_modules)
        r = lora_rank_for_budget(job.base, targets, job.kg_lora_budget())
        # the same initial adapter whichever variants ran before (and the budget's reference model drew)
        torch.manual_seed(config.seed)
        lora = LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, modules_to_save=adapter.modules_to_save)
        with quiet_checkpointing_deprecation():
            return get_peft_model(copy.deepcopy(job.base), lora)

    def load(self, job: Job, adapter_dir: Path) -> nn.Module:
        return PeftModel.from_pretrained(copy.deepcopy(job.base), str(adapter_dir)).eval()


class KGLoraKind(VariantKind):
    name = "kg-lora"
    help = "the job's `adapter`"
    reads_knowledge = True
    folders = (*ADAPTER_FOLDERS, "adapter")

    def build(self, job: Job, variant: Variant) -> nn.Module:
        torch.manual_seed(job.config.seed)  # the same initial adapter whichever variants ran before
        adapter = job.config.variant_adapter(variant)
        model = get_kg_peft_model(copy.deepcopy(job.base), adapter, job.kg, job.tokenizer)
        settings = answer_settings(job, variant)  # saved with every adapter its training writes
        model.set_answering(settings, job.scorer if settings.fact_ranking == "staged" else None)
        return model

    def load(self, job: Job, adapter_dir: Path) -> nn.Module:
        return KGPeftModel.from_pretrained(copy.deepcopy(job.base), adapter_dir, job.kg, tokenizer=job.tokenizer)

    def reads_fact_memory(self, config: JobConfig, variant: Variant) -> bool:
        """Whether the variant's knowledge mode reads facts as memory."""
        return KNOWLEDGE_MODES[config.variant_adapter(variant).knowledge_mode].reads_fact_memory

    def save(self, model: nn.Module, folder: Path, card: dict[str, Any]) -> None:
        """The adapter with its card, in ``folder/adapter``."""
        model.card.update(card)
        adapter = folder / "adapter"
        with writing(adapter):  # save_pretrained leaves nothing half-written
            model.save_pretrained(adapter)


#: Every variant kind by the name a variant's ``adapter`` gives.
VARIANT_KINDS: dict[str, VariantKind] = {kind.name: kind for kind in (BaseModelKind(), LoraKind(), KGLoraKind())}


def lora_rank_for_budget(base: nn.Module, targets: list[str] | str, trainable: int) -> int:
    """The plain-LoRA rank whose trainable parameters come closest to ``trainable``.

    ``targets`` are module-name suffixes, or a regex over full module names, as peft takes them.
    """

    def targeted(name: str) -> bool:
        if isinstance(targets, str):
            return re.fullmatch(targets, name) is not None
        return name.rsplit(".", 1)[-1] in targets

    per_rank = sum(
        m.in_features + m.out_features
        for name, m in base.named_modules()
        if isinstance(m, nn.Linear) and targeted(name)
    )
    return max(1, round(trainable / per_rank)) if per_rank else 1
