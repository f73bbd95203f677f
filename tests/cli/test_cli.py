"""The command line end to end, on a tiny model, KG and task written by the test."""

import json
import re

import pytest
import yaml
from tiny_models import ARCHITECTURES, build_model, tiny_tokenizer

from kgpeft.cli import main

ROWS = [
    {"text": "the dog", "answer": "animal", "split": "train"},
    {"text": "the cat", "answer": "animal", "split": "train"},
    {"text": "the bank", "answer": "money", "split": "train"},
    {"text": "a tree", "answer": "river", "split": "valid"},
    {"text": "the dog", "answer": "pet", "split": "test"},
    {"text": "a bank", "answer": "money", "split": "test"},
]


@pytest.fixture
def job(tmp_path):
    _, config, auto = ARCHITECTURES[1]  # llama
    build_model(config, auto).save_pretrained(tmp_path / "model")
    tiny_tokenizer().save_pretrained(tmp_path / "model")
    (tmp_path / "kg.tsv").write_text("dog\tis_a\tanimal\ncat\tis_a\tanimal\ndog\tis_a\tpet\nbank\tholds\tmoney\n")
    (tmp_path / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    values = {
        "model": str(tmp_path / "model"),
        "kg": str(tmp_path / "kg.tsv"),
        "task": str(tmp_path / "task.jsonl"),
        "max_new_tokens": 2,
        "adapter": {"r": 4, "graph_channels": 16, "knowledge_mode": "cross"},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 4,
            "per_device_train_batch_size": 2,
            "learning_rate": 0.01,
            "progress_bar": False,
            "log_with": [],
        },
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(values))
    return path, values


def test_train_then_evaluate_and_predict(job, capsys):
    path, values = job
    assert main(["train", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "trainable params" in out and '"exact_match"' in out
    adapter = f"{values['training']['output_dir']}/kg-lora/final"
    assert main(["evaluate", "--config", str(path), "--adapter", adapter]) == 0
    metrics = json.loads(capsys.readouterr().out)["test"]["correct"]
    assert set(metrics) == {"exact_match", "token_f1", "prompt_tokens"} and 0 <= metrics["exact_match"] <= 1
    assert main(["predict", "--config", str(path), "--adapter", adapter, "the dog"]) == 0
    out = capsys.readouterr().out
    assert "linked 'dog' -> dog [dog]" in out and "fact: dog is_a animal" in out.replace(" is a ", " is_a ")
    assert "answer:" in out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lerning_rate": 1}, "unknown key 'lerning_rate' in job config; known keys: model, kg"),
        ({"max_length": "long"}, "`max_length` in job config should be int, got str 'long'"),
        ({"max_length": 0}, "`max_length` should be a positive integer, got 0"),
        ({"task_type": "regression"}, "`task_type` should be one of .*, got 'regression'"),
        ({"adapter": {"rank": 4}}, "unknown key 'rank' in adapter; known keys: r, lora_alpha"),
        ({"adapter": {"r": 0}}, "adapter: `r` should be a positive integer, got 0"),
        (
            {"adapter": {"knowledge_mode": "graph"}},
            "`knowledge_mode` in adapter should be 'token' | 'cross' | 'prefix'",
        ),
        ({"adapter": [4]}, "`adapter` in job config should be a mapping, got list"),
        ({"training": {"lerning_rate": 0.1}}, "unknown key 'lerning_rate' in training; did you mean 'learning_rate'"),
        ({"training": {"max_steps": -5}}, "training: `max_steps` should be a positive integer, got -5"),
        ({"training": {"learning_rate": "fast"}}, "`learning_rate` in training should be float, got str 'fast'"),
        ({"distillation": {"weight": 0.5}}, "the key 'teacher' is required in distillation"),
        ({"distillation": {"teacher": "t.safetensors", "temperature": 0}}, "distillation: `temperature` should be"),
        ({"retrieval": {"fanout": 3}}, "unknown key 'fanout' in retrieval; known keys: num_neighbors"),
        ({"retrieval": {"max_nodes": 0}}, "retrieval: `max_nodes` should be a positive integer, got 0"),
        ({"selection": {"objective": "both"}}, "selection: `objective` should be one of"),
        ({"variants": [{"name": "a", "adapter": "gru"}]}, r"variants\[0\]: `adapter` should be one of"),
        ({"controls": ["inverted"]}, "`controls` should be a non-empty list"),
    ],
)
@pytest.mark.parametrize("command", ["train", "demo"])
def test_bad_job_config_names_the_key(job, capsys, change, message, command):
    path, values = job
    path.write_text(yaml.safe_dump({**values, **change}))
    assert main([command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kgpeft {command}: error: {path}: ") and err.count("\n") == 1, err
    assert re.search(message, err), err


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a\n- b\n", "expected a mapping of settings, got list"), ("model: [\n", "cannot read config")],
)
def test_unreadable_job_config_is_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    for command in (["train"], ["evaluate", "--adapter", str(tmp_path)], ["predict", "--adapter", str(tmp_path)]):
        assert main([*command, "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"kgpeft {command[0]}: error: {path}: {message}") and err.count("\n") == 1, err


def test_bad_task_row_names_the_line(job, tmp_path, capsys):
    path, _ = job
    (tmp_path / "task.jsonl").write_text('{"text": "the dog", "answer": "animal", "split": "train"}\n{"answer": 1}\n')
    assert main(["train", "--config", str(path)]) == 2
    assert "Row 2: `text` should be a non-empty string" in capsys.readouterr().err


def test_demo_config_keys_are_checked(tmp_path, capsys):
    bad = tmp_path / "demo.yaml"
    bad.write_text("max_stepz: 3\n")
    assert main(["demo", "--config", str(bad)]) == 2
    assert "unknown key 'max_stepz'" in capsys.readouterr().err
    bad.write_text("model: m\ntraining: {max_steps: many}\n")
    assert main(["demo", "--config", str(bad)]) == 2
    assert "`max_steps` in training should be int or None, got str 'many'" in capsys.readouterr().err
    assert main(["demo", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml does not exist" in capsys.readouterr().err


def test_link_prints_mentions_and_facts(tmp_path, capsys):
    config = tmp_path / "link.yaml"
    config.write_text("kg: nations\nmax_facts: 2\nnum_neighbors: [4]\n")
    assert main(["link", "--config", str(config), "usa and uk sign a treaty"]) == 0
    out = capsys.readouterr().out
    assert "'usa'" in out and "'uk'" in out
    assert "subgraph:" in out and out.count(" --") == 2


def test_multiple_choice_job(job, tmp_path, capsys):
    path, values = job
    rows = [
        {"text": "the dog", "answer": "animal", "choices": ["animal", "money"], "label": 0, "split": "train"},
        {"text": "the bank", "answer": "money", "choices": ["animal", "money", "river"], "label": 1, "split": "test"},
        {"text": "the cat", "answer": "pet", "choices": ["tree", "pet"], "label": 1, "split": "test"},
    ]
    (tmp_path / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path.write_text(yaml.safe_dump({**values, "task_type": "multiple_choice"}))
    assert main(["train", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads(out[out.index('{\n  "test"') :])["test"]["kg-lora"]["correct"]
    assert set(metrics) == {"accuracy", "prompt_tokens"} and metrics["accuracy"] in (0.0, 0.5, 1.0)
