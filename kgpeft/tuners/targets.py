"""Which modules of a Hugging Face model get KG-LoRA adapters."""

from __future__ import annotations

import re

from peft.tuners.tuners_utils import BaseTunerLayer, check_target_module_exists
from torch import nn
from transformers.pytorch_utils import Conv1D

from kgpeft.errors import KGPeftError


class TargetModulesError(KGPeftError, ValueError):
    """No module of the model matches the adapter's targets."""


_QKVO = ("q_proj", "k_proj", "v_proj", "o_proj")
_OUT_PROJ = ("q_proj", "k_proj", "v_proj", "out_proj")
_BERT = ("query", "key", "value", "attention.output.dense")
_FUSED = ("query_key_value", "self_attention.dense")
_GPT2 = ("attn.c_attn", "attn.c_proj")
_T5 = ("q", "k", "v", "o")

_FAMILIES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (
        (
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen2_moe",
            "qwen3",
            "gemma",
            "gemma2",
            "gemma3_text",
            "olmo",
            "olmo2",
            "granite",
            "stablelm",
            "starcoder2",
            "cohere",
            "smollm3",
        ),
        _QKVO,
    ),
    (("phi",), ("q_proj", "k_proj", "v_proj", "self_attn.dense")),
    (("phi3",), ("qkv_proj", "o_proj")),
    (("gpt2", "gpt_bigcode"), _GPT2),
    (("gpt_neox",), ("attention.query_key_value", "attention.dense")),
    (("gptj",), ("q_proj", "k_proj", "v_proj", "out_proj")),
    (("falcon", "bloom"), _FUSED),
    (("opt", "bart", "mbart", "marian", "pegasus", "whisper", "m2m_100"), _OUT_PROJ),
    (("bert", "roberta", "xlm-roberta", "electra", "camembert", "ernie"), _BERT),
    (("distilbert",), ("q_lin", "k_lin", "v_lin", "out_lin")),
    (("t5", "mt5", "umt5"), _T5),
]
# The attention projections (query, key, value, output) of each architecture family,
# as suffixes of module names. peft's own table targets only q and v; KG-LoRA feeds the
# graph into every projection of attention, so it keeps its own.
ATTENTION_TARGET_MODULES: dict[str, tuple[str, ...]] = {
    model_type: targets for model_types, targets in _FAMILIES for model_type in model_types
}

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
