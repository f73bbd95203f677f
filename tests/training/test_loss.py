"""The loss with the head run only at labelled positions equals the model's own, value and gradients."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tiny_models import ARCHITECTURES, build_model, make_inputs, make_knowledge, tiny_kg, tiny_tokenizer
from torch import nn

from kgpeft.model import get_kg_peft_model
from kgpeft.selection import answer_log_likelihoods
from kgpeft.training.loss import causal_lm_head, label_log_likelihoods, label_positions_loss
from kgpeft.tuners import KGLoraConfig
from kgpeft.tuners.targets import resolve_target_modules

CAUSAL = [a for a in ARCHITECTURES if a[2].__name__ == "AutoModelForCausalLM"]
OTHER = [a for a in ARCHITECTURES if a[2].__name__ != "AutoModelForCausalLM"]
LLAMA = next(a for a in ARCHITECTURES if a[0] == "llama")


def _labelled(batch_size=3, seq_len=8):
    inputs = make_inputs(batch_size, seq_len)
    inputs["attention_mask"][0, -2:] = 0  # right padding on one row
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[0, 3:6] = inputs["input_ids"][0, 3:6]
    labels[1, 5:8] = inputs["input_ids"][1, 5:8]
    labels[-1, 1] = inputs["input_ids"][-1, 1]
    return {**inputs, "labels": labels}


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def _both(model, batch, head=None):
    torch.manual_seed(3)  # the same dropout masks in both runs
    model.zero_grad()
    full = model(**batch).loss
    full.backward()
    full_grads = _grads(model)
    torch.manual_seed(3)
    model.zero_grad()
    sparse = label_positions_loss(model, batch, head)
    sparse.backward()
    return full, full_grads, sparse, _grads(model)


@pytest.mark.parametrize("name, config, auto_class", CAUSAL, ids=[a[0] for a in CAUSAL])
def test_equals_the_models_own_loss_and_gradients(name, config, auto_class):
    base = build_model(config, auto_class)
    targets = resolve_target_modules(base, None)  # peft has no default targets for some (Phi-3)
    model = get_peft_model(base, LoraConfig(r=4, init_lora_weights=False, target_modules=targets))
    model.train()
    head = causal_lm_head(model)
    assert head is model.get_output_embeddings()
    full, full_grads, sparse, sparse_grads = _both(model, _labelled())
    torch.testing.assert_close(sparse, full, rtol=1e-5, atol=1e-6)
    assert full_grads.keys() == sparse_grads.keys() and full_grads
    for key, grad in full_grads.items():
        assert grad.abs().sum() > 0, key
        torch.testing.assert_close(sparse_grads[key], grad, rtol=1e-4, atol=1e-6, msg=key)
    assert not head._forward_pre_hooks  # the hook is gone after the call


@pytest.mark.parametrize("name, config, auto_class", CAUSAL, ids=[a[0] for a in CAUSAL])
@torch.no_grad()
def test_log_likelihoods_per_row_equal_the_full_logits(name, config, auto_class):
    model = build_model(config, auto_class)
    batch = _labelled()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    log_probs = logits[:, :-1].log_softmax(-1)
    target = batch["labels"][:, 1:]
    expected = (log_probs.gather(-1, target.clamp(min=0)[..., None])[..., 0] * (target != -100)).sum(-1)
    torch.testing.assert_close(label_log_likelihoods(model, batch), expected, rtol=1e-5, atol=1e-5)


def test_answer_log_likelihoods_of_prompt_answer_rows():
    model, tokenizer = build_model(*LLAMA[1:]), tiny_tokenizer()
    rows = [("the dog", "animal"), ("a big cat is a", "pet animal"), ("tree", "river")]
    got = answer_log_likelihoods(model, tokenizer, rows, batch_size=2)
    for (prompt, answer), value in zip(rows, got, strict=True):
        ids = tokenizer(prompt)["input_ids"] + tokenizer(" " + answer, add_special_tokens=False)["input_ids"]
        n = len(tokenizer(prompt)["input_ids"])
        log_probs = model(input_ids=torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        expected = sum(log_probs[t - 1, ids[t]] for t in range(n, len(ids)))
        assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_kgpeft_model_with_knowledge_and_relation_loss():
    kg = tiny_kg()
    model = get_kg_peft_model(
        build_model(*LLAMA[1:]),
        KGLoraConfig(knowledge_mode="token", r=4, graph_channels=8, relation_loss_weight=0.5),
        kg,
        tiny_tokenizer(),
    )
    model.train()
    batch = _labelled(batch_size=2)
    batch["knowledge"] = make_knowledge(kg, [[0], [4]], [[0, -1, -1, -1, -1, -1, -1, -1], [4] + [-1] * 7])
    head = causal_lm_head(model)
    assert head is model.base_model.get_output_embeddings()
    torch.manual_seed(3)  # the relation-aware loss samples held-out edges and negatives
    model.zero_grad()
    full = model(**batch)
    full.loss.backward()
    full_grads = _grads(model)
    torch.manual_seed(3)
    model.zero_grad()
    sparse = label_positions_loss(model, batch, head)
    sparse.backward()
    assert full.relation_loss.item() > 0
    assert full.auxiliary_loss.item() == pytest.approx(0.5 * full.relation_loss.item())
    torch.testing.assert_close(sparse, full.loss, rtol=1e-5, atol=1e-6)
    graph_grads = [k for k in full_grads if "graph_encoders" in k]
    assert graph_grads
    for key, grad in full_grads.items():
        torch.testing.assert_close(_grads(model)[key], grad, rtol=1e-4, atol=1e-6, msg=key)


@pytest.mark.parametrize("name, config, auto_class", OTHER, ids=[a[0] for a in OTHER])
def test_other_models_keep_their_own_loss(name, config, auto_class):
    model = build_model(config, auto_class)
    assert causal_lm_head(model) is None
    assert causal_lm_head(get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))) is None
    assert label_positions_loss(model, _labelled()) is None


def test_not_applied_without_token_labels_or_with_distillation():
    model = build_model(*LLAMA[1:])
    batch = _labelled()
    assert label_positions_loss(model, {k: v for k, v in batch.items() if k != "labels"}) is None
    assert label_positions_loss(model, {**batch, "labels": batch["labels"][:, 0]}) is None
    assert label_positions_loss(model, {**batch, "distillation": object()}) is None


def test_a_model_that_changes_the_sequence_length_is_refused_and_left_clean():
    class Prepends(nn.Module):  # a causal LM whose head sees one extra position
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            ids = torch.cat([input_ids[:, :1], input_ids], 1)
            return self.inner(input_ids=ids, attention_mask=torch.cat([attention_mask[:, :1], attention_mask], 1))

    inner = build_model(*LLAMA[1:])
    head = inner.get_output_embeddings()
    with pytest.raises(RuntimeError, match=r"hidden states of shape \(3, 9, 32\), not \(batch, 8, hidden\)"):
        label_positions_loss(Prepends(inner), _labelled(), head)
    assert not head._forward_pre_hooks


def test_train_runs_the_head_only_at_labelled_positions(tmp_path):
    from accelerate.state import AcceleratorState, GradientState

    from kgpeft.training.config import TrainingConfig
    from kgpeft.training.trainer import train

    model = get_peft_model(build_model(*LLAMA[1:]), LoraConfig(r=4))
    batch = _labelled(batch_size=2)
    samples = [{k: v[i] for k, v in batch.items()} for i in range(2)]
    seen = []
    model.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    config = TrainingConfig(
        output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2, progress_bar=False
    )
    try:
        train(model, samples, lambda rows: {k: torch.stack([r[k] for r in rows]) for k in rows[0]}, config)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert seen == [(1, labelled, 32)] * 2
