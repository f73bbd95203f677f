r"""Fact selection: which of a retrieved subgraph's facts the prompt (or a ``memory`` adapter) holds.

- :mod:`kgpeft.selection.config`: :class:`FactScorerConfig` (width, objective, steps).
- :mod:`kgpeft.selection.scorer`: :class:`FactScorer`, an R-GCN over the question's subgraph
  scoring each fact for the question; :func:`build_fact_scorer`.
- :mod:`kgpeft.selection.objectives`: :func:`train_fact_scorer` with the ``answers`` objective
  (:func:`answer_fact_loss`) or the ``marginal`` one (:func:`marginal_fact_loss`, RAG's marginal
  likelihood of the answer under the frozen LM).
- :mod:`kgpeft.selection.ranking`: :func:`rank_facts` (the prior order: facts touching a linked
  entity first), :func:`select_facts` (the scorer's), :func:`fact_probabilities`, :func:`fact_recall`.
- :mod:`kgpeft.selection.answers`: :func:`link_answers`, answer entities linked from answer text, so that
  the ``answers`` objective trains on rows that give their answer as text only.
- :mod:`kgpeft.selection.joint`: :func:`select_memory_facts`, the scorer picking and weighing a
  ``memory`` adapter's facts per batch when the two train together (``FactScorerConfig.training``).
- :mod:`kgpeft.selection.serialization`: :func:`save_fact_scorer` / :func:`load_fact_scorer`.

How a fact is written as text (:func:`~kgpeft.retrieval.format_fact`) stays in :mod:`kgpeft.retrieval`.
"""

from kgpeft.selection.answers import AnswerLinks, answer_entities, link_answers
from kgpeft.selection.config import (
    OBJECTIVES,
    TRAINING_MODES,
    FactScorerConfig,
    FactScorerConfigError,
    FactScorerError,
)
from kgpeft.selection.joint import candidate_scores, select_memory_facts, selected_triples
from kgpeft.selection.objectives import answer_fact_loss, answer_log_likelihoods, marginal_fact_loss, train_fact_scorer
from kgpeft.selection.ranking import (
    answer_fact_recall,
    fact_probabilities,
    fact_recall,
    rank_facts,
    select_facts,
    top_facts,
)
from kgpeft.selection.scorer import (
    FactScorer,
    build_fact_scorer,
    question_token_ids,
    question_vectors,
    segment_log_softmax,
)
from kgpeft.selection.serialization import SCORER_FORMAT, load_fact_scorer, save_fact_scorer

__all__ = [
    "OBJECTIVES",
    "SCORER_FORMAT",
    "TRAINING_MODES",
    "AnswerLinks",
    "FactScorer",
    "FactScorerConfig",
    "FactScorerConfigError",
    "FactScorerError",
    "answer_entities",
    "answer_fact_loss",
    "answer_fact_recall",
    "answer_log_likelihoods",
    "build_fact_scorer",
    "candidate_scores",
    "fact_probabilities",
    "fact_recall",
    "link_answers",
    "load_fact_scorer",
    "marginal_fact_loss",
    "question_token_ids",
    "question_vectors",
    "rank_facts",
    "save_fact_scorer",
    "segment_log_softmax",
    "select_facts",
    "select_memory_facts",
    "selected_triples",
    "top_facts",
    "train_fact_scorer",
]
