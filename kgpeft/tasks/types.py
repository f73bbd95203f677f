"""Task types: how a model is trained on a task's examples and how it is scored, one object each.

A job config's ``task_type`` names one of :data:`TASK_TYPES`; the pipeline, the data code and the
command line ask the :class:`TaskType` (which model class, which rows, which evaluation, which
headline metrics) instead of comparing its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kgpeft.errors import KGPeftError

#: The two metrics a results table leads with, by the ``compute_metrics`` task a generation task is scored with.
METRIC_HEADLINES: dict[str, tuple[str, str]] = {
    "qa": ("exact_match", "token_f1"),
    "summarization": ("rougeL", "rouge1"),
    "classification": ("accuracy", "macro_f1"),
}


class UnknownTaskTypeError(KGPeftError, ValueError):
    """A task type name that is not in :data:`TASK_TYPES`."""


@dataclass(frozen=True)
class TaskType:
    """How a model learns a task and how it is scored.

    Args:
        name (str): what a job config's ``task_type`` says, e.g. ``"causal_lm"``.
        help (str): one line for the job config's help text.
        model_class (str): the ``transformers`` auto class the base model loads as.
        peft_task_type (str): the matching ``peft.TaskType`` member.
        evaluation (str): ``"generate"`` (generated text scored by the task's metric), ``"classify"``
            (the class head's argmax) or ``"choose"`` (the option the model finds likeliest).
        classifier (bool): rows carry an integer class ``label`` (no string ``answer``) and the model
            has a new classification head over ``num_labels`` classes. (default: ``False``)
        target_in_input (bool): the target continues the prompt in one token sequence, the prompt's
            tokens masked from the loss (a decoder-only model); else the target is the separate
            ``labels`` of an encoder-decoder or the class of a classifier. (default: ``True``)
        choices (bool): rows carry ``choices`` and the gold choice's index as ``label``. (default: ``False``)
        head_modules (tuple[str, ...]): the new head's module names (peft's), trained beside the
            adapter unless ``adapter.modules_to_save`` says otherwise. (default: none)
        headline (tuple[str, str], optional): the results table's two metrics; none: by the task's
            metric (:data:`METRIC_HEADLINES`). (default: ``None``)
    """

    name: str
    help: str
    model_class: str
    peft_task_type: str
    evaluation: Literal["generate", "classify", "choose"]
    classifier: bool = False
    target_in_input: bool = True
    choices: bool = False
    head_modules: tuple[str, ...] = ()
    headline: tuple[str, str] | None = None

    @property
    def allows_teacher(self) -> bool:
        """Whether its rows can carry a KGE teacher's soft targets over answer tokens (not a class label)."""
        return not self.classifier

    @property
    def label_leading_space(self) -> bool:
        """Whether an answer's first token is read after a space: the answer continues the prompt."""
        return self.target_in_input

    @property
    def truncation_side(self) -> Literal["left", "right"]:
        """The side a text too long for ``max_length`` loses (as ``tokenizer.truncation_side``): a prompt
        the answer continues keeps its end, next to the answer; other texts keep their start."""
        return "left" if self.target_in_input else "right"

    @property
    def explainable(self) -> bool:
        """Whether ``kgpeft explain`` can explain it: a generated answer scored as the prompt's continuation."""
        return self.evaluation == "generate" and self.target_in_input

    def headline_metrics(self, metric: str) -> tuple[str, str]:
        """The two metrics a results table shows, for a task scored with ``metric`` (e.g. ``"qa"``)."""
        return self.headline or METRIC_HEADLINES.get(metric, METRIC_HEADLINES["qa"])


#: Every task type by name, in the order they are listed to users.
TASK_TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType(
            "causal_lm",
            "generation, scored by exact match and F1, or ROUGE for glosses",
            model_class="AutoModelForCausalLM",
            peft_task_type="CAUSAL_LM",
            evaluation="generate",
        ),
        TaskType(
            "multiple_choice",
            "trained as causal_lm on the gold answer, scored by the options' log-likelihood",
            model_class="AutoModelForCausalLM",
            peft_task_type="CAUSAL_LM",
            evaluation="choose",
            choices=True,
            headline=("accuracy", "accuracy"),
        ),
        TaskType(
            "classification",
            "accuracy, macro and micro F1: entity typing for IE",
            model_class="AutoModelForSequenceClassification",
            peft_task_type="SEQ_CLS",
            evaluation="classify",
            classifier=True,
            target_in_input=False,
            head_modules=("classifier", "score"),
            headline=("accuracy", "macro_f1"),
        ),
        TaskType(
            "seq2seq",
            "an encoder-decoder generating the answer",
            model_class="AutoModelForSeq2SeqLM",
            peft_task_type="SEQ_2_SEQ_LM",
            evaluation="generate",
            target_in_input=False,
        ),
    )
}


def get_task_type(name: str) -> TaskType:
    """The task type called ``name``.

    Raises:
        UnknownTaskTypeError: naming the known task types.

    Example:
        >>> get_task_type("classification").model_class
        'AutoModelForSequenceClassification'
    """
    try:
        return TASK_TYPES[name]
    except (KeyError, TypeError):
        raise UnknownTaskTypeError(f"`task_type` should be one of {tuple(TASK_TYPES)}, got {name!r}.") from None
