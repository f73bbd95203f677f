"""The dataset: text examples to token ids, links and one retrieved subgraph each, computed once.

:class:`KnowledgeDataset` does the expensive work once, when it is built: it links each
example's text (or takes its gold links), retrieves the subgraph around the linked
entities, optionally writes the top-ranked facts into the prompt as text, tokenises and
aligns tokens to entities. Later epochs, and DataLoader workers, only read the cached
features; :class:`~kgpeft.data.KnowledgeCollator` batches them. Its knowledge controls
(:mod:`kgpeft.data.controls`) give copies with other knowledge.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch.utils.data import Dataset
from torch_geometric.data import Data

from kgpeft.data.controls import KnowledgeControls
from kgpeft.data.examples import DataError, as_example, check_example
from kgpeft.data.truncation import RowCuts, Truncation, describe, lost_answer
from kgpeft.graph import KnowledgeGraph
from kgpeft.kge.distillation import KGETeacher, first_tokens
from kgpeft.linking import EntityLinker, Mention, align
from kgpeft.retrieval import (
    RetrievalConfig,
    SubgraphRetriever,
    format_fact,
    frame_fact,
    memory_fact_texts,
    render_facts,
)
from kgpeft.selection.ranking import rank_facts
from kgpeft.selection.scorer import question_token_ids
from kgpeft.tasks.base import TaskExample
from kgpeft.tasks.types import TaskType, get_task_type
from kgpeft.utils import short_repr

#: Characters of a text kept per token of ``max_length``: a longer text is cut to ``max_length *
#: CHARS_PER_TOKEN`` characters before it is linked and tokenised (its end for a ``causal_lm`` prompt,
#: which loses its start to truncation, else its start), so a row's work is bounded by ``max_length``,
#: not by its text. Truncation would drop the rest anyway, unless the kept tokens average more
#: than this many characters (English text averages about 4 per token). A ``seq2seq`` answer is cut
#: the same way (its start), and a ``causal_lm`` answer longer than that is refused.
CHARS_PER_TOKEN = 32


class KnowledgeDataset(KnowledgeControls, Dataset):
    """Examples tokenised, linked, aligned and given their retrieved subgraph, computed once.

    Args:
        examples: :class:`~kgpeft.tasks.TaskExample` objects or dicts with the same keys.
        tokenizer: a fast tokenizer (offsets are needed to align tokens to entities).
        kg: the knowledge graph.
        task: a :class:`~kgpeft.tasks.TaskType` or its name: ``"causal_lm"`` (loss on the target
            tokens only; the prompt is masked), ``"multiple_choice"`` (rows as ``causal_lm``),
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
        task: TaskType | str = "causal_lm",
        retrieval: RetrievalConfig | None = None,
        linker: EntityLinker | None = None,
        retriever: SubgraphRetriever | None = None,
        max_length: int = 128,
        with_target: bool = True,
        seed: int = 0,
        teacher: KGETeacher | None = None,
    ) -> None:
        task = get_task_type(task) if isinstance(task, str) else task
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("`tokenizer` should be a fast tokenizer (offset mappings align tokens to entities).")
        self.examples = [as_example(e, i) for i, e in enumerate(examples)]
        for i, example in enumerate(self.examples):
            check_example(example, i, task, with_target)
        self.tokenizer, self.kg, self.task = tokenizer, kg, task
        self.max_length, self.with_target = max_length, with_target
        self.retrieval = retrieval if retrieval is not None else RetrievalConfig()
        self.linker = linker if linker is not None else self.retrieval.build_linker(kg)
        self.retriever = retriever if retriever is not None else self.retrieval.build_retriever(kg, seed)
        self.mentions = [self._mentions(e) for e in self.examples]
        self.graphs = self._retrieve(seed)
        self.fact_ranking: list[list[int]] | None = None
        self.fact_candidates = False
        self.teacher = teacher
        if teacher is not None and not (with_target and task.allows_teacher):
            raise ValueError(f"A `teacher` needs `with_target=True` and a task with answer tokens, not {task.name!r}.")
        self.soft_targets = self._soft_targets() if teacher is not None else None
        self._features: list[dict[str, Any]] | None = None
        self._cuts: list[RowCuts] = []
        self._featurize_all()

    def _soft_targets(self) -> list[tuple[list[int], list[float]]]:
        """Per example, the first token of each teacher candidate's label, and the teacher's scores."""
        targets = self.teacher.soft_targets(self.examples)
        labels = sorted({e for ids, _ in targets for e in ids})
        tokens = first_tokens(
            self.tokenizer, [self.kg.labels[e] for e in labels], leading_space=self.task.label_leading_space
        )
        token_of = dict(zip(labels, tokens, strict=True))
        return [([token_of[e] for e in ids], scores) for ids, scores in targets]

    def _window(self, text: str) -> tuple[int, int]:
        """The characters ``[lo, hi)`` of ``text`` that are linked and tokenised (see :data:`CHARS_PER_TOKEN`)."""
        room = self.max_length * CHARS_PER_TOKEN
        if len(text) <= room:
            return 0, len(text)
        return (len(text) - room, len(text)) if self.task.truncation_side == "left" else (0, room)

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
        (:func:`~kgpeft.selection.rank_facts`: facts touching a linked entity first)."""
        if self.fact_ranking is not None:
            return self.fact_ranking[index]
        return rank_facts(self.graphs[index], {m.entity for m in self.mentions[index]})

    def with_fact_ranking(self, ranking: Sequence[Sequence[int]]) -> KnowledgeDataset:
        """A copy whose facts (in the prompt and in memory) are taken from ``ranking``, best first.

        ``ranking[i]`` lists triple ids (columns of ``kg.triples``) for example ``i``, e.g. from
        :func:`~kgpeft.selection.select_facts`; they replace the default order
        (facts touching a linked entity first).
        """
        if len(ranking) != len(self.examples):
            raise DataError(f"`ranking` has {len(ranking)} rows but the dataset has {len(self.examples)} examples.")
        return self._replace(fact_ranking=[list(r) for r in ranking])

    def with_fact_candidates(self) -> KnowledgeDataset:
        """A copy whose memory facts a model's fact scorer picks per batch (joint training).

        Each example carries every fact of its subgraph, tokenised once (at most
        ``retrieval.max_fact_tokens`` tokens each), its linked nodes and its question's tokens, instead
        of the ``retrieval.memory_facts`` facts of its ranking; the collator gives them to the model
        as :class:`~kgpeft.tuners.FactCandidates`.
        """
        return self._replace(fact_candidates=True)

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

    def with_max_length(self, max_length: int) -> KnowledgeDataset:
        """A copy whose rows are cut to ``max_length`` tokens; the links and subgraphs stay this dataset's.

        A job builds its training data once at a generous length, derives its budget from it
        (:mod:`kgpeft.pipeline.budgets`), then cuts the rows to that budget with this.
        """
        if not isinstance(max_length, int) or max_length <= 0:
            raise DataError(f"`max_length` should be a positive integer, got {max_length!r}.")
        return self._replace(max_length=max_length)

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
            self._featurize_all()
        return self._features

    def truncation(self) -> Truncation:
        """How many prompts, targets and memory facts ``max_length`` and ``retrieval.max_fact_tokens`` cut,
        and how many of those cuts removed the question's text or an answer's name."""
        if self._features is None:
            self._featurize_all()
        return Truncation.of(self._cuts, self.max_length, self.retrieval.max_fact_tokens)

    def _featurize_all(self) -> None:
        """Tokenise every example, counting what the token limits cut."""
        rows = [self._featurize(i) for i in range(len(self.examples))]
        self._features, self._cuts = [f for f, _ in rows], [c for _, c in rows]

    def _featurize(self, index: int) -> tuple[dict[str, Any], RowCuts]:
        feature, cuts = self._featurize_text(index)
        if self.fact_candidates:
            feature.update(self._candidate_features(index))
        elif self.retrieval.memory_facts:
            feature["fact_ids"], cuts = self._memory_facts(index, cuts)
        return feature, cuts

    def _candidate_features(self, index: int) -> dict[str, Any]:
        """Example ``index``'s subgraph facts (distinct triples in edge order) as tokens, each edge's fact,
        its linked nodes and its question's tokens: what a fact scorer picks memory facts with.

        The tokens are one list per place a picked fact can take: one for facts written alone, and with
        ``memory_framing: block`` one per place of the ``min(memory_facts, facts)`` the example reads, each fact
        written as that place's piece of the facts block (:func:`~kgpeft.retrieval.frame_fact`)."""
        graph, seeds = self.graphs[index], {m.entity for m in self.mentions[index]}
        edge_ids = graph.edge_id.tolist()
        triples = list(dict.fromkeys(edge_ids))
        column = {t: c for c, t in enumerate(triples)}
        texts = [format_fact(self.kg, t, self.retrieval.fact_format) for t in triples]
        count = min(self.retrieval.memory_facts, len(texts))
        framed = [[frame_fact(t, p, count) for t in texts] for p in range(count)]
        places = framed if self.retrieval.memory_framing == "block" and texts else [texts]
        limit = self.retrieval.max_fact_tokens
        ids = [self.tokenizer(place, add_special_tokens=False)["input_ids"] if place else [] for place in places]
        return {
            "candidate_triples": triples,
            "candidate_ids": [[i[:limit] for i in place] for place in ids],
            "edge_candidate": [column[t] for t in edge_ids],
            "seed_nodes": [n in seeds for n in graph.n_id.tolist()],
            "question_ids": question_token_ids(self.tokenizer, self.examples[index].text),
            "memory_facts": self.retrieval.memory_facts,
        }

    def _memory_facts(self, index: int, cuts: RowCuts) -> tuple[list[list[int]], RowCuts]:
        """The token ids of example ``index``'s memory facts, each cut to ``max_fact_tokens``, and ``cuts``
        with those cuts counted."""
        triples = self.ranked_facts(index)[: self.retrieval.memory_facts]
        texts = memory_fact_texts(self.kg, triples, self.retrieval.fact_format, self.retrieval.memory_framing)
        if not texts:
            return [], cuts
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        limit, answers = self.retrieval.max_fact_tokens, self.examples[index].answers
        cut = [k for k, ids in enumerate(enc["input_ids"]) if limit is not None and len(ids) > limit]
        lost = [k for k in cut if lost_answer(answers, texts[k], texts[k][: enc["offset_mapping"][k][limit - 1][1]])]
        example = cuts.example
        if lost and example is None:
            example = describe(index, self.examples[index].text, f"the end of the memory fact {texts[lost[0]]!r}")
        cuts = dataclasses.replace(
            cuts, facts=len(cut), fact_answers=len(lost), memory_facts=len(texts), example=example
        )
        return [ids[:limit] for ids in enc["input_ids"]], cuts

    def _featurize_text(self, index: int) -> tuple[dict[str, Any], RowCuts]:
        text, mentions, start = self._prompt(index)
        if self.task.target_in_input:  # prompt and target in one sequence, or two
            return self._causal_features(index, text, mentions, start)
        return self._encoder_features(index, text, mentions, start)

    def _prompt(self, index: int) -> tuple[str, list[Mention], int]:
        """Example ``index``'s text as the model reads it (its window, the facts block before it), its
        mentions at their places in that text, and where the question starts (after the facts block)."""
        example, mentions = self.examples[index], self.mentions[index]
        lo, hi = self._window(example.text)
        text, shift = example.text[lo:hi], -lo
        triples = self.ranked_facts(index)[: self.retrieval.num_facts] if self.retrieval.num_facts else []
        if triples:  # no facts, no facts block: the question alone
            prefix = render_facts(self.kg, triples, self.retrieval.fact_format)
            text, shift = prefix + text, len(prefix) - lo
        if shift:
            mentions = [m._replace(start=m.start + shift, end=m.end + shift) for m in mentions]
        return text, mentions, shift + lo

    def _prompt_cuts(self, index: int, text: str, start: int, kept: tuple[int, int] | None) -> RowCuts:
        """What example ``index``'s prompt ``text`` (its question from ``start``) lost when only its
        characters ``kept`` (``[lo, hi)``; ``None``: no token cut) reached the model, and what its window
        (:meth:`_window`) left out of the example's text."""
        example = self.examples[index]
        windowed = len(text) - start < len(example.text)
        if kept is None and not windowed:
            return RowCuts()
        lo, hi = kept if kept is not None else (0, len(text))
        question = windowed or lo > start or hi < len(text)
        answer = lost_answer(example.answers, text[:start], text[lo:hi])
        lost = text[:lo] if lo else text[hi:]
        shown = describe(index, example.text, lost or "the text its window left out") if question or answer else None
        return RowCuts(prompt=True, question=question, prompt_answer=answer, example=shown)

    def _encoder_features(
        self, index: int, text: str, mentions: list[Mention], start: int
    ) -> tuple[dict[str, Any], RowCuts]:
        """A ``classification`` or ``seq2seq`` row: the prompt's tokens, and a class or the answer's tokens."""
        example, tok = self.examples[index], self.tokenizer
        enc = tok(text, truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        feature = {
            "input_ids": enc["input_ids"],
            "token_entity": align(mentions, enc["offset_mapping"]).tolist(),
        }
        kept = (0, max((e for _, e in enc["offset_mapping"]), default=0)) if enc.encodings[0].overflowing else None
        cuts = self._prompt_cuts(index, text, start, kept)
        if self.task.classifier:  # a class label, not answer tokens
            feature["labels"] = example.label
        elif self.with_target:
            answer = example.answer[: self.max_length * CHARS_PER_TOKEN]  # truncation keeps the start
            labels = tok(answer, truncation=True, max_length=self.max_length)
            feature["labels"] = labels["input_ids"]
            if labels.encodings[0].overflowing or len(answer) < len(example.answer):
                cuts = dataclasses.replace(cuts, target=True)
            self._add_soft_targets(feature, index, position=0)
        return feature, cuts

    def _causal_features(
        self, index: int, text: str, mentions: list[Mention], start: int
    ) -> tuple[dict[str, Any], RowCuts]:
        """A ``causal_lm`` row: the prompt's last tokens then the answer's, the loss on the answer only."""
        example, tok = self.examples[index], self.tokenizer
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
        kept = (offsets[0][0], len(text)) if len(enc["input_ids"]) > keep else None
        cuts = self._prompt_cuts(index, text, start, kept)
        token_entity = align(mentions, offsets).tolist()
        feature = {
            "input_ids": prompt_ids + target_ids,
            "labels": [-100] * len(prompt_ids) + target_ids,
            "token_entity": token_entity + [-1] * len(target_ids),
        }
        self._add_soft_targets(feature, index, position=len(prompt_ids) - 1)  # logits there predict the answer
        return feature, cuts

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
