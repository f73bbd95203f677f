"""Running a model over a :class:`~kgpeft.data.KnowledgeDataset`: generation, scoring, classes.

Each function accepts a :class:`~kgpeft.model.KGPeftModel` (fed the retrieved
knowledge) or any other Hugging Face / peft model (fed the tokens only), and an optional
``accelerate.Accelerator``: with one, the dataset is sharded over the processes and the
results are gathered with ``gather_for_metrics``, so every process returns all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import StoppingCriteria, StoppingCriteriaList

from kgpeft.data import KnowledgeCollator, KnowledgeDataset
from kgpeft.model import KGPeftModel
from kgpeft.padding import skip_padding


def _uses_knowledge(model) -> bool:
    while hasattr(model, "module"):  # DistributedDataParallel and friends
        model = model.module
    return isinstance(model, KGPeftModel)


def _batches(model, dataset: KnowledgeDataset, batch_size: int, padding_side: str, accelerator) -> Iterator[dict]:
    pad = dataset.tokenizer.pad_token_id
    collator = KnowledgeCollator(pad if pad is not None else 0, padding_side, with_knowledge=_uses_knowledge(model))
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    if accelerator is not None:
        loader = accelerator.prepare(loader)
    device = next(model.parameters()).device
    with skip_padding(model):  # the same results, without computing the padding
        for batch in loader:
            yield {k: v.to(device) for k, v in batch.items()}


def _gather(accelerator, tensor: torch.Tensor) -> torch.Tensor:
    return tensor if accelerator is None else accelerator.gather_for_metrics(tensor)


class FirstLineDone(StoppingCriteria):
    """Marks a row finished once its continuation holds a whole first line: a newline after text.

    :func:`first_line` reads nothing past that newline, and greedy decoding of a row does not
    depend on the other rows, so the first lines come out the same as without it, in fewer
    steps. A newline before any text does not count (:func:`first_line` reads the stripped text).

    Args:
        tokenizer: decodes the continuations.
        prompt_length (int): tokens of the (left-padded) prompt before the continuation in
            ``input_ids``; 0 for an encoder-decoder, whose decoder ids hold only the continuation.
    """

    def __init__(self, tokenizer, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor | None, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor(["\n" in t.lstrip() for t in texts], dtype=torch.bool, device=input_ids.device)


@torch.no_grad()
def generate_texts(
    model,
    dataset: KnowledgeDataset,
    *,
    max_new_tokens: int = 16,
    batch_size: int = 16,
    accelerator=None,
    first_line_only: bool = False,
    **generate_kwargs: Any,
) -> list[str]:
    """Greedy continuations of the dataset's prompts (build it with ``with_target=False``).

    With ``first_line_only``, a row stops generating once its first line is complete
    (:class:`FirstLineDone`): its continuation then ends after that line, which
    :func:`first_line` reads exactly as it reads the longer one.
    """
    tokenizer = dataset.tokenizer
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = []
    for batch in _batches(model, dataset, batch_size, "left", accelerator):
        prompt_len = batch["input_ids"].size(1)
        kwargs = dict(generate_kwargs)
        if first_line_only:
            start = 0 if model.config.is_encoder_decoder else prompt_len
            stop = FirstLineDone(tokenizer, start)
            kwargs["stopping_criteria"] = StoppingCriteriaList([*kwargs.get("stopping_criteria", []), stop])
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, **kwargs)
        new = out[:, prompt_len:] if not model.config.is_encoder_decoder else out
        new = F.pad(new, (0, max_new_tokens + 1 - new.size(1)), value=pad)  # same width to gather
        rows.append(_gather(accelerator, new.contiguous()))
    tokens = torch.cat(rows) if rows else torch.zeros(0, 0, dtype=torch.long)
    return [t.strip() for t in tokenizer.batch_decode(tokens, skip_special_tokens=True)]


def first_line(text: str) -> str:
    """The answer in a generated continuation: its first line (models go on after answering)."""
    return text.split("\n")[0].strip()


@torch.no_grad()
def target_log_likelihoods(model, dataset: KnowledgeDataset, *, batch_size: int = 16, accelerator=None) -> torch.Tensor:
    """The summed log-probability of each row's target tokens given its prompt. Shape ``(N,)``.

    Used to score the options of a multiple-choice question (one row per option).
    """
    model.eval()
    scores = []
    for batch in _batches(model, dataset, batch_size, "right", accelerator):
        labels = batch.pop("labels")
        logits = model(**batch).logits[:, :-1].float()  # (B, T - 1, V): position t predicts token t + 1
        targets = labels[:, 1:]
        mask = targets != -100
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
        scores.append(_gather(accelerator, (logp * mask).sum(1)))
    return torch.cat(scores) if scores else torch.zeros(0)


@torch.no_grad()
def predict_classes(model, dataset: KnowledgeDataset, *, batch_size: int = 32, accelerator=None) -> torch.Tensor:
    """The argmax class of each row of a ``classification`` dataset. Shape ``(N,)``."""
    model.eval()
    preds = []
    for batch in _batches(model, dataset, batch_size, "right", accelerator):
        batch.pop("labels", None)
        preds.append(_gather(accelerator, model(**batch).logits.argmax(-1)))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
