"""The training losses: the language-modelling loss computed only where there are labels, and distillation.

A causal LM's head maps every position to the whole vocabulary, but a fine-tuning batch
labels only its answers: on the main job ~4 of ~32 positions, while SmolLM2's 49,152-token
head is a fifth of its FLOPs and its float32 log-softmax the largest tensor of the step.
:func:`label_positions_loss` runs the model without ``labels``, gives the output-embedding
layer only the hidden states of labelled positions (a forward pre-hook, so any causal LM
works, wrapped by peft, kgpeft or DDP alike), and takes the mean cross-entropy there: the
same loss and gradients as the model's own, at a fraction of the head's cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from kgpeft.kge.distillation import distillation_loss

_CAUSAL_LM_CLASSES = frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())


def causal_lm_head(model: nn.Module) -> nn.Module | None:
    """The output-embedding layer of ``model`` when it is a decoder-only causal LM, else None.

    ``model`` may be a kgpeft or peft model or wrapped by DDP; anything else (encoder-decoder,
    masked LM, classifier) gets None, and its loss stays the model's own.
    """
    while True:
        inner = getattr(model, "module", None)  # DistributedDataParallel
        if isinstance(inner, nn.Module):
            model = inner
            continue
        break
    seen: set[int] = set()
    while id(model) not in seen:  # kgpeft -> peft -> tuner -> transformers model
        seen.add(id(model))
        if type(model).__name__ in _CAUSAL_LM_CLASSES:
            config = getattr(model, "config", None)
            if config is not None and getattr(config, "is_encoder_decoder", False):
                return None
            head = model.get_output_embeddings()
            return head if isinstance(head, nn.Module) else None
        for name in ("peft_model", "base_model", "model"):
            inner = model.__dict__.get("_modules", {}).get(name) or model.__dict__.get(name)
            if isinstance(inner, nn.Module) and inner is not model:
                model = inner
                break
        else:
            return None
    return None


def label_positions_loss(model: nn.Module, batch: Mapping[str, Any], head: nn.Module | None = None) -> Tensor | None:
    """The mean next-token cross-entropy of ``batch["labels"]``, with the head run only where needed.

    Returns None, having run nothing, when the shortcut does not apply: no ``labels`` of the
    input's shape, ``model`` not a causal LM (``head`` is :func:`causal_lm_head`'s answer when
    given), or a ``distillation`` term that reads every position's logits. The caller then
    takes :func:`batch_loss`. Position ``t``'s logits predict label ``t + 1``, as in
    transformers' ``ForCausalLMLoss``; a kgpeft model's weighted relation-aware loss
    (``auxiliary_loss``) is added as its own ``loss`` would.
    """
    found = label_logits(model, batch, head)
    if found is None:
        return None
    logits, target, _, outputs = found
    loss = F.cross_entropy(logits.float(), target)
    auxiliary = outputs.get("auxiliary_loss") if isinstance(outputs, Mapping) else None
    return loss if auxiliary is None else loss + auxiliary


def label_log_likelihoods(model: nn.Module, batch: Mapping[str, Any], head: nn.Module | None = None) -> Tensor | None:
    """``(B,)``: each row's summed log-probability of its ``labels``, the head run only there.

    None when :func:`label_positions_loss` would be.
    """
    found = label_logits(model, batch, head)
    if found is None:
        return None
    logits, target, keep, _ = found
    picked = logits.float().log_softmax(-1).gather(-1, target[:, None]).squeeze(-1)  # (N,)
    rows = keep.nonzero()[:, 0].to(picked.device)
    return torch.zeros(keep.shape[0], device=picked.device, dtype=picked.dtype).index_add(0, rows, picked)


def label_logits(
    model: nn.Module, batch: Mapping[str, Any], head: nn.Module | None = None
) -> tuple[Tensor, Tensor, Tensor, Any] | None:
    """Run ``model`` on ``batch`` less its ``labels`` with the head only at labelled positions.

    Returns ``(logits (N, V), target (N,), keep (B, T - 1), outputs)``: the logits predicting
    the ``N`` labels, the labels, where they are (position ``t`` predicts label ``t + 1``),
    and the model's outputs; None (nothing run) where the shortcut does not apply.
    """
    labels = batch.get("labels")
    input_ids = batch.get("input_ids")
    if batch.get("distillation") is not None or not isinstance(labels, Tensor) or not isinstance(input_ids, Tensor):
        return None
    if labels.dim() != 2 or labels.shape != input_ids.shape:
        return None
    head = causal_lm_head(model) if head is None else head
    if head is None:
        return None
    target = labels[:, 1:]
    keep = target != -100  # (B, T - 1)
    width = labels.shape[1]

    def gather(_module: nn.Module, args: tuple) -> tuple:
        hidden = args[0]
        if hidden.dim() != 3 or hidden.shape[1] != width:
            raise RuntimeError(
                f"label_positions_loss: the head got hidden states of shape {tuple(hidden.shape)}, "
                f"not (batch, {width}, hidden); this model changes the sequence length before its head."
            )
        return (hidden[:, :-1][keep.to(hidden.device)].unsqueeze(0), *args[1:])  # (1, N, H)

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    handle = head.register_forward_pre_hook(gather)
    try:
        outputs = model(**inputs)
    finally:
        handle.remove()
    logits = outputs.logits[0]  # (N, V)
    return logits, target[keep].to(logits.device), keep, outputs


def batch_loss(model: nn.Module, batch: Mapping[str, Any], head: nn.Module | None = None) -> Tensor:
    """The training loss of ``batch``: the model's loss, plus the weighted distillation loss of its ``distillation``.

    For a causal LM (``head`` is :func:`causal_lm_head`'s answer) without distillation, the
    model's head runs only at labelled positions (:func:`label_positions_loss`).
    """
    distillation = batch.get("distillation")
    if distillation is None:
        loss = label_positions_loss(model, batch, head) if head is not None else None
        return model(**batch).loss if loss is None else loss
    outputs = model(**{k: v for k, v in batch.items() if k != "distillation"})
    return outputs.loss + distillation.weight * distillation_loss(outputs.logits, distillation)
