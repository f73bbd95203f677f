"""Adapter cards: save_pretrained writes README.md from kgpeft_config.json, and `kgpeft info` shows it."""

import json

import pytest
from tiny_models import ARCHITECTURES, build_model, tiny_kg, tiny_tokenizer

from kgpeft import KGLoraConfig, get_kg_peft_model
from kgpeft.card import adapter_info, render_card
from kgpeft.checkpoint import library_versions
from kgpeft.cli import main

LLAMA = next(a for a in ARCHITECTURES if a[0] == "llama")


@pytest.fixture
def model():
    _, config, auto = LLAMA
    kg = tiny_kg()
    kg.info["name"] = "tiny"
    return get_kg_peft_model(
        build_model(config, auto), KGLoraConfig(r=4, graph_channels=16, knowledge_mode="memory"), kg, tiny_tokenizer()
    )


def test_card_names_the_kg_fingerprint_and_loads_back_into_info(model, tmp_path, capsys):
    model.card.update(
        base_model="org/tiny-llama",
        task="hypernym_qa",
        training={"steps": 12, "learning_rate": 0.001},
        results={"correct": {"exact_match": 0.85, "token_f1": 0.9}, "shuffled": {"exact_match": 0.2}},
    )
    model.save_pretrained(tmp_path / "adapter")
    card = (tmp_path / "adapter" / "README.md").read_text()
    fingerprint = model.kg.fingerprint
    assert card.startswith("---\nlibrary_name: peft\nbase_model: org/tiny-llama\n")  # peft's card, replaced
    assert f"| KG fingerprint | `{fingerprint}` |" in card
    assert "tiny: 9 entities, 3 relations" in card and "| task | hypernym_qa |" in card
    assert "| default (active) | memory | 4 |" in card and "- steps: 12" in card
    assert "| correct | 0.85 | 0.90 |" in card and "| shuffled | 0.20 | - |" in card
    assert f"{tmp_path / 'adapter'}" in card and ".tmp" not in card  # the load lines name the final folder
    versions = library_versions()
    assert f"torch {versions['torch']}, transformers {versions['transformers']}, peft {versions['peft']}" in card

    assert main(["info", str(tmp_path / "adapter")]) == 0
    assert capsys.readouterr().out == card
    assert main(["info", str(tmp_path / "adapter"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == adapter_info(tmp_path / "adapter")
    assert info["knowledge_graph"] == {
        "name": "tiny",
        "num_entities": 9,
        "num_relations": 3,
        "num_triples": model.kg.num_triples,
        "fingerprint": fingerprint,
    }
    assert info["adapters"]["default"]["knowledge_mode"] == "memory"
    assert info["results"]["correct"]["exact_match"] == 0.85
    assert info["versions"] == versions and versions["torch-geometric"] != "not installed"
    assert render_card(info) == card


def test_a_card_without_job_data_says_so(model, tmp_path):
    model.save_pretrained(tmp_path / "adapter")
    card = (tmp_path / "adapter" / "README.md").read_text()
    assert "| task | (not recorded) |" in card and card.count("Not recorded.") == 2
    assert model.kg.fingerprint in card


def test_a_card_that_is_not_json_is_refused_before_writing(model, tmp_path):
    model.card["results"] = {"correct": object()}
    with pytest.raises(TypeError, match="JSON values"):
        model.save_pretrained(tmp_path / "adapter")
    assert not (tmp_path / "adapter").exists()


def test_info_on_a_folder_without_an_adapter(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "missing kgpeft_config.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ({"num_entities": 9}, "lacks `kg_size.num_relations`"),
        ({"num_entities": 9, "num_relation": 3}, "lacks `kg_size.num_relations` and holds the unknown key"),
    ],
)
def test_info_on_a_hand_edited_kg_size_is_one_line(model, tmp_path, capsys, size, message):
    model.save_pretrained(tmp_path / "adapter")
    file = tmp_path / "adapter" / "kgpeft_config.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), "kg_size": size}))
    assert main(["info", str(tmp_path / "adapter")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kgpeft info: error: `kg_size` in {file} {message}") and err.count("\n") == 1, err
