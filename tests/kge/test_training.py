import pytest
import torch

import kgpeft.kge.models as models
from kgpeft.datasets import load
from kgpeft.graph import KnowledgeGraph
from kgpeft.kge import KGEConfig, KGEConfigError, head_probabilities, train_kge

# Small and fast on Nations (14 entities, 1592 training triples): about half a second per run on one core.
FAST = {"hidden_channels": 16, "num_negatives": 8, "learning_rate": 0.05, "batch_size": 128, "eval_every": 0}


@pytest.fixture(scope="module")
def nations() -> KnowledgeGraph:
    return load("nations")


def _test_mrr(kg: KnowledgeGraph, **config) -> float:
    return train_kge(kg, KGEConfig(**{**FAST, **config}), progress=False).embeddings.evaluate(kg, "test").mrr


def _state(result) -> dict[str, torch.Tensor]:
    return result.embeddings.model.state_dict()


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


REGIMES = [("negative_sampling", loss, s) for loss in ("softplus", "margin", "nssa") for s in ("uniform", "bernoulli")]
REGIMES += [("1-n", "bce", "uniform"), ("1-n", "ce", "uniform")]


@pytest.mark.parametrize("reciprocal", [False, True], ids=["plain", "reciprocal"])
@pytest.mark.parametrize(("training", "loss", "sampler"), REGIMES, ids=["-".join(r) for r in REGIMES])
def test_every_regime_learns(nations, training, loss, sampler, reciprocal, seed):
    config = {"model": "complex", "training": training, "loss": loss, "negative_sampler": sampler}
    config.update(reciprocal=reciprocal, seed=seed)
    untrained = _test_mrr(nations, num_epochs=0, **config)  # same seed: the same initial model
    trained = _test_mrr(nations, num_epochs=10, **config)
    assert 0.2 < untrained < 0.45  # near random on Nations
    assert trained > untrained + 0.15


@pytest.mark.parametrize(
    "config",
    [
        {"model": "transe", "training": "negative_sampling", "loss": "margin", "p_norm": 1.0},
        {"model": "transe", "training": "1-n", "loss": "ce", "p_norm": 2.0},
        {"model": "distmult", "training": "1-n", "loss": "bce", "label_smoothing": 0.1},
        {"model": "rotate", "training": "1-n", "loss": "ce", "margin": 4.0},
        {"model": "complex", "training": "1-n", "loss": "ce", "regularization_weight": 0.01, "optimizer": "adagrad"},
    ],
    ids=["transe-margin", "transe-ce", "distmult-bce-smoothing", "rotate-ce", "complex-n3-adagrad"],
)
def test_every_model_learns(nations, config, seed):
    config = {**config, "seed": seed}
    if config.get("optimizer") == "adagrad":
        config["learning_rate"] = 0.2
    assert _test_mrr(nations, num_epochs=10, **config) > _test_mrr(nations, num_epochs=0, **config) + 0.1


def test_result_bookkeeping(nations):
    result = train_kge(
        nations, KGEConfig(**{**FAST, "num_epochs": 4, "eval_every": 2, "reciprocal": True}), progress=False
    )
    assert [h["epoch"] for h in result.history] == [2, 4]
    assert all(0 < h["valid_mrr"] <= 1 and h["loss"] > 0 for h in result.history)
    assert result.best_epoch in (2, 4)
    assert result.valid.mrr == max(h["valid_mrr"] for h in result.history)
    assert result.valid.head_ranks.numel() == nations.splits["valid"].size(1)
    assert result.triples_per_second > 0 and result.train_seconds > 0 and result.eval_seconds > 0
    emb = result.embeddings
    assert emb.model.rel_emb.num_embeddings == 2 * nations.num_relations  # one reciprocal per relation
    assert emb.num_relations == nations.num_relations and emb.kg_fingerprint == nations.fingerprint
    assert not emb.model.training


def test_early_stopping_restores_the_best_state(nations, seed):
    # lr 1.0 makes DistMult's valid MRR fall after a few epochs
    config = {**FAST, "model": "distmult", "learning_rate": 1.0, "num_epochs": 20, "eval_every": 1, "patience": 1}
    config["seed"] = seed
    result = train_kge(nations, KGEConfig(**config), progress=False)
    mrrs = [h["valid_mrr"] for h in result.history]
    last = result.history[-1]["epoch"]
    assert last < 20  # stopped early
    assert mrrs[-1] < max(mrrs)  # after an evaluation that got worse
    assert result.best_epoch == result.history[mrrs.index(max(mrrs))]["epoch"] < last
    # the returned embeddings are the best epoch's, not the last one's
    assert result.embeddings.evaluate(nations, "valid").mrr == pytest.approx(result.valid.mrr, abs=1e-12)
    assert result.valid.mrr == max(mrrs)
    # ... exactly the state of a run that stops at the best epoch
    again = train_kge(
        nations, KGEConfig(**{**config, "num_epochs": result.best_epoch, "eval_every": 0}), progress=False
    )
    assert _same_state(_state(result), _state(again))


def test_patience_zero_never_stops(nations):
    config = {**FAST, "model": "distmult", "learning_rate": 1.0, "num_epochs": 6, "eval_every": 1, "patience": 0}
    result = train_kge(nations, KGEConfig(**config), progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("training", ["negative_sampling", "1-n"])
def test_same_seed_same_embeddings(nations, training):
    config = {
        **FAST,
        "training": training,
        "loss": "nssa" if training == "negative_sampling" else "bce",
        "num_epochs": 2,
    }
    a, b = (train_kge(nations, KGEConfig(**config), progress=False) for _ in range(2))
    assert _same_state(_state(a), _state(b))
    c = train_kge(nations, KGEConfig(**{**config, "seed": 1}), progress=False)
    assert not _same_state(_state(a), _state(c))


def test_sampler_and_loss_change_training(nations):
    base = {**FAST, "training": "negative_sampling", "loss": "softplus", "num_epochs": 1}
    states = [
        _state(train_kge(nations, KGEConfig(**{**base, **extra}), progress=False))
        for extra in ({}, {"negative_sampler": "bernoulli"}, {"loss": "margin"}, {"loss": "nssa"})
    ]
    assert not any(_same_state(states[0], s) for s in states[1:])


def test_train_without_splits_and_bad_split():
    triples = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1], [1, 2, 3, 0]])
    kg = KnowledgeGraph(list("abcd"), ["r", "s"], triples)
    result = train_kge(kg, KGEConfig(**{**FAST, "num_epochs": 2, "eval_every": 1}), progress=False)
    assert result.history == [] and result.valid is None and result.best_epoch == 2
    with pytest.raises(KeyError, match="'dev'"):
        train_kge(load("nations"), KGEConfig(**{**FAST, "num_epochs": 1}), train_split="dev", progress=False)


def test_head_probabilities_by_hand():
    triples = [
        (0, 0, 1), (0, 0, 2), (0, 0, 3),  # 1-to-N: tph 3, hpt 1 -> 3/4
        (0, 1, 4), (1, 1, 4), (2, 1, 4),  # N-to-1: tph 1, hpt 3 -> 1/4
        (0, 2, 1), (1, 2, 0),  # 1-to-1 -> 1/2
        (0, 4, 1), (0, 4, 2), (0, 4, 3), (1, 4, 1),  # 4 triples, 2 heads, 3 tails: tph 2, hpt 4/3 -> 0.6
    ]  # fmt: skip
    probs = head_probabilities(torch.tensor(triples).t(), 6)
    # relations 3 and 5 have no triples: 1/2
    assert probs.tolist() == pytest.approx([0.75, 0.25, 0.5, 0.5, 0.6, 0.5])


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"hiden_channels": 10}, r"unknown key 'hiden_channels'.*did you mean 'hidden_channels'"),
        ({"learning_rate": "1e-3"}, r"`learning_rate`.*float.*1\.0e-4"),
        ({"num_epochs": 2.5}, r"`num_epochs`.*int.*2\.5"),
        ({"epochs": 3}, r"unknown key 'epochs'.*did you mean 'num_epochs'"),
        ({"learning_rate": 0}, r"`learning_rate` should be positive, got 0"),
        ({"reciprocal": "yes"}, r"`reciprocal`.*bool"),
        ({"model": "bert"}, r"`model` should be one of \('transe', 'distmult', 'complex', 'rotate'\), got 'bert'"),
        ({"loss": "hinge"}, r"`loss`.*'hinge'"),
        ({"training": "1-n", "loss": "margin"}, r"`loss='margin'` does not go with `training='1-n'`.*ce, bce"),
        ({"training": "negative_sampling", "loss": "ce"}, r"`loss='ce'`.*softplus, margin, nssa"),
        ({"hidden_channels": 0}, r"`hidden_channels`.*at least 1"),
        ({"patience": -1}, r"`patience`.*non-negative"),
        ({"label_smoothing": 1.0}, r"`label_smoothing`"),
    ],
)
def test_config_errors(values, match):
    with pytest.raises(KGEConfigError, match=match):
        KGEConfig.from_dict(values)


def test_config_from_dict_round_trip():
    config = KGEConfig.from_dict(
        {"model": "rotate", "training": "negative_sampling", "loss": "nssa", "learning_rate": 1}
    )
    assert (config.model, config.learning_rate) == ("rotate", 1)
    assert KGEConfig.from_dict(config.to_dict()) == config
    assert config.model_kwargs() == {"margin": 1.0}
    assert issubclass(KGEConfigError, ValueError)


@pytest.mark.parametrize(("sampler", "low", "high"), [("uniform", 0.45, 0.55), ("bernoulli", 0.95, 1.0)])
def test_negative_sampler_corrupts_heads_as_configured(monkeypatch, sampler, low, high, seed):
    # One 1-to-N relation: 0 -r-> 1..100, so Bernoulli corrupts the head with probability 100/101.
    n = 300
    zeros = torch.zeros(100, dtype=torch.long)
    kg = KnowledgeGraph([f"e{i}" for i in range(n)], ["r"], torch.stack([zeros, zeros, torch.arange(1, 101)]))
    corrupted = []
    score_corrupted = models.DistMult._score_corrupted

    def spy(self, head_index, rel_type, tail_index, random, corrupt_head):
        corrupted.append(corrupt_head.float().mean().item())
        return score_corrupted(self, head_index, rel_type, tail_index, random, corrupt_head)

    monkeypatch.setattr(models.DistMult, "_score_corrupted", spy)
    config = {**FAST, "model": "distmult", "training": "negative_sampling", "loss": "softplus", "num_epochs": 3}
    config["seed"] = seed
    train_kge(kg, KGEConfig(**{**config, "negative_sampler": sampler, "num_negatives": 64}), progress=False)
    assert len(corrupted) == 3  # one batch of 100 per epoch
    assert low < sum(corrupted) / len(corrupted) < high


def test_config_defaults_follow_the_regime_and_model_names_ignore_case():
    assert KGEConfig(training="negative_sampling").loss == "softplus"
    assert KGEConfig(training="1-n").loss == "ce"
    assert KGEConfig.from_dict({"model": "ComplEx"}).model == "complex"


@pytest.mark.parametrize("training", ["negative_sampling", "1-n"])
def test_the_regularizer_option_is_the_one_applied(training):
    kg = load("nations")
    weights = {}
    for kind in ("n3", "l2"):
        config = KGEConfig(
            model="distmult",
            hidden_channels=8,
            training=training,
            regularizer=kind,
            regularization_weight=0.5,
            num_epochs=1,
            eval_every=0,
        )
        weights[kind] = train_kge(kg, config, progress=False).embeddings.model.node_emb.weight
    assert not torch.equal(weights["n3"], weights["l2"])
