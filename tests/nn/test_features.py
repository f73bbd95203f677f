import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from kgpeft import KnowledgeGraph
from kgpeft.nn import KGENodeFeatures, LearnedNodeFeatures, RGCNEncoder, TextNodeFeatures

VOCAB = {"[UNK]": 0, "big": 1, "dog": 2, "cat": 3, "small": 4}
LABELS = ["big dog", "cat", "", "small cat dog", "zebra"]  # "" has no tokens; "zebra" is [UNK]
TOKENS = [[1, 2], [3], [], [4, 3, 2], [0]]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer built offline: one token per whitespace-separated word."""
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def make_kg(labels: list[str]) -> KnowledgeGraph:
    n = len(labels)
    triples = torch.tensor([[0, 1], [0, 0], [1, 2]]) if n >= 3 else torch.empty(3, 0, dtype=torch.long)
    return KnowledgeGraph([f"e{i}" for i in range(n)], ["r"], triples, labels=labels)


@pytest.fixture
def embedding() -> torch.nn.Embedding:
    """Stands in for a base model's input embedding: frozen, 6 rows (one more than the vocabulary)."""
    torch.manual_seed(0)
    return torch.nn.Embedding(6, 4).requires_grad_(False)


@pytest.fixture
def text(tokenizer, embedding) -> TextNodeFeatures:
    return TextNodeFeatures(make_kg(LABELS), tokenizer, embedding, out_channels=3)


def test_text_token_cache_is_csr(text):
    assert text.token_ids.tolist() == [1, 2, 3, 4, 3, 2, 0]
    assert text.token_ptr.tolist() == [0, 2, 3, 3, 6, 7]


def test_text_mean_pooling_by_hand(text, embedding):
    e, w = embedding.weight, text.proj.weight
    n_id = torch.tensor([3, 0, 2, 0, 4, 1])  # any order, with repeats
    out = text(n_id)
    assert out.shape == (6, 3)
    expected = torch.stack(
        [
            (e[4] + e[3] + e[2]) / 3,  # "small cat dog"
            (e[1] + e[2]) / 2,  # "big dog"
            torch.zeros(4),  # "": a zero vector, not NaN
            (e[1] + e[2]) / 2,
            e[0],  # "zebra" -> [UNK]
            e[3],  # "cat"
        ]
    )
    torch.testing.assert_close(out, expected @ w.T)
    assert out[2].eq(0).all()


def test_text_embedding_stays_frozen_and_out_of_the_checkpoint(text, embedding):
    assert list(text.state_dict()) == ["proj.weight"]
    assert [name for name, _ in text.named_parameters()] == ["proj.weight"]
    assert all(m is not embedding for m in text.modules())
    assert text.embedding is embedding

    embedding.requires_grad_(True)  # even a trainable base embedding gets no gradient from here
    text(torch.tensor([0, 3])).square().sum().backward()
    assert text.proj.weight.grad is not None and text.proj.weight.grad.abs().sum() > 0
    assert embedding.weight.grad is None


def test_text_memory_does_not_grow_with_a_feature_table(text):
    sizes = {name: t.numel() for name, t in [*text.named_parameters(), *text.named_buffers()]}
    assert sizes == {"proj.weight": 3 * 4, "token_ids": 7, "token_ptr": len(LABELS) + 1}


def test_text_checkpoint_fits_a_larger_kg(text, tokenizer, embedding):
    """New entities, never seen in training, get features from their labels."""
    bigger = TextNodeFeatures(make_kg([*LABELS, "small dog"]), tokenizer, embedding, out_channels=3)
    bigger.load_state_dict(text.state_dict())
    torch.testing.assert_close(bigger(torch.tensor([0, 1])), text(torch.tensor([0, 1])))
    e = embedding.weight
    torch.testing.assert_close(bigger(torch.tensor([5]))[0], (e[4] + e[2]) / 2 @ text.proj.weight.T)


def test_text_dtypes(text, tokenizer):
    low = torch.nn.Embedding(6, 4, dtype=torch.bfloat16).requires_grad_(False)
    assert TextNodeFeatures(make_kg(LABELS), tokenizer, low, 3)(torch.tensor([0, 2])).dtype == torch.float32
    assert text.double()(torch.tensor([0, 2])).dtype == torch.float64
    assert text.token_ids.dtype == torch.int32  # half the memory of int64; .double() leaves integer buffers


def test_text_empty_inputs(text, tokenizer, embedding):
    assert text(torch.empty(0, dtype=torch.long)).shape == (0, 3)
    nothing = TextNodeFeatures(make_kg([]), tokenizer, embedding, 3)
    assert nothing.token_ptr.tolist() == [0]
    assert nothing(torch.empty(0, dtype=torch.long)).shape == (0, 3)


def test_text_bad_arguments(text, tokenizer, embedding):
    with pytest.raises(ValueError, match=r"`n_id` holds entity ids in \[0, 5\], but there are only 5 entities"):
        text(torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"`n_id` should be a 1-D tensor of entity ids"):
        text(torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match=r"`n_id` should be a 1-D tensor of entity ids"):
        text(torch.tensor([0.0]))
    with pytest.raises(ValueError, match=r"`n_id` should be a 1-D tensor of entity ids, got torch.bool"):
        text(torch.tensor([True, False, True, False, True]))
    with pytest.raises(ValueError, match=r"token id 4, but `embedding` has only 3 rows"):
        TextNodeFeatures(make_kg(LABELS), tokenizer, torch.nn.Embedding(3, 4), 3)
    with pytest.raises(TypeError, match=r"`embedding` should be a torch.nn.Embedding, got Linear"):
        TextNodeFeatures(make_kg(LABELS), tokenizer, torch.nn.Linear(4, 4), 3)
    with pytest.raises(ValueError, match=r"`out_channels` should be positive, got 0"):
        TextNodeFeatures(make_kg(LABELS), tokenizer, embedding, 0)


def test_text_features_feed_the_encoder(text):
    """The default pipeline on a KG's own adjacency: inverse edges double the edge types."""
    kg = make_kg(LABELS)
    data = kg.to_pyg(add_inverse=True)
    encoder = RGCNEncoder(3, 8, num_relations=2 * kg.num_relations)
    z = encoder(text(torch.arange(kg.num_entities)), data.edge_index, data.edge_type)
    assert z.shape == (5, 8) and torch.isfinite(z).all()


def test_kge_frozen():
    table = torch.randn(5, 4)
    kge = KGENodeFeatures(table, out_channels=3)
    n_id = torch.tensor([4, 0, 4])
    torch.testing.assert_close(kge(n_id), table[n_id] @ kge.proj.weight.T)
    assert list(kge.state_dict()) == ["proj.weight"]
    assert [name for name, _ in kge.named_parameters()] == ["proj.weight"]
    assert not kge.embeddings.requires_grad
    assert kge.double().embeddings.dtype == torch.float64  # a buffer: follows the module
    assert repr(kge) == "KGENodeFeatures(4, 3, num_entities=5, freeze=True)"


def test_kge_trainable():
    table = torch.randn(5, 4)
    kge = KGENodeFeatures(table, out_channels=3, freeze=False)
    assert sorted(kge.state_dict()) == ["embeddings", "proj.weight"]
    kge(torch.tensor([1, 2])).square().sum().backward()
    assert kge.embeddings.grad[[1, 2]].abs().sum() > 0 and kge.embeddings.grad[[0, 3, 4]].eq(0).all()
    torch.optim.SGD(kge.parameters(), lr=1.0).step()
    assert not torch.equal(kge.embeddings.detach(), table)  # trained, while the caller's table is untouched


def test_kge_complex_vectors_are_split():
    table = torch.randn(5, 2, dtype=torch.cfloat)
    kge = KGENodeFeatures(table, out_channels=3)
    assert kge.in_channels == 4
    real = torch.stack([table[1].real, table[1].imag], dim=-1).flatten()
    torch.testing.assert_close(kge(torch.tensor([1]))[0], real @ kge.proj.weight.T)


def test_kge_bad_arguments():
    with pytest.raises(ValueError, match=r"`embeddings` should have shape \(num_entities, d\), got \(5,\)"):
        KGENodeFeatures(torch.randn(5), 3)
    with pytest.raises(ValueError, match=r"`embeddings` should hold real or complex numbers, got torch.int64"):
        KGENodeFeatures(torch.ones(5, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"`n_id` holds entity ids in \[-1, -1\]"):
        KGENodeFeatures(torch.randn(5, 2), 3)(torch.tensor([-1]))


def test_learned():
    learned = LearnedNodeFeatures(5, 3)
    out = learned(torch.tensor([2, 2, 0]))
    torch.testing.assert_close(out, learned.embedding.weight[[2, 2, 0]])
    assert {k: tuple(v.shape) for k, v in learned.state_dict().items()} == {"embedding.weight": (5, 3)}
    out.sum().backward()
    assert learned.embedding.weight.grad[[0, 2]].ne(0).all() and learned.embedding.weight.grad[1].eq(0).all()
    assert repr(learned) == "LearnedNodeFeatures(5, 3)"
    with pytest.raises(ValueError, match=r"`num_entities` should be non-negative, got -1"):
        LearnedNodeFeatures(-1, 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda tok, emb: TextNodeFeatures(make_kg(LABELS), tok, emb, 3),
        lambda tok, emb: KGENodeFeatures(torch.randn(5, 4), 3),
        lambda tok, emb: LearnedNodeFeatures(5, 3),
    ],
    ids=["text", "kge", "learned"],
)
def test_determinism_and_reset(make, tokenizer, embedding):
    torch.manual_seed(0)
    a = make(tokenizer, embedding)
    torch.manual_seed(0)
    b = make(tokenizer, embedding)
    n_id = torch.arange(5)
    torch.testing.assert_close(a(n_id), b(n_id), rtol=0, atol=0)
    before = a(n_id).detach()
    a.reset_parameters()
    assert not torch.equal(a(n_id), before)
    assert a.out_channels == 3 and a.num_entities == 5


def test_text_repr(text):
    assert repr(text) == "TextNodeFeatures(4, 3, num_entities=5)"
