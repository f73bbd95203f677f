import math

import pytest
import torch

from kgpeft.graph import KnowledgeGraph
from kgpeft.kge.evaluation import AnswerIndex, RankMetrics, evaluate_ranks, filtered_ranks


def _tensor(triples: list[tuple[int, int, int]]) -> torch.Tensor:
    return torch.tensor(triples, dtype=torch.long).reshape(-1, 3).t()


# ---------------------------------------------------------------- by hand

# Five entities a..e (0..4), two relations likes (0) and knows (1).
TRAIN = [(0, 0, 1), (0, 0, 2), (3, 1, 4)]
VALID = [(2, 0, 3)]
TEST = [(0, 0, 3), (1, 1, 2), (4, 1, 0)]

# Hand-chosen scores of every entity: (entity, relation, heads) -> scores of entities 0..4.
HAND_SCORES = {
    # (0, likes, ?), true 3 (3.0). Known tails {1, 2, 3}: 1 (5.0) and 2 (3.0, a tie) are filtered;
    # left: 0 (2.0, lower) and 4 (3.0, a tie): optimistic 1, pessimistic 2 -> 1.5.
    (0, 0, False): [2.0, 5.0, 3.0, 3.0, 3.0],
    # (?, likes, 3), true 0 (1.0). Known heads {0, 2}: 2 (9.0) is filtered;
    # left: 1 (4.0, higher), 3 and 4 (ties): optimistic 2, pessimistic 4 -> 3.
    (3, 0, True): [1.0, 4.0, 9.0, 1.0, 1.0],
    # (1, knows, ?), true 2: all five tie: optimistic 1, pessimistic 5 -> 3 (the random rank).
    (1, 1, False): [0.0, 0.0, 0.0, 0.0, 0.0],
    # (?, knows, 2), true 1 (6.0): 0, 2, 3 higher, 4 ties: optimistic 4, pessimistic 5 -> 4.5.
    (2, 1, True): [7.0, 6.0, 8.0, 9.0, 6.0],
    # (4, knows, ?), true 0 (5.0), the best: 1.
    (4, 1, False): [5.0, 1.0, 1.0, 1.0, 1.0],
    # (?, knows, 0), true 4 (1.0): only 3 (10.0) is higher, nothing filtered -> 2.
    (0, 1, True): [0.0, 0.0, 0.0, 10.0, 1.0],
}
HEAD_RANKS = [3.0, 4.5, 2.0]
TAIL_RANKS = [1.5, 3.0, 1.0]


def _hand_score(entity: torch.Tensor, relation: torch.Tensor, heads: bool) -> torch.Tensor:
    return torch.tensor([HAND_SCORES[e, r, heads] for e, r in zip(entity.tolist(), relation.tolist(), strict=True)])


@pytest.fixture
def tiny_kg() -> KnowledgeGraph:
    splits = {"train": _tensor(TRAIN), "valid": _tensor(VALID), "test": _tensor(TEST)}
    return KnowledgeGraph(list("abcde"), ["likes", "knows"], _tensor(TRAIN), splits=splits)


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_hand_ranks_and_metrics(tiny_kg, batch_size):
    known = AnswerIndex(list(tiny_kg.splits.values()), 5, 2)
    result = evaluate_ranks(
        _hand_score, tiny_kg.splits["test"], known, batch_size=batch_size, relation_keys=tiny_kg.relation_keys
    )
    assert result.head_ranks.tolist() == HEAD_RANKS
    assert result.tail_ranks.tolist() == TAIL_RANKS
    assert result.relations.tolist() == [0, 1, 1]

    both = result.metrics()
    # ranks 3, 4.5, 2, 1.5, 3, 1: reciprocals in 18ths are 6, 4, 9, 12, 6, 18
    assert both.mrr == pytest.approx(55 / 108)
    assert both.mr == pytest.approx(15 / 6)
    assert both.hits == pytest.approx({1: 1 / 6, 3: 5 / 6, 10: 1.0})
    assert both.count == 6
    assert result.mrr == pytest.approx(55 / 108)

    head, tail = result.metrics("head"), result.metrics("tail")
    assert (head.mrr, head.mr) == pytest.approx((19 / 54, 9.5 / 3))
    assert head.hits == pytest.approx({1: 0.0, 3: 2 / 3, 10: 1.0})
    assert (tail.mrr, tail.mr) == pytest.approx((2 / 3, 5.5 / 3))
    assert tail.hits == pytest.approx({1: 1 / 3, 3: 1.0, 10: 1.0})

    summary = result.summary()
    assert summary["mrr"] == pytest.approx(55 / 108) and summary["head_mr"] == pytest.approx(9.5 / 3)
    assert summary["tail_hits@1"] == pytest.approx(1 / 3)

    per_relation = result.per_relation()
    assert set(per_relation) == {"likes", "knows"}
    assert per_relation["likes"].mrr == pytest.approx((1 / 3 + 1 / 1.5) / 2)  # ranks 3 (head), 1.5 (tail)
    assert per_relation["knows"].mr == pytest.approx((4.5 + 2 + 3 + 1) / 4)

    with pytest.raises(ValueError, match="direction"):
        result.metrics("sideways")


def test_hand_ranks_depend_on_the_filter(tiny_kg):
    # Filtering the test triples only: (0, likes, ?) now keeps 1 (higher) and 2 (a tie): 2 and 4 -> 3.
    # (?, likes, 3) keeps 2 (9.0): optimistic 3, pessimistic 5 -> 4.
    result = evaluate_ranks(_hand_score, tiny_kg.splits["test"], AnswerIndex([tiny_kg.splits["test"]], 5, 2))
    assert result.tail_ranks.tolist() == [3.0, 3.0, 1.0]
    assert result.head_ranks.tolist() == [4.0, 4.5, 2.0]


def test_filtered_ranks_directly():
    scores = torch.tensor([[2.0, 5.0, 3.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    before = scores.clone()
    target = torch.tensor([3, 2, 0])
    # row 0 filters 1, 2 and its own target 3; row 1 filters nothing; row 2 filters 4 and 1
    row, col = torch.tensor([0, 0, 0, 2, 2]), torch.tensor([1, 2, 3, 4, 1])
    ranks = filtered_ranks(scores, target, row, col)
    assert ranks.dtype == torch.float64
    assert ranks.tolist() == [1.5, 3.0, 3.0]  # row 2: 2 and 3 are higher -> 3
    assert torch.equal(scores, before)  # the caller's scores are not modified
    # unfiltered: row 0 has 1 higher and 2, 4 tied: (2 + 4) / 2
    empty = torch.zeros(0, dtype=torch.long)
    assert filtered_ranks(scores, target, empty, empty).tolist() == [3.0, 3.0, 5.0]


def test_rank_metrics_of_no_ranks():
    metrics = RankMetrics.from_ranks(torch.zeros(0))
    assert metrics.count == 0 and math.isnan(metrics.mrr) and math.isnan(metrics.hits[10])


def test_nan_scores_do_not_rank_first():
    scores = torch.full((2, 5), float("nan"))
    empty = torch.zeros(0, dtype=torch.long)
    try:
        ranks = filtered_ranks(scores, torch.tensor([0, 3]), empty, empty)
    except ValueError:
        return  # refusing NaN scores is fine too
    assert (ranks > 1).all()


# ------------------------------------------------------------ brute force

N, R = 30, 4


def _random_kg(seed: int = 0) -> KnowledgeGraph:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randperm(N * R * N, generator=g)[:200]
    triples = torch.stack([ids // (R * N), ids // N % R, ids % N])
    splits = {"train": triples[:, :140], "valid": triples[:, 140:170], "test": triples[:, 170:]}
    return KnowledgeGraph([f"e{i}" for i in range(N)], [f"r{i}" for i in range(R)], splits["train"], splits=splits)


def _score_table(kind: str, seed: int = 1) -> torch.Tensor:
    """``table[entity, relation, heads]``: the scores of all N candidates."""
    g = torch.Generator().manual_seed(seed)
    if kind == "integer":  # few distinct values: many ties
        return torch.randint(0, 4, (N, R, 2, N), generator=g).float()
    table = torch.randn(N, R, 2, N, generator=g)
    return torch.where(torch.rand(N, R, 2, N, generator=g) < 0.5, table.round(), table)  # half rounded


def _brute_force(table: torch.Tensor, test: torch.Tensor, known: set) -> tuple[list[float], list[float]]:
    heads, tails = [], []
    for h, r, t in test.t().tolist():
        for out, entity, target, is_head in ((tails, h, t, False), (heads, t, h, True)):
            s = table[entity, r, int(is_head)].tolist()
            others = [
                s[c] for c in range(N) if c != target and ((c, r, entity) if is_head else (entity, r, c)) not in known
            ]
            optimistic = 1 + sum(x > s[target] for x in others)
            pessimistic = 1 + sum(x >= s[target] for x in others)
            out.append((optimistic + pessimistic) / 2)
    return heads, tails


@pytest.mark.parametrize("kind", ["integer", "mixed"])
@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_evaluation_matches_brute_force(kind, batch_size):
    splits = _random_kg().splits
    table = _score_table(kind)
    known = {tuple(x) for s in splits.values() for x in s.t().tolist()}
    ref_heads, ref_tails = _brute_force(table, splits["test"], known)

    def score_fn(entity, relation, heads):
        return table[entity, relation, int(heads)]

    index = AnswerIndex(list(splits.values()), N, R)
    result = evaluate_ranks(score_fn, splits["test"], index, batch_size=batch_size)
    assert result.head_ranks.tolist() == ref_heads
    assert result.tail_ranks.tolist() == ref_tails

    ranks = ref_heads + ref_tails
    assert any(r != int(r) for r in ranks)  # ties did happen
    metrics = result.metrics()
    assert metrics.mrr == pytest.approx(sum(1 / r for r in ranks) / len(ranks))
    assert metrics.mr == pytest.approx(sum(ranks) / len(ranks))
    for k in (1, 3, 10):
        assert metrics.hits[k] == pytest.approx(sum(r <= k for r in ranks) / len(ranks))
    assert result.metrics("head").mrr == pytest.approx(sum(1 / r for r in ref_heads) / len(ref_heads))


def test_answer_index_matches_sets():
    splits = _random_kg(seed=3).splits
    triples = [splits["train"], splits["train"][:, :50], splits["valid"], splits["test"]]  # with duplicates
    index = AnswerIndex(triples, N, R)
    known = {tuple(x) for s in triples for x in s.t().tolist()}
    entity = torch.arange(N).repeat_interleave(R)
    relation = torch.arange(R).repeat(N)
    for heads in (False, True):
        row, col = index.answers(entity, relation, heads)
        got = sorted(zip(row.tolist(), col.tolist(), strict=True))
        expected = sorted(
            (i, c)
            for i, (e, r) in enumerate(zip(entity.tolist(), relation.tolist(), strict=True))
            for c in range(N)
            if ((c, r, e) if heads else (e, r, c)) in known
        )
        assert got == expected
    # a batch with repeats and in any order
    row, col = index.answers(torch.tensor([5, 2, 5]), torch.tensor([1, 0, 1]), False)
    for i, (e, r) in enumerate([(5, 1), (2, 0), (5, 1)]):
        assert sorted(col[row == i].tolist()) == sorted(t for h, rr, t in known if (h, rr) == (e, r))
