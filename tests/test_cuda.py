"""On a CUDA GPU: KG-LoRA under bf16 autocast, 4-bit (QLoRA-style) bases and gradient checkpointing.

Skipped without a GPU (see conftest.py); ``benchmarks/device_check.sh`` runs them on one.
"""

import importlib.util
from pathlib import Path

import pytest
import torch
from tiny_models import ARCHITECTURES, build_model, make_inputs, make_knowledge, tiny_kg

from kgpeft import KGLoraConfig, get_kg_peft_model
from kgpeft.training.config import TrainingConfig
from kgpeft.training.trainer import train

pytestmark = pytest.mark.cuda
LLAMA = next(a for a in ARCHITECTURES if a[0] == "llama")
_spec = importlib.util.spec_from_file_location("ddp_script", Path(__file__).parent / "training" / "ddp_script.py")
ddp_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ddp_script)


def _knowledge(kg):
    tokens = torch.full((2, 6), -1)
    tokens[0, 1], tokens[1, 2] = 0, 4
    return make_knowledge(kg, [[0], [4]], tokens)


@pytest.mark.parametrize("mode", ["token", "cross", "prefix"])
def test_fresh_adapter_is_the_base_model_on_cuda(kg, tokenizer, mode):
    _, config, auto = LLAMA
    base = build_model(config, auto).cuda()
    inputs = {k: v.cuda() for k, v in make_inputs().items()}
    with torch.no_grad():
        expected = base(**inputs).logits
    model = get_kg_peft_model(base, KGLoraConfig(r=4, graph_channels=16, knowledge_mode=mode), kg, tokenizer)
    with torch.no_grad():
        got = model(**inputs, knowledge=_knowledge(kg).to("cuda")).logits
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_kg_lora_trains_in_bf16_on_cuda(tmp_path, checkpointing):
    model = ddp_script.make_model(lora_dropout=0.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    config = TrainingConfig(
        output_dir=str(tmp_path / "run"),
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        mixed_precision="bf16",
        gradient_checkpointing=checkpointing,
        progress_bar=False,
        log_with=[],
    )
    result = train(model, ddp_script.make_dataset(8), ddp_script.collate, config)
    assert torch.isfinite(torch.tensor(result.train_loss))
    assert next(model.parameters()).is_cuda
    changed = [n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p.cpu(), before[n])]
    assert any(n.startswith(("graph_encoders.", "fusions.")) for n in changed), "the knowledge path trained"


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_4bit_base_under_kg_lora_trains_and_fresh_equals_base():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kgpeft.pipeline.base_model import quantized_loading
    from kgpeft.pretrained import packaged_model_path

    path = packaged_model_path("SmolLM2-135M-Instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    base = AutoModelForCausalLM.from_pretrained(path, **quantized_loading("4bit"))
    assert "4bit" in type(base.model.layers[0].self_attn.q_proj).__name__.lower()
    kg = tiny_kg()
    ids = tokenizer(["the dog is a", "a bank is near"], return_tensors="pt").input_ids[:, :4].cuda()
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.no_grad():
        expected = base(**inputs).logits.float()
    model = get_kg_peft_model(base, KGLoraConfig(r=8, graph_channels=32, knowledge_mode="token"), kg, tokenizer)
    tokens = torch.full(ids.shape, -1)
    tokens[0, 1], tokens[1, 1] = 0, 4
    knowledge = make_knowledge(kg, [[0], [4]], tokens).to("cuda")
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs, knowledge=knowledge).logits.float(), expected)
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(**inputs, knowledge=knowledge, labels=ids).loss
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
