"""The fact pass packed (no padding between the rows) gives the padded pass's keys and values, or runs padded."""

import pytest
import torch
import transformers.masking_utils
from tiny_models import ARCHITECTURES, MORE_ARCHITECTURES, build_model

import kgpeft.tuners.fact_memory as fact_memory
from kgpeft.tuners.fact_memory import encode_memory, fact_encoder
from kgpeft.tuners.memory import attention_layout
from kgpeft.tuners.packing import Packing, pack

#: every architecture whose facts the memory encodes (Whisper's encoder reads audio features)
ARCHS = [pytest.param(*a, id=a[0]) for a in ARCHITECTURES + MORE_ARCHITECTURES if a[0] != "whisper"]
#: those that run padded: their masks do not follow a packed sequence (ALiBi from the mask, T5's and BART's encoders,
#: DistilBERT, DeBERTa) or their positions are counted from the mask (OPT; RoBERTa without given positions)
PADDED = {"opt", "distilbert", "t5", "bart", "deberta_v2", "bloom", ("roberta", False)}


def test_rows_are_laid_end_to_end_their_positions_from_0_and_laid_back():
    ids = torch.tensor([[5, 6, 0, 7], [8, 0, 0, 0], [9, 10, 11, 0]])
    mask = ids != 0
    packing = Packing.of(ids, mask, capacity=4)  # rows of 3, 1, 3 tokens: [3 + 1], [3] (+ a tail of 1)
    assert packing.input_ids.tolist() == [[5, 6, 7, 8], [9, 10, 11, 0]]
    assert packing.position_ids.tolist() == [[0, 1, 2, 0], [0, 1, 2, 0]]
    states = torch.arange(8.0).view(2, 4, 1) + 1
    assert packing.unpack(states, 3, 4).squeeze(-1).tolist() == [[1, 2, 0, 3], [4, 0, 0, 0], [5, 6, 7, 0]]


def test_a_row_longer_than_the_capacity_is_a_sequence_of_its_own():
    ids = torch.arange(1, 13).view(2, 6)
    packing = Packing.of(ids, torch.ones(2, 6, dtype=torch.bool), capacity=4)
    assert packing.input_ids.tolist() == ids.tolist()


def _facts(seed: int = 0):
    """Four samples' two facts of 1 to 4 tokens (right-padded), one sample with a single fact."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 60, (4, 2, 4), generator=g)
    mask = torch.arange(4) < torch.randint(1, 5, (4, 2, 1), generator=g)
    mask[3, 1] = False
    return ids, mask


def _llama():
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "llama")
    return build_model(config, auto)


def _unpacked(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setattr(fact_memory, "pack", lambda encoder, inputs: None)
        return encode_memory(*args, **kwargs)


@pytest.mark.parametrize("together", [False, True], ids=["each", "together"])
@pytest.mark.parametrize("name, config, auto", ARCHS)
def test_a_packed_fact_pass_gives_the_padded_ones_keys_and_values(monkeypatch, name, config, auto, together):
    model = build_model(config, auto)
    sites = attention_layout(model)
    ids, mask = _facts()
    packed = encode_memory(model, sites, ids, mask, together=together)
    padded = _unpacked(monkeypatch, model, sites, ids, mask, together=together)
    real = packed.mask
    for a, b in zip(packed.keys + packed.values, padded.keys + padded.values, strict=True):
        torch.testing.assert_close(a[real], b[real], rtol=1e-4, atol=1e-5)
    verdicts = list(fact_encoder(model).__dict__["_kgpeft_packing"].values())
    assert verdicts == [name not in PADDED and (name, together) not in PADDED]


def test_a_trained_fact_pass_packed_passes_the_padded_ones_gradient(monkeypatch):
    model = _llama()
    sites = attention_layout(model)
    ids, mask = _facts(1)
    grads = []
    for run in (encode_memory, lambda *a, **k: _unpacked(monkeypatch, *a, **k)):
        model.zero_grad()
        memory = run(model, sites, ids, mask, grad=True, together=True)
        real = memory.mask[..., None, None]  # what the padding holds is never read
        weight = torch.linspace(-1, 1, memory.keys[-1].numel()).view_as(memory.keys[-1]) * real
        sum((k * weight).sum() + (v * real).sum() for k, v in zip(memory.keys, memory.values, strict=True)).backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", ["llama", "bert"])
def test_a_model_whose_packed_rows_read_each_other_runs_padded(monkeypatch, name, dtype):
    """In bfloat16 a tiny BERT's rows that read each other move its states by 1.4%, within rounding: the change of
    one row's tokens, which leaves the other rows' states exactly as they were when packing holds, tells."""
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == name)
    encoder = fact_encoder(build_model(config, auto)).to(dtype)
    ids, mask = _facts()
    inputs = {"input_ids": ids.view(8, 4), "attention_mask": mask.view(8, 4).long(), "use_cache": False}
    keep = mask.view(8, 4).any(-1)
    inputs = {k: v[keep] if torch.is_tensor(v) else v for k, v in inputs.items()}
    assert pack(encoder, inputs) is not None
    del encoder._kgpeft_packing
    monkeypatch.setattr(transformers.masking_utils, "find_packed_sequence_indices", lambda positions: None)
    assert pack(encoder, inputs) is None  # one mask over the whole sequence: the rows mix
    assert encoder._kgpeft_packing == {("sdpa", False): False}
    monkeypatch.undo()
    assert pack(encoder, inputs) is None  # the verdict is kept: no second check


def test_rows_of_one_token_repeated_are_run_padded_and_decide_nothing():
    encoder = fact_encoder(_llama())
    ids = torch.tensor([[5, 5, 5], [5, 0, 0]])
    inputs = {"input_ids": ids, "attention_mask": (ids != 0).long(), "use_cache": False}
    assert pack(encoder, inputs) is None
    assert encoder.__dict__.get("_kgpeft_packing", {}) == {}


def test_left_padded_rows_without_positions_run_padded():
    encoder = fact_encoder(_llama())
    ids = torch.tensor([[0, 0, 5, 6], [0, 7, 8, 9]])
    inputs = {"input_ids": ids, "attention_mask": (ids != 0).long(), "use_cache": False}
    assert pack(encoder, inputs) is None
    assert pack(encoder, {**inputs, "position_ids": (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)})
