"""Adapters saved before the tuner became one file per knowledge mode load unchanged and compute the same.

``fixtures/main_adapters/`` was written by kgpeft at f9b6c76 (before issue 25): for each knowledge
mode a tiny model with randomised trainable weights, saved with ``save_pretrained``, and in
``expected.json`` the model's state-dict keys, trainable parameter names, knowledge weight keys
and logits for the inputs below.
"""

import json
from pathlib import Path

import pytest
import torch
from tiny_models import ARCHITECTURES, build_model, make_inputs, make_knowledge

from kgpeft import KGLoraConfig, get_kg_peft_model
from kgpeft.model import KGPeftModel

FIXTURES = Path(__file__).parent / "fixtures" / "main_adapters"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
ARCH = {a[0]: a for a in ARCHITECTURES}
CASES = {
    "token": ("llama", {"knowledge_mode": "token", "relation_loss_weight": 0.5}),
    "cross": ("llama", {"knowledge_mode": "cross"}),
    "prefix": ("llama", {"knowledge_mode": "prefix"}),
    "prefix_gpt2": ("gpt2", {"knowledge_mode": "prefix"}),
    "memory": ("llama", {"knowledge_mode": "memory"}),
}


def _knowledge(kg):
    knowledge = make_knowledge(kg, [[0], [4]], [[0, -1, 2, -1, -1, -1], [-1, 4, -1, -1, 5, -1]])
    knowledge.fact_ids = torch.tensor([[[2, 13, 4], [3, 13, 5]], [[6, 7, 0], [0, 0, 0]]])
    knowledge.fact_mask = knowledge.fact_ids != 0
    return knowledge


@pytest.mark.parametrize("case", sorted(CASES))
def test_names_of_a_new_model_are_those_main_saved(case, kg, tokenizer):
    arch, settings = CASES[case]
    model = get_kg_peft_model(
        build_model(*ARCH[arch][1:]), KGLoraConfig(r=4, graph_channels=8, **settings), kg, tokenizer
    )
    expected = EXPECTED[case]
    assert list(model.state_dict()) == expected["state_dict_keys"]
    assert [n for n, p in model.named_parameters() if p.requires_grad] == expected["trainable_parameters"]
    assert list(model.knowledge_state_dict()) == expected["knowledge_keys"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_adapter_saved_by_main_loads_and_computes_the_same(case, kg, tokenizer):
    arch, _ = CASES[case]
    model = KGPeftModel.from_pretrained(build_model(*ARCH[arch][1:]), FIXTURES / case, kg, tokenizer)
    with torch.no_grad():
        logits = model(**make_inputs(), knowledge=_knowledge(kg)).logits
    # bit-equal on the machine that wrote them; a tolerance for other CPUs' float rounding (wrong weights
    # move the logits by far more)
    torch.testing.assert_close(logits.flatten(), torch.tensor(EXPECTED[case]["logits"]), rtol=1e-5, atol=1e-5)
