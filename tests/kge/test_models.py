import pytest
import torch
import torch_geometric.nn.kge as pyg_kge

import kgpeft.kge.models as models
from kgpeft.kge import ComplEx, DistMult, RotatE, TransE, build_model

N, R, D = 11, 3, 6


def _model(name: str, **kwargs) -> models.KGEModel:
    torch.manual_seed(0)
    model = build_model(name, N, R, D, **kwargs).double()
    with torch.no_grad():  # move away from PyG's init, e.g. TransE's unit-norm relations
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def _reference(model: models.KGEModel, h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The score function written from the papers, independently of the model's code."""
    e = model.node_emb.weight
    if isinstance(model, TransE):
        unit = e / e.pow(2).sum(-1, keepdim=True).sqrt()
        diff = unit[h] + model.rel_emb.weight[r] - unit[t]
        return -diff.abs().pow(model.p_norm).sum(-1).pow(1 / model.p_norm)
    if isinstance(model, DistMult):
        return (e[h] * model.rel_emb.weight[r] * e[t]).sum(-1)
    c = torch.complex(e, model.node_emb_im.weight)
    if isinstance(model, ComplEx):
        rel = torch.complex(model.rel_emb.weight, model.rel_emb_im.weight)
        return (c[h] * rel[r] * c[t].conj()).sum(-1).real
    theta = model.rel_emb.weight
    rotation = torch.polar(torch.ones_like(theta), theta)
    return model.margin - (c[h] * rotation[r] - c[t]).abs().sum(-1)


def _random_triples(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randint(N, (n,), generator=g), torch.randint(R, (n,), generator=g), torch.randint(N, (n,), generator=g)


CONFIGS = [
    ("transe", {"p_norm": 1.0}),
    ("transe", {"p_norm": 2.0}),
    ("distmult", {}),
    ("complex", {}),
    ("rotate", {"margin": 3.0}),
]
IDS = ["transe-l1", "transe-l2", "distmult", "complex", "rotate"]


@pytest.fixture(params=CONFIGS, ids=IDS)
def model(request) -> models.KGEModel:
    name, kwargs = request.param
    return _model(name, **kwargs)


def test_forward_and_score_match_the_formula(model):
    g = torch.Generator().manual_seed(1)
    h, r, t = _random_triples(20, g)
    expected = _reference(model, h, r, t)
    torch.testing.assert_close(model(h, r, t), expected)
    torch.testing.assert_close(model.score(h, r, t), expected)
    # broadcasting: one head and relation per row against K tails
    tails = torch.randint(N, (20, 5), generator=g)
    scores = model.score(h[:, None], r[:, None], tails)
    assert scores.shape == (20, 5)
    torch.testing.assert_close(scores, _reference(model, h[:, None].expand(-1, 5), r[:, None].expand(-1, 5), tails))


def test_scores_differ_between_triples(model):
    # guards the reference check against a degenerate (e.g. constant) score
    scores = model.score(torch.zeros(N, dtype=torch.long), torch.zeros(N, dtype=torch.long), torch.arange(N))
    assert scores.unique().numel() == N


# PyG's TransE normalises entities with the p_norm, kgpeft's with L2: they agree for p = 2 only.
@pytest.mark.parametrize(("name", "kwargs"), [("transe", {"p_norm": 2.0}), ("distmult", {}), ("complex", {})])
def test_forward_keeps_pyg_meaning(name, kwargs):
    model = _model(name, **kwargs)
    h, r, t = torch.arange(N), torch.arange(N) % R, torch.arange(N).flip(0)
    pyg_forward = getattr(pyg_kge, type(model).__name__).forward
    torch.testing.assert_close(model(h, r, t), pyg_forward(model, h, r, t))


@pytest.mark.parametrize("block", [None, 7, 1])
@pytest.mark.parametrize("candidates", [None, [5, 0, 3, 3, 10]], ids=["all", "subset"])
def test_score_tails_and_heads_against_all_candidates(model, candidates, block, monkeypatch):
    if block is not None:  # force the chunked path (several blocks of candidates)
        monkeypatch.setattr(models, "_BLOCK_ELEMENTS", block)
    cands = None if candidates is None else torch.tensor(candidates)
    expected_cands = torch.arange(N) if cands is None else cands
    h, r, t = torch.tensor([0, 4, 4, 9]), torch.tensor([2, 0, 1, 2]), torch.tensor([1, 1, 7, 9])
    tails, heads = model.score_tails(h, r, cands), model.score_heads(r, t, cands)
    assert tails.shape == heads.shape == (4, expected_cands.numel())
    for i in range(4):
        for j, c in enumerate(expected_cands.tolist()):
            c = torch.tensor([c])
            torch.testing.assert_close(tails[i, j], _reference(model, h[i : i + 1], r[i : i + 1], c)[0])
            torch.testing.assert_close(heads[i, j], _reference(model, c, r[i : i + 1], t[i : i + 1])[0])


def test_score_against_no_candidates(model):
    empty = torch.zeros(0, dtype=torch.long)
    assert model.score_tails(torch.tensor([0, 1]), torch.tensor([0, 1]), empty).shape == (2, 0)
    assert model.score_heads(torch.tensor([0, 1]), torch.tensor([0, 1]), empty).shape == (2, 0)


def test_entity_embeddings(model):
    emb = model.entity_embeddings()
    assert emb.shape == (N, model.parts * D)
    assert not emb.requires_grad
    if isinstance(model, TransE):  # the normalised vectors it scores with
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(N, dtype=emb.dtype))
    elif model.parts == 2:
        torch.testing.assert_close(emb, torch.cat([model.node_emb.weight, model.node_emb_im.weight], dim=-1))
    else:
        torch.testing.assert_close(emb, model.node_emb.weight)


def test_parts_and_build_model():
    assert [models.MODELS[n].parts for n in ("transe", "distmult", "complex", "rotate")] == [1, 1, 2, 2]
    assert isinstance(build_model("RotatE", N, R, D), RotatE)
    model = build_model("transe", N, R, D, p_norm=2.0, margin=0.5)
    assert (model.p_norm, model.margin) == (2.0, 0.5)
    assert repr(model) == f"TransE({N}, num_relations={R}, hidden_channels={D})"
    with pytest.raises(ValueError, match=r"'bert'.*transe, distmult, complex, rotate"):
        build_model("bert", N, R, D)


@pytest.mark.parametrize("kind", ["n3", "l2"])
def test_regularizer(kind):
    model = _model("complex")
    ents, rels = torch.tensor([0, 3, 3]), torch.tensor([1, 2])
    ent = torch.complex(model.node_emb.weight, model.node_emb_im.weight)[ents]
    rel = torch.complex(model.rel_emb.weight, model.rel_emb_im.weight)[rels]
    if kind == "n3":  # the modulus of the complex numbers, cubed
        expected = ent.abs().pow(3).sum() + rel.abs().pow(3).sum()
    else:  # squares of the real parameters
        expected = sum(x.pow(2).sum() for x in (ent.real, ent.imag, rel.real, rel.imag))
    torch.testing.assert_close(model.regularizer(ents, rels, kind), expected / 2)


@pytest.mark.parametrize("name", ["transe", "distmult", "complex", "rotate"])
def test_score_all_matches_score_in_float32_with_many_entities(name):
    # float32 and more than 25 candidates: torch.cdist switches to its matrix-product path for TransE
    torch.manual_seed(0)
    model = build_model(name, 300, R, 32, **({"p_norm": 2.0} if name == "transe" else {}))
    h, r, every = torch.arange(0, 300, 30), torch.arange(10) % R, torch.arange(300)
    tol = {"atol": 1e-4, "rtol": 1e-5}
    torch.testing.assert_close(model.score_tails(h, r), model.score(h[:, None], r[:, None], every), **tol)
    torch.testing.assert_close(model.score_heads(r, h), model.score(every, r[:, None], h[:, None]), **tol)


def test_negatives_match_the_formula(model):
    # negative sampling scores (B, K) corruptions of (B,) triples in one call: heads where corrupt_head, else tails
    g = torch.Generator().manual_seed(2)
    h, r, t = _random_triples(8, g)
    random, corrupt_head = torch.randint(N, (8, 5), generator=g), torch.rand(8, 5, generator=g) < 0.5
    neg_h = torch.where(corrupt_head, random, h[:, None])
    neg_t = torch.where(corrupt_head, t[:, None], random)
    scores = model._score_corrupted(h, r, t, random, corrupt_head)
    torch.testing.assert_close(scores, _reference(model, neg_h, r[:, None].expand(-1, 5), neg_t))
