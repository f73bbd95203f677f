"""Which modules of a Hugging Face model get KG-LoRA adapters."""

from __future__ import annotations

import re

from peft.tuners.tuners_utils import BaseTunerLayer, check_target_module_exists
from torch import nn
from transformers.pytorch_utils import Conv1D

from kgpeft.errors import KGPeftError
from kgpeft.tuners.sites import ATTENTION_TARGET_MODULES


class TargetModulesError(KGPeftError, ValueError):
    """No module of the model matches the adapter's targets."""


_LINEAR_TYPES = (nn.Linear, Conv1D)


def _linear_names(model: nn.Module) -> list[str]:
    """Names of the linear layers, counting a layer peft has wrapped already as one."""
    wrapped = [name for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]
    inside = tuple(f"{name}." for name in wrapped)
    plain = [n for n, m in model.named_modules() if isinstance(m, _LINEAR_TYPES) and not n.startswith(inside)]
    return wrapped + plain


def discover_attention_targets(model: nn.Module) -> list[str]:
    """Suffixes naming the linear layers directly inside the model's attention modules.

    Used for architectures missing from :data:`ATTENTION_TARGET_MODULES`: any module whose
    class name contains ``Attention`` counts as attention, and each linear child ``c`` of
    such a module named ``a`` gives the target ``a.c`` (e.g. ``self_attn.q_proj``).
    """
    targets: dict[str, None] = {}
    for name, module in model.named_modules():
        if "attention" not in type(module).__name__.lower():
            continue
        parent = name.rsplit(".", 1)[-1]
        for child_name, child in module.named_children():
            if isinstance(child, _LINEAR_TYPES):
                targets[f"{parent}.{child_name}" if parent else child_name] = None
    return list(targets)


def _matches(target_modules: list[str] | str, name: str) -> bool:
    class _Probe:  # peft's matcher reads only these attributes of a config
        layers_to_transform = None
        layers_pattern = None

    _Probe.target_modules = target_modules
    return bool(check_target_module_exists(_Probe, name))


def targets_conv1d(model: nn.Module, target_modules: list[str] | str) -> bool:
    """Whether the targets include GPT-2-style ``Conv1D`` layers (peft's ``fan_in_fan_out``)."""
    return any(isinstance(m, Conv1D) and _matches(target_modules, n) for n, m in model.named_modules())


def resolve_target_modules(model: nn.Module, target_modules: list[str] | str | None) -> list[str] | str:
    """The adapter targets for ``model``: the explicit ones, else the architecture's attention.

    Raises :class:`TargetModulesError`, listing the linear modules the model has, when the
    targets match nothing.
    """
    if target_modules is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        target_modules = list(ATTENTION_TARGET_MODULES.get(model_type, ())) or discover_attention_targets(model)
    names = _linear_names(model)
    if not any(_matches(target_modules, name) for name in names):
        suffixes = sorted({re.sub(r"\.\d+\.", ".<n>.", n) for n in names})
        shown = ", ".join(suffixes[:40]) + (" ..." if len(suffixes) > 40 else "")
        raise TargetModulesError(
            f"`target_modules`={target_modules!r} matches no linear module of {type(model).__name__}. "
            f"Its linear modules include: {shown or 'none'}."
        )
    return target_modules
