"""The data path: text examples to token tensors plus one PyG graph batch.

:class:`KnowledgeDataset` does the expensive work once, when it is built: it links each
example's text (or takes its gold links), retrieves the subgraph around the linked
entities, optionally writes the top retrieved facts into the prompt as text, tokenises and
aligns tokens to entities. Later epochs, and DataLoader workers, only read the cached
features. :class:`KnowledgeCollator` pads a list of features and batches their subgraphs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.utils.data import Dataset
from torch_geometric.data import Batch, Data

from kgpeft.configuration import check_field_types
from kgpeft.errors import KGPeftError
from kgpeft.graph import KnowledgeGraph
from kgpeft.kge.distillation import KGETeacher, collate_soft_targets, first_tokens
from kgpeft.linking import EntityLinker, Mention, align
from kgpeft.retrieval import RetrievalConfig, SubgraphRetriever, batch_node_index, format_fact, rank_facts, render_facts
from kgpeft.tasks.base import TaskExample
from kgpeft.tasks.types import TASK_TYPES, TaskType
from kgpeft.tuners import KnowledgeBatch
from kgpeft.utils import short_repr, surrogate_at

#: Characters of a text kept per token of ``max_length``: a longer text is cut to ``max_length *
#: CHARS_PER_TOKEN`` characters before it is linked and tokenised (its end for a ``causal_lm`` prompt,
#: which loses its start to truncation, else its start), so a row's work is bounded by ``max_length``,
#: not by its text. Truncation would drop the rest anyway, unless the kept tokens average more
#: than this many characters (English text averages about 4 per token). A ``seq2seq`` answer is cut
#: the same way (its start), and a ``causal_lm`` answer longer than that is refused.
CHARS_PER_TOKEN = 32

KnowledgeCondition = Literal["correct", "shuffled", "none"]
#: The knowledge an evaluation can give each example: its own, another example's, or none.
KNOWLEDGE_CONDITIONS = ("correct", "shuffled", "none")


class DataError(KGPeftError, ValueError):
    """A dataset row lacks what its task needs, or holds a value of the wrong kind."""


def as_example(row: TaskExample | Mapping[str, Any], index: int) -> TaskExample:
    """A :class:`~kgpeft.tasks.TaskExample` from itself or a dict (a JSON row), naming bad rows."""
    if isinstance(row, TaskExample):
        return row
    if not isinstance(row, Mapping):
        raise DataError(f"Row {index}: expected a TaskExample or a mapping, got {type(row).__name__}.")
    known = set(TaskExample.__dataclass_fields__)
    unknown = sorted(set(row) - known)
    if unknown:
        raise DataError(f"Row {index}: unknown keys {short_repr(unknown)}; known keys: {sorted(known)}.")
    if not isinstance(row.get("text"), str) or not row["text"].strip():
        raise DataError(f"Row {index}: `text` should be a non-empty string, got {short_repr(row.get('text'))}.")
    example = TaskExample(**{k: tuple(v) if isinstance(v, list) else v for k, v in row.items()})
    _check_fields(example, index)
    return example


def _check_fields(example: TaskExample, index: int) -> None:
    """Each field of the annotated type (``target_start: "0"`` is refused), and a gold link inside ``text``."""
    if not isinstance(example.text, str) or not example.text.strip():
        raise DataError(f"Row {index}: `text` should be a non-empty string, got {short_repr(example.text)}.")
    try:
        check_field_types(example, DataError)
    except DataError as e:
        raise DataError(f"Row {index}: {e}") from None
    for f in dataclasses.fields(example):
        value = getattr(example, f.name)
        for text in value if isinstance(value, tuple) else (value,):
            if isinstance(text, str) and (at := surrogate_at(text)) is not None:
                raise DataError(
                    f"Row {index}: `{f.name}` holds {text[at]!r} at character {at + 1}, half of a UTF-16 surrogate "
                    'pair, which is not text; write the character itself or its whole pair ("\\ud83d\\ude00").'
                )
    if (example.target_start is None) != (example.target_end is None):
        raise DataError(f"Row {index}: a subject span needs `target_start` and `target_end` together.")
    if example.target_start is not None and not 0 <= example.target_start < example.target_end <= len(example.text):
        raise DataError(
            f"Row {index}: the span [`target_start`, `target_end`) = [{example.target_start}, "
            f"{example.target_end}) should be a non-empty span of `text` ({len(example.text)} characters)."
        )


def _check(example: TaskExample, index: int, task: TaskType, with_target: bool) -> None:
    _check_fields(example, index)
    if task == "classification" and (not isinstance(example.label, int) or example.label < 0):
        raise DataError(
            f"Row {index}: a classification row needs an integer `label` >= 0, got {short_repr(example.label)}."
        )
    if task != "classification" and with_target and not isinstance(example.answer, str):
        raise DataError(f"Row {index}: a {task} row needs a string `answer`, got {short_repr(example.answer)}.")


class KnowledgeDataset(Dataset):
    """Examples tokenised, linked, aligned and given their retrieved subgraph, computed once.

    Args:
        examples: :class:`~kgpeft.tasks.TaskExample` objects or dicts with the same keys.
        tokenizer: a fast tokenizer (offsets are needed to align tokens to entities).
        kg: the knowledge graph.
        task: ``"causal_lm"`` (loss on the target tokens only; the prompt is masked),
            ``"classification"`` or ``"seq2seq"``.
        retrieval: the linking and retrieval settings: link candidates, fan-out, node cap, and
            how many retrieved facts are written into the prompt as text, before the input, as
            G-Retriever does (``num_facts``, ``fact_format``). (default: ``RetrievalConfig()``)
        linker: links examples without a gold link, instead of ``retrieval.build_linker(kg)``.
            (default: none)
        retriever: retrieves subgraphs, instead of ``retrieval.build_retriever(kg, seed)``. (default: none)
        max_length: most tokens per example; a long prompt loses its start. Only the last (``causal_lm``)
            or first ``max_length * CHARS_PER_TOKEN`` characters of a text are linked and tokenised. (default: 128)
        with_target: append the target tokens (training, scoring); ``False`` gives
            prompts only, for generation. (default: ``True``)
        seed: the retrieval sampling seed. (default: 0)
        teacher: a :class:`~kgpeft.kge.distillation.KGETeacher`; with it, each training
            example also carries the teacher's soft targets over candidate answers, and the
            collator adds them to the batch as ``distillation`` (``causal_lm`` and ``seq2seq``
            with targets). (default: none)
    """

    def __init__(
        self,
        examples: Iterable[TaskExample | Mapping[str, Any]],
        tokenizer,
        kg: KnowledgeGraph,
        *,
        task: TaskType = "causal_lm",
        retrieval: RetrievalConfig | None = None,
        linker: EntityLinker | None = None,
        retriever: SubgraphRetriever | None = None,
        max_length: int = 128,
        with_target: bool = True,
        seed: int = 0,
        teacher: KGETeacher | None = None,
    ) -> None:
        if task not in TASK_TYPES:
            raise ValueError(f"`task` should be one of {TASK_TYPES}, got {task!r}.")
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("`tokenizer` should be a fast tokenizer (offset mappings align tokens to entities).")
        self.examples = [as_example(e, i) for i, e in enumerate(examples)]
        for i, example in enumerate(self.examples):
            _check(example, i, task, with_target)
        self.tokenizer, self.kg, self.task = tokenizer, kg, task
        self.max_length, self.with_target = max_length, with_target
        self.retrieval = retrieval if retrieval is not None else RetrievalConfig()
        self.linker = linker if linker is not None else self.retrieval.build_linker(kg)
        self.retriever = retriever if retriever is not None else self.retrieval.build_retriever(kg, seed)
        self.mentions = [self._mentions(e) for e in self.examples]
        self.graphs = self._retrieve(seed)
        self.fact_ranking: list[list[int]] | None = None
        self.teacher = teacher
        if teacher is not None and not (with_target and task in ("causal_lm", "seq2seq")):
            raise ValueError("A `teacher` needs `with_target=True` and task 'causal_lm' or 'seq2seq'.")
        self.soft_targets = self._soft_targets() if teacher is not None else None
        self._features: list[dict[str, Any]] | None = [self._featurize(i) for i in range(len(self.examples))]

    def _soft_targets(self) -> list[tuple[list[int], list[float]]]:
        """Per example, the first token of each teacher candidate's label, and the teacher's scores."""
        targets = self.teacher.soft_targets(self.examples)
        labels = sorted({e for ids, _ in targets for e in ids})
        tokens = first_tokens(
            self.tokenizer, [self.kg.labels[e] for e in labels], leading_space=self.task == "causal_lm"
        )
        token_of = dict(zip(labels, tokens, strict=True))
        return [([token_of[e] for e in ids], scores) for ids, scores in targets]

    def _window(self, text: str) -> tuple[int, int]:
        """The characters ``[lo, hi)`` of ``text`` that are linked and tokenised (see :data:`CHARS_PER_TOKEN`)."""
        room = self.max_length * CHARS_PER_TOKEN
        if len(text) <= room:
            return 0, len(text)
        return (len(text) - room, len(text)) if self.task == "causal_lm" else (0, room)

    def _link(self, text: str, lo: int, hi: int) -> list[Mention]:
        """What the linker finds in ``text[lo:hi]``, at their places in ``text``."""
        found = self.linker.link(text[lo:hi])
        return [m._replace(start=m.start + lo, end=m.end + lo) for m in found] if lo else found

    def _mentions(self, example: TaskExample) -> list[Mention]:
        """The gold link; or, for a subject span with no ``entity``, what the linker finds inside it;
        or, with neither, what the linker finds in the text (its window, :meth:`_window`)."""
        lo, hi = self._window(example.text)
        if example.target_start is None:
            return self._link(example.text, lo, hi)
        start, end = example.target_start, example.target_end
        if not 0 <= start < end <= len(example.text):
            raise DataError(
                f"The gold span ({start}, {end}) lies outside the text {short_repr(example.text)} "
                f"({len(example.text)} characters)."
            )
        if example.entity is None:
            return self._link(example.text, max(start, lo), min(end, hi)) if max(start, lo) < min(end, hi) else []
        try:
            entity = self.kg.entity_id(example.entity)
        except KeyError:
            raise DataError(
                f"The gold entity {short_repr(example.entity)} of {short_repr(example.text)} is not in the KG."
            ) from None
        return [Mention(start, end, example.text[start:end], (entity,), (1.0,))]

    def _retrieve(self, seed: int, chunk: int = 256) -> list[Data]:
        graphs: list[Data] = []
        for lo in range(0, len(self.examples), chunk):
            seed_sets = [list(dict.fromkeys(m.entity for m in ms)) for ms in self.mentions[lo : lo + chunk]]
            batch = self.retriever(seed_sets, seed=seed)
            for i in range(len(seed_sets)):
                data = batch.get_example(i)
                graphs.append(
                    Data(
                        n_id=data.n_id,
                        edge_index=data.edge_index,
                        edge_type=data.edge_type,
                        edge_id=data.edge_id,
                        num_nodes=data.n_id.numel(),
                    )
                )
        return graphs

    def facts(self, index: int, limit: int | None = None) -> list[str]:
        """At most ``limit`` of the example's retrieved facts as sentences, those touching a linked entity first."""
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise DataError(f"`limit` should be a non-negative integer or None, got {limit!r}.")
        triples = self.ranked_facts(index)[:limit]
        return [format_fact(self.kg, t, self.retrieval.fact_format) for t in triples]

    def ranked_facts(self, index: int) -> list[int]:
        """Example ``index``'s triple ids, best first: the learned ranking if set, else the prior order
        (:func:`~kgpeft.retrieval.rank_facts`: facts touching a linked entity first)."""
        if self.fact_ranking is not None:
            return self.fact_ranking[index]
        return rank_facts(self.graphs[index], {m.entity for m in self.mentions[index]})

    def with_fact_ranking(self, ranking: Sequence[Sequence[int]]) -> KnowledgeDataset:
        """A copy whose facts (in the prompt and in memory) are taken from ``ranking``, best first.

        ``ranking[i]`` lists triple ids (columns of ``kg.triples``) for example ``i``, e.g. from
        :func:`~kgpeft.training.fact_selection.select_facts`; they replace the default order
        (facts touching a linked entity first).
        """
        if len(ranking) != len(self.examples):
            raise DataError(f"`ranking` has {len(ranking)} rows but the dataset has {len(self.examples)} examples.")
        return self._replace(fact_ranking=[list(r) for r in ranking])

    def with_retrieval(self, retrieval: RetrievalConfig) -> KnowledgeDataset:
        """A copy that writes facts as ``retrieval`` says (``num_facts``, ``memory_facts``, ``fact_format``).

        The links and subgraphs stay those of this dataset, so the settings that decide them
        (``num_neighbors``, ``max_nodes``, ``max_candidates``) must not change.
        """
        for name in ("num_neighbors", "max_nodes", "max_candidates"):
            if getattr(retrieval, name) != getattr(self.retrieval, name):
                raise DataError(
                    f"`with_retrieval` keeps the retrieved subgraphs, so `{name}` cannot change "
                    f"({getattr(self.retrieval, name)!r} -> {getattr(retrieval, name)!r}); build a new dataset."
                )
        return self._replace(retrieval=retrieval)

    def with_knowledge(self, condition: KnowledgeCondition, seed: int = 0) -> KnowledgeDataset:
        """A copy for a control: each example keeps its text but gets other knowledge.

        - ``"correct"``: this dataset.
        - ``"shuffled"``: example ``i`` gets another example's subgraph, and its mentions keep
          their spans but link to that example's entities (a seeded derangement), so the
          facts, memory slots and linked node states all come from another question.
        - ``"none"``: no subgraph, no links, no facts: a KG-LoRA adapter computes plain LoRA.

        A learned fact ranking is dropped (it belongs to the old subgraphs): rank the new
        copy again to use one.
        """
        if condition not in KNOWLEDGE_CONDITIONS:
            raise DataError(f"`condition` should be one of {KNOWLEDGE_CONDITIONS}, got {condition!r}.")
        if condition == "correct":
            return self
        n = len(self.examples)
        if condition == "none":
            return self._replace(graphs=[_empty_graph()] * n, mentions=[[] for _ in range(n)], fact_ranking=None)
        if n < 2:
            raise DataError("A shuffled control needs at least two examples.")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
        donor = [0] * n
        for k, i in enumerate(order):
            donor[i] = order[(k + 1) % n]  # a cycle through a random order: nobody keeps their own
        mentions = []
        for i, j in enumerate(donor):
            theirs = list(dict.fromkeys(m.entity for m in self.mentions[j]))
            mine = list(dict.fromkeys(m.entity for m in self.mentions[i]))
            swap = {e: theirs[k % len(theirs)] for k, e in enumerate(mine)} if theirs else {}
            mentions.append([m._replace(candidates=(swap[m.entity],), scores=(1.0,)) for m in self.mentions[i] if swap])
        return self._replace(graphs=[self.graphs[j] for j in donor], mentions=mentions, fact_ranking=None)

    def with_knowledge_dropout(self, rate: float, seed: int = 0) -> KnowledgeDataset:
        """A copy in which ``round(rate * len(self))`` examples, chosen by ``seed``, have no knowledge.

        Those examples read as under the ``"none"`` control (no subgraph, links, facts or
        memory slots); the others keep theirs, a learned fact ranking included. Trained on
        it, an adapter also learns to answer when the KG has nothing to say.
        """
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise DataError(f"`rate` should be a number in [0, 1), got {rate!r}.")
        n = len(self.examples)
        dropped = set(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: round(rate * n)].tolist())
        if not dropped:
            return self
        empty = _empty_graph()
        ranking = self.fact_ranking
        return self._replace(
            graphs=[empty if i in dropped else g for i, g in enumerate(self.graphs)],
            mentions=[[] if i in dropped else m for i, m in enumerate(self.mentions)],
            fact_ranking=None if ranking is None else [[] if i in dropped else r for i, r in enumerate(ranking)],
        )

    def ablated(
        self,
        rows: Sequence[tuple[int, int | Collection[int] | None, Collection[int]]],
        answers: Sequence[str] | None = None,
    ) -> KnowledgeDataset:
        """A dataset of one row per ``(index, entities, triples)``: example ``index`` with knowledge removed.

        ``entities`` (an entity id, several, or ``None``) lose their nodes, every edge and link
        to them and every fact that names them; the ``triples`` (ids of ``kg.triples``) leave the subgraph and the fact
        ranking. The remaining facts keep their order, so the next-ranked fact takes a removed
        fact's place in the prompt and in memory. ``(i, None, ())`` is example ``i`` unchanged.
        Leave-one-out explanations score every row of one such dataset in batches.

        Args:
            rows: the examples and what each row removes.
            answers: one target per row, replacing the examples' answers (``causal_lm``); without
                it, the rows are prompts only, for generation. (default: none)
        """
        if answers is not None and len(answers) != len(rows):
            raise DataError(f"`answers` has {len(answers)} entries for {len(rows)} rows.")
        if self.task != "causal_lm":
            raise DataError(f"`ablated` builds answer-scoring rows of a causal_lm dataset, not {self.task!r}.")
        examples, mentions, graphs, ranking = [], [], [], []
        for k, (index, entities, triples) in enumerate(rows):
            if not 0 <= index < len(self.examples):
                raise DataError(f"Row {k}: index {index} is outside the dataset's {len(self.examples)} examples.")
            graph, drop = self.graphs[index], set(triples)
            gone = torch.tensor(
                [] if entities is None else [entities] if isinstance(entities, int) else sorted(entities),
                dtype=torch.long,
            )
            ranked = self.ranked_facts(index)
            if gone.numel() and ranked:
                ends = self.kg.triples[[0, 2]][:, ranked]  # (2, F): the head and tail of each ranked fact
                named = torch.isin(ends, gone).any(0)
                drop.update(t for t, hit in zip(ranked, named.tolist(), strict=True) if hit)
            keep_node = ~torch.isin(graph.n_id, gone)
            keep_edge = keep_node[graph.edge_index].all(0) & ~torch.isin(
                graph.edge_id, torch.tensor(sorted(drop), dtype=torch.long)
            )
            remap = torch.cumsum(keep_node.long(), 0) - 1  # old node row -> new node row
            graphs.append(
                Data(
                    n_id=graph.n_id[keep_node],
                    edge_index=remap[graph.edge_index[:, keep_edge]],
                    edge_type=graph.edge_type[keep_edge],
                    edge_id=graph.edge_id[keep_edge],
                    num_nodes=int(keep_node.sum()),
                )
            )
            mentions.append([m for m in self.mentions[index] if m.entity not in gone.tolist()])
            ranking.append([t for t in ranked if t not in drop])
            example = self.examples[index]
            examples.append(example if answers is None else dataclasses.replace(example, answer=answers[k]))
        return self._replace(
            examples=examples,
            mentions=mentions,
            graphs=graphs,
            fact_ranking=ranking,
            with_target=answers is not None,
            teacher=None,
            soft_targets=None,
        )

    def _replace(self, **attributes: Any) -> KnowledgeDataset:
        new = copy.copy(self)
        for name, value in attributes.items():
            setattr(new, name, value)
        new._features = None  # featurised when first read: a chain of `with_*` copies tokenises once
        return new

    @property
    def features(self) -> list[dict[str, Any]]:
        """Per example, its token ids, labels, token-to-entity links and (memory) fact ids."""
        if self._features is None:
            self._features = [self._featurize(i) for i in range(len(self.examples))]
        return self._features

    def _featurize(self, index: int) -> dict[str, Any]:
        feature = self._featurize_text(index)
        if self.retrieval.memory_facts:
            triples = self.ranked_facts(index)[: self.retrieval.memory_facts]
            texts = [format_fact(self.kg, t, self.retrieval.fact_format) for t in triples]
            ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
            feature["fact_ids"] = [i[: self.retrieval.max_fact_tokens] for i in ids]
        return feature

    def _featurize_text(self, index: int) -> dict[str, Any]:
        example, mentions, tok = self.examples[index], self.mentions[index], self.tokenizer
        lo, hi = self._window(example.text)
        text, shift = example.text[lo:hi], -lo
        triples = self.ranked_facts(index)[: self.retrieval.num_facts] if self.retrieval.num_facts else []
        if triples:  # no facts, no facts block: the question alone
            prefix = render_facts(self.kg, triples, self.retrieval.fact_format)
            text, shift = prefix + text, len(prefix) - lo
        if shift:
            mentions = [m._replace(start=m.start + shift, end=m.end + shift) for m in mentions]
        if self.task == "classification" or self.task == "seq2seq":
            enc = tok(text, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
            feature = {
                "input_ids": enc["input_ids"],
                "token_entity": align(mentions, enc["offset_mapping"]).tolist(),
            }
            if self.task == "classification":
                feature["labels"] = example.label
            elif self.with_target:
                answer = example.answer[: self.max_length * CHARS_PER_TOKEN]  # truncation keeps the start
                feature["labels"] = tok(answer, truncation=True, max_length=self.max_length)["input_ids"]
                self._add_soft_targets(feature, index, position=0)
            return feature
        target_ids: list[int] = []
        if self.with_target:
            target = " " + example.answer.strip()
            # Refused before tokenising it whole (GBs for a 20 MB answer) to find it would not fit.
            if len(target) > self.max_length * CHARS_PER_TOKEN:
                raise DataError(
                    f"Row {index}: the target has {len(target):,} characters, too many for `max_length` "
                    f"({self.max_length}) tokens."
                )
            target_ids = tok(target, add_special_tokens=False)["input_ids"]
            if tok.eos_token_id is not None:
                target_ids = [*target_ids, tok.eos_token_id]
        keep = self.max_length - len(target_ids)
        if keep < 1:
            raise DataError(f"Row {index}: the target alone has {len(target_ids)} tokens, over `max_length`.")
        enc = tok(text, return_offsets_mapping=True)
        # A long prompt loses its start; only the tokens kept are aligned to the mentions.
        prompt_ids, offsets = enc["input_ids"][-keep:], enc["offset_mapping"][-keep:]
        token_entity = align(mentions, offsets).tolist()
        feature = {
            "input_ids": prompt_ids + target_ids,
            "labels": [-100] * len(prompt_ids) + target_ids,
            "token_entity": token_entity + [-1] * len(target_ids),
        }
        self._add_soft_targets(feature, index, position=len(prompt_ids) - 1)  # logits there predict the answer
        return feature

    def _add_soft_targets(self, feature: dict[str, Any], index: int, position: int) -> None:
        if self.soft_targets is not None:
            tokens, scores = self.soft_targets[index]
            feature["distill_tokens"], feature["distill_logits"] = tokens, scores
            feature["distill_position"] = position
            feature["distill_settings"] = (self.teacher.temperature, self.teacher.weight)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.features[index], "graph": self.graphs[index]}


@dataclass
class KnowledgeCollator:
    """Pads features from :class:`KnowledgeDataset` into a batch and joins their subgraphs.

    The batch has ``input_ids``, ``attention_mask``, ``labels`` (when the features have
    them), ``distillation`` (:class:`~kgpeft.kge.distillation.SoftTargets`, when the
    dataset has a teacher) and, with ``with_knowledge``, ``knowledge`` (a
    :class:`~kgpeft.tuners.KnowledgeBatch`); without it, a plain model gets the same tokens.

    Args:
        pad_token_id: the padding id.
        padding_side: ``"right"`` for training, ``"left"`` for batched generation.
        with_knowledge: add the ``knowledge`` entry. (default: ``True``)
    """

    pad_token_id: int
    padding_side: Literal["left", "right"] = "right"
    with_knowledge: bool = True

    def _pad(self, rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), value, dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                if self.padding_side == "right":
                    out[i, : len(r)] = torch.as_tensor(r)
                else:
                    out[i, width - len(r) :] = torch.as_tensor(r)
        return out

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        input_ids = self._pad([f["input_ids"] for f in features], self.pad_token_id)  # (B, T)
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": self._pad([[1] * len(f["input_ids"]) for f in features], 0),
        }
        if "labels" in features[0]:
            labels = [f["labels"] for f in features]
            batch["labels"] = torch.tensor(labels) if isinstance(labels[0], int) else self._pad(labels, -100)
        if "distill_tokens" in features[0]:
            batch["distillation"] = collate_soft_targets(features)
        if self.with_knowledge:
            graph = Batch.from_data_list([f["graph"] for f in features])
            token_entity = self._pad([f["token_entity"] for f in features], -1)  # (B, T) entity ids
            index = batch_node_index(graph, torch.arange(len(features))[:, None], token_entity)  # (B, T) node rows
            batch["knowledge"] = KnowledgeBatch(graph, index, *self._facts(features))
        return batch

    @staticmethod
    def _facts(features: Sequence[dict[str, Any]]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(fact_ids (B, F, L), fact_mask (B, F, L))`` of the memory facts, or ``(None, None)``."""
        if "fact_ids" not in features[0]:
            return None, None
        rows = [f["fact_ids"] for f in features]
        num, length = max(1, max(len(r) for r in rows)), max(1, max((len(x) for r in rows for x in r), default=1))
        ids = torch.zeros(len(rows), num, length, dtype=torch.long)
        mask = torch.zeros(len(rows), num, length, dtype=torch.bool)
        for b, facts in enumerate(rows):
            for f, tokens in enumerate(facts):
                ids[b, f, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
                mask[b, f, : len(tokens)] = True
        return ids, mask


def _empty_graph() -> Data:
    """The subgraph of an example without knowledge: no nodes, no edges."""
    return Data(
        n_id=torch.zeros(0, dtype=torch.long),
        edge_index=torch.zeros(2, 0, dtype=torch.long),
        edge_type=torch.zeros(0, dtype=torch.long),
        edge_id=torch.zeros(0, dtype=torch.long),
        num_nodes=0,
    )
