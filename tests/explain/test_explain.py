"""Explanations: leave-one-out finds the one fact that answers, the JSON round-trips, the picture is drawn."""

import json

import pytest
import torch

from kgpeft import KGLoraConfig, get_kg_peft_model
from kgpeft.data import KnowledgeCollator, KnowledgeDataset
from kgpeft.explain import Explanation, explain, plot_explanation
from kgpeft.inference import generate_texts, target_log_likelihoods
from kgpeft.retrieval import RetrievalConfig
from kgpeft.tasks import TaskExample, planted_facts

MEMORY = KGLoraConfig(r=8, knowledge_mode="memory", target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def _train(model, data, steps=300, lr=1e-2, seed=0):
    """A few hundred Adam steps on random batches of 16."""
    g = torch.Generator().manual_seed(seed)
    collate = KnowledgeCollator(data.tokenizer.pad_token_id)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        batch = collate([data[int(i)] for i in torch.randint(len(data), (16,), generator=g)])
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.fixture(scope="module")
def planted(seed):
    """A memory adapter trained on the planted-fact task, and the held-out questions."""
    task = planted_facts(seed=seed)
    retrieval = RetrievalConfig(num_neighbors=[-1], max_nodes=8, memory_facts=3)
    train = KnowledgeDataset(task.splits["train"], task.tokenizer, task.kg, retrieval=retrieval)
    test = KnowledgeDataset(task.splits["test"], task.tokenizer, task.kg, retrieval=retrieval)
    model = _train(get_kg_peft_model(task.model(seed), MEMORY, task.kg, task.tokenizer), train, seed=seed)
    return task, model, test


def test_the_planted_fact_is_first_by_leave_one_out(planted):
    task, model, test = planted
    answers = generate_texts(model, test.ablated([(i, None, ()) for i in range(len(test))]), max_new_tokens=1)
    gold = [e.answer for e in test.examples]
    assert sum(a == g for a, g in zip(answers, gold, strict=True)) >= 0.9 * len(gold), "it learned to copy"
    explanations = explain(model, test, answers=gold)
    for e in explanations:
        top = e.top_facts(1)[0]
        assert top.relation == "color", e.summary()
        colour = task.kg.entity_id(e.answer)
        assert colour in {n.entity for n in e.top_nodes(2)}, e.summary()
        assert set(e.methods) == {"leave_one_out", "gradient_x_input", "attention"}  # no scorer: no selection
        assert len(top.attention_per_layer) == 2 and top.attention == pytest.approx(sum(top.attention_per_layer))
    colour = [e.top_facts(1)[0].leave_one_out for e in explanations]
    distractors = [f.leave_one_out for e in explanations for f in e.facts if f.relation == "near"]
    assert sum(colour) / len(colour) > 2.0 > sum(distractors) / len(distractors)  # without it, a guess


def test_leave_one_out_is_the_rerun_without_the_fact(planted):
    _, model, test = planted
    e = explain(model, test, [0], answers=[test.examples[0].answer])[0]
    fact = e.top_facts(1)[0]

    rows = test.ablated([(0, None, ()), (0, None, (fact.triple,))], [e.answer] * 2)
    assert rows.features[1]["fact_ids"] == rows.features[0]["fact_ids"][1:], "the fact left the memory"
    full, without = target_log_likelihoods(model, rows).tolist()
    assert fact.leave_one_out == pytest.approx(full - without, abs=1e-4)
    assert e.answer_log_prob == pytest.approx(full, abs=1e-4)


def test_explanation_json_round_trips_and_the_picture_is_written(planted, tmp_path):
    _, model, test = planted
    e = explain(model, test, [1])[0]  # the generated answer
    again = Explanation.from_json(e.to_json())
    assert again == e
    assert json.loads(e.to_json())["nodes"][0].keys() >= {"leave_one_out", "attention", "entity", "label"}
    path = tmp_path / "explanation.png"
    plot_explanation(e, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_a_text_without_links_says_so(planted):
    task, model, _ = planted
    data = KnowledgeDataset(
        [TaskExample("the is", answer="red")], task.tokenizer, task.kg, retrieval=RetrievalConfig(memory_facts=2)
    )
    (e,) = explain(model, data)
    assert e.note.startswith("no entity is linked") and not e.nodes and not e.facts and not e.linked
    assert Explanation.from_json(e.to_json()) == e


@pytest.mark.parametrize("mode", ["token", "cross"])
def test_attention_is_absent_where_the_design_has_none(mode, kg, tokenizer):
    from tiny_models import ARCHITECTURES, build_model

    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "llama")
    torch.manual_seed(0)
    model = get_kg_peft_model(
        build_model(config, auto), KGLoraConfig(r=4, knowledge_mode=mode, graph_channels=8), kg, tokenizer
    )
    for p in model.parameters():  # a trained-looking adapter: B is not zero, so knowledge moves the answer
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.5)
    data = KnowledgeDataset(
        [TaskExample("the dog", answer="animal")], tokenizer, kg, retrieval=RetrievalConfig(num_neighbors=[-1, -1])
    )
    (e,) = explain(model, data)
    assert {n.label for n in e.nodes} == {"dog", "animal", "pet", "cat"}
    assert {f.read_as for f in e.facts} == {"graph"} and len(e.facts) == 4  # its edges, each triple once
    node = json.loads(e.to_json())["nodes"][0]
    if mode == "token":
        assert "attention" not in node and all(n.attention is None for n in e.nodes)
        assert e.methods == ["leave_one_out", "gradient_x_input"]
    else:
        assert len(node["attention_per_layer"]) == 8  # q, k, v, o of 2 layers
    assert any(abs(n.gradient_x_input) > 0 for n in e.nodes)
    assert any(abs(n.leave_one_out) > 1e-4 for n in e.nodes)
