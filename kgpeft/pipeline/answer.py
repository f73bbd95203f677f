"""An adapter folder that answers on its own, as the job that trained it did.

A job saves with each KG-LoRA adapter how it built a question's knowledge and answered
(:class:`~kgpeft.checkpoint.AnswerSettings`: the linking, retrieval and fact-format settings, the
token budgets, the seed, the generation length) and the staged fact scorer that ranked its facts.
:func:`predict` rebuilds a question's knowledge from those alone (linker, retriever, the scorer's
ranking, :class:`~kgpeft.data.KnowledgeDataset`) and answers as the job's evaluation does, so that::

    model = KGPeftModel.from_pretrained(base, "run/kg-lora/adapter", kg, tokenizer=tokenizer)
    dataset, answers = predict(model, ["What kind of thing is a noddle?"], tokenizer)

gives the job's test predictions bit for bit, without its config or output folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kgpeft import selection
from kgpeft.checkpoint import AnswerSettings, CheckpointError
from kgpeft.data import KnowledgeDataset
from kgpeft.inference import first_line, generate_texts, predict_classes
from kgpeft.model import KGPeftModel
from kgpeft.tasks import TASKS, TaskExample
from kgpeft.tasks.types import TASK_TYPES

if TYPE_CHECKING:  # annotations only: the job and its variants import the kinds, which import this module
    from kgpeft.pipeline.config import Variant
    from kgpeft.pipeline.job import Job


def answer_settings(job: Job, variant: Variant) -> AnswerSettings:
    """How :meth:`Job.dataset <kgpeft.pipeline.job.Job.dataset>` builds ``variant``'s knowledge and how the
    job's evaluation answers, to be saved with the variant's adapter."""
    config = job.config
    memory = variant.kind.memory_facts(config, variant)
    staged = job.scorer is not None and (
        variant.facts == "selected" or (memory and config.scorer_training(variant) == "staged")
    )
    retrieval = dataclasses.replace(
        config.retrieval,
        num_facts=config.variant_facts(variant),
        memory_facts=memory,
        max_fact_tokens=job.budgets.max_fact_tokens,
    )
    return AnswerSettings(
        task=config.task,
        task_type=config.task_type,
        retrieval=retrieval,
        max_length=job.budgets.max_length,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.training.per_device_eval_batch_size,
        seed=config.seed,
        fact_ranking="staged" if staged else "retrieval",
        num_labels=config.num_labels,
    )


def as_examples(task: str, texts: Sequence[str], **fields: Any) -> list[TaskExample]:
    """A user's texts as examples of ``task``: read through the task's templates where it has them, so that
    a question is linked at its subject only, as the training examples were."""
    kind = TASKS.get(task)
    return [kind.example(t, **fields) if kind is not None else TaskExample(t, **fields) for t in texts]


def settings_of(model: KGPeftModel) -> AnswerSettings:
    """The model's :attr:`~kgpeft.KGPeftModel.answering`, or an error saying where to get them."""
    if not isinstance(model, KGPeftModel) or model.answering is None:
        raise CheckpointError(
            "The adapter holds no answering settings (`answering` in kgpeft_config.json): it was saved outside a "
            "job or by an older kgpeft. Pass the job's config (`kgpeft predict --config`), or set `model.answering`."
        )
    return model.answering


def answer_dataset(
    model: KGPeftModel, questions: Sequence[str | TaskExample], tokenizer, *, with_target: bool = False
) -> KnowledgeDataset:
    """``questions`` (texts, or examples) linked, retrieved, their facts ranked and chosen as the job that
    trained ``model`` did for its test split (:meth:`Job.dataset <kgpeft.pipeline.job.Job.dataset>`)."""
    settings = settings_of(model)
    texts = [q for q in questions if isinstance(q, str)]
    label = {"label": 0} if TASK_TYPES[settings.task_type].classifier else {}
    made = iter(as_examples(settings.task, texts, **label))
    examples = [next(made) if isinstance(q, str) else q for q in questions]
    data = KnowledgeDataset(
        examples,
        tokenizer,
        model.kg,
        task=settings.task_type,
        retrieval=dataclasses.replace(settings.retrieval, num_facts=0, memory_facts=0),
        max_length=settings.max_length,
        with_target=with_target,
        seed=settings.seed,
    )
    return with_chosen_facts(data, settings, tokenizer, model.staged_scorer, model.fact_scorer is not None)


def with_chosen_facts(
    data: KnowledgeDataset, settings: AnswerSettings, tokenizer, staged_scorer: Any, candidates: bool
) -> KnowledgeDataset:
    """``data`` (linked and retrieved, no facts chosen yet) with its facts chosen as ``settings`` say: ranked by
    ``staged_scorer`` (``fact_ranking: staged``), the first ``num_facts`` in the prompt and ``memory_facts`` in
    memory; with ``candidates``, every fact, for the model's own (joint) scorer to pick per batch. The one
    place both a job (:meth:`Job.dataset <kgpeft.pipeline.job.Job.dataset>`) and a saved adapter choose facts."""
    if settings.fact_ranking == "staged":
        data = data.with_fact_ranking(selection.select_facts(staged_scorer, data, tokenizer, limit=None))
    if settings.retrieval != data.retrieval:  # else the rows stay those already tokenised
        data = data.with_retrieval(settings.retrieval)
    return data.with_fact_candidates() if candidates else data


def predict(model: KGPeftModel, questions: Sequence[str | TaskExample], tokenizer) -> tuple[KnowledgeDataset, list]:
    """The answers of ``model`` to ``questions`` as its job's evaluation gives them: the first line of the
    greedy continuation (generation tasks), or the class index (classification); with the dataset read."""
    settings = settings_of(model)
    evaluation = TASK_TYPES[settings.task_type].evaluation
    if evaluation == "classify":
        data = answer_dataset(model, questions, tokenizer, with_target=True)
        return data, predict_classes(model, data, batch_size=settings.batch_size).tolist()
    if evaluation != "generate":
        raise CheckpointError(
            f"predict answers generation and classification tasks; {settings.task_type!r} chooses among options: "
            "score them with `kgpeft.inference.target_log_likelihoods`."
        )
    data = answer_dataset(model, questions, tokenizer)
    outputs = generate_texts(
        model, data, max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size, first_line_only=True
    )
    return data, [first_line(p) for p in outputs]
