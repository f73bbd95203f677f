"""The command line end to end, on a tiny model, KG and task written by the test."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

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


def test_train_then_evaluate_predict_and_explain(job, capsys, tmp_path):
    path, values = job
    assert main(["train", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "trainable params" in out and '"exact_match"' in out
    adapter = f"{values['training']['output_dir']}/kg-lora/final"
    assert main(["evaluate", "--config", str(path), "--adapter", adapter]) == 0
    metrics = json.loads(capsys.readouterr().out)["test"]["correct"]
    assert set(metrics) == {"exact_match", "token_f1", "prompt_tokens", "truncation"}
    assert 0 <= metrics["exact_match"] <= 1 and metrics["truncation"]["prompts"] == 0
    assert main(["predict", "--config", str(path), "--adapter", adapter, "the dog"]) == 0
    out = capsys.readouterr().out
    assert "linked 'dog' -> dog [dog]" in out and "fact: dog is_a animal" in out.replace(" is a ", " is_a ")
    assert "answer:" in out
    plot = tmp_path / "why.png"
    argv = ["explain", "--config", str(path), "--adapter", adapter, "--answer", "pet", "--json", "--plot", str(plot)]
    assert main([*argv, "the dog"]) == 0
    (explanation,) = json.loads(capsys.readouterr().out)
    assert explanation["answer"] == "pet" and explanation["knowledge_mode"] == "cross"
    assert {n["label"] for n in explanation["nodes"]} == {"dog", "animal", "pet", "cat"}
    assert all("attention_per_layer" in n and "leave_one_out" in n for n in explanation["nodes"])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert main(["explain", "--config", str(path), "--adapter", adapter, "the dog", "nothing linked here"]) == 0
    out = capsys.readouterr().out
    assert "linked 'dog' -> dog [dog]" in out and "no entity is linked in the text" in out

    # the job's saved adapter carries a card with the job's task, settings and test results per control
    saved = Path(values["training"]["output_dir"]) / "kg-lora" / "adapter"
    results = json.loads((saved.parent.parent / "results.json").read_text())
    assert main(["info", str(saved), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["task"] == values["task"] and info["training"]["steps"] == 4
    assert "correct" in info["results"]  # `kgpeft train` evaluates the correct subgraph only
    assert 0 <= info["results"]["correct"]["exact_match"] <= 1
    assert main(["info", str(saved)]) == 0
    card = capsys.readouterr().out
    assert card == (saved / "README.md").read_text() and "| correct |" in card
    assert info["knowledge_graph"]["fingerprint"] in card

    # the adapter folder alone, elsewhere, answers as the job did: no --config, the base model its card names
    shared = shutil.copytree(saved, tmp_path / "shared")
    shutil.rmtree(values["training"]["output_dir"])
    assert main(["predict", "--adapter", str(shared), "--kg", values["kg"], "the dog"]) == 0
    out = capsys.readouterr().out
    assert "linked 'dog' -> dog [dog]" in out
    assert out.strip().endswith(f"answer: {results['variants'][0]['predictions']['correct'][0]}")


def test_demo_prints_explanations_and_draws_one(job, capsys):
    path, values = job
    # more held-out questions than the two the demo explains, as in the real main job
    task = Path(values["task"])
    task.write_text(task.read_text() + json.dumps({"text": "the cat", "answer": "pet", "split": "test"}) + "\n")
    assert main(["demo", "--config", str(path), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "Which facts drove kg-lora's answers" in out and "the dog -> " in out and "(gold: pet)" in out
    assert "the cat -> " not in out.split("Which facts drove")[1], "only the first two questions are explained"
    folder = Path(values["training"]["output_dir"])
    assert (folder / "explanation.png").read_bytes()[:4] == b"\x89PNG" and (folder / "results.png").is_file()


def test_demo_prints_a_classifiers_examples(job, tmp_path, capsys):
    path, values = job
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "bert")
    build_model(config, auto).save_pretrained(tmp_path / "bert")
    tiny_tokenizer().save_pretrained(tmp_path / "bert")
    rows = [{"text": r["text"], "label": int(r["answer"] == "animal"), "split": r["split"]} for r in ROWS]
    Path(values["task"]).write_text("".join(json.dumps(r) + "\n" for r in rows))
    values = {**values, "model": str(tmp_path / "bert"), "task_type": "classification", "num_labels": 2}
    path.write_text(yaml.safe_dump(values))
    assert main(["demo", "--config", str(path), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    # the class indices of the gold and of each variant's prediction (a classifier's rows carry no answer text)
    assert re.search(r"^  the dog -> 0 \| [01]$", out, flags=re.M), out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lerning_rate": 1}, "unknown key 'lerning_rate' in job config; known keys: model, kg"),
        ({"max_length": "long"}, "`max_length` in job config should be int or None, got str 'long'"),
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
        ({"training": {"lr_scheduler_kwargs": {"bogus": 1}}}, r"`lr_scheduler_kwargs` has keys \['bogus'\]"),
        ({"training": {"lr_scheduler_type": "cosine_with_min_lr"}}, "`lr_scheduler_kwargs` {} do not fit"),
        ({"training": {"save_best": True}}, "`training.save_best` .* set `training.eval_steps`"),
        ({"seed": -1}, r"`seed` should be in \[0, 2\*\*32\), got -1"),
        ({"adapter": {"memory_gate_scale": float("inf")}}, "`memory_gate_scale` in adapter should be a finite number"),
        ({"adapter": {"lora_dropout": "0.1"}}, "`lora_dropout` in adapter should be float, got str '0.1'"),
        ({"max_train_examples": 0}, "`max_train_examples` should be a positive integer, got 0"),
        ({"adapter": None}, "`adapter` in job config should be a mapping, got NoneType None"),
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


def test_demo_reads_its_config_from_a_pipe(tmp_path, capsys):
    """`kgpeft demo --config <(...)`: a pipe is read like a file, not refused as missing."""
    fifo = tmp_path / "demo.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=("max_stepz: 3\n",), daemon=True)
    writer.start()
    assert main(["demo", "--config", str(fifo)]) == 2
    writer.join(timeout=10)
    assert "unknown key 'max_stepz'" in capsys.readouterr().err


def test_link_prints_mentions_and_facts(tmp_path, capsys):
    config = tmp_path / "link.yaml"
    config.write_text("kg: nations\nmax_facts: 2\nretrieval: {num_neighbors: [4]}\n")
    assert main(["link", "--config", str(config), "usa and uk sign a treaty"]) == 0
    out = capsys.readouterr().out
    assert "'usa'" in out and "'uk'" in out
    assert "subgraph:" in out and out.count(" --") == 2


def test_demo_of_a_job_without_wordnet_loads_no_wordnet(tmp_path, capsys, monkeypatch):
    """`kgpeft demo` linked WordNet sentences against WordNet before every job, WordNet's or not."""
    from kgpeft.cli import job as job_commands
    from kgpeft.configuration import ConfigError

    def no_wordnet(config):
        raise AssertionError(f"the demo linked against {config.kg}")

    def stop(config, train_scorer=True):
        raise ConfigError(f"prepared the job on {config.kg}")

    monkeypatch.setattr(job_commands, "link_parts", no_wordnet)
    monkeypatch.setattr(job_commands, "prepare", stop)
    config = tmp_path / "demo.yaml"
    config.write_text(
        f"model: m\nkg: nations\nretrieval: {{memory_facts: 2}}\ntraining: {{output_dir: {tmp_path / 'run'}}}\n"
    )
    assert main(["demo", "--config", str(config), "--threads", "1"]) == 2
    captured = capsys.readouterr()
    assert "prepared the job on nations" in captured.err and "WordNet" not in captured.out


def test_link_takes_a_kg_mapping(tmp_path, capsys):
    (tmp_path / "t.tsv").write_text("Q1\tborders\tQ2\n")
    (tmp_path / "l.tsv").write_text("Q1\tFrance\nQ2\tSpain\n")
    kg = f"{{triples: {tmp_path / 't.tsv'}, labels: {tmp_path / 'l.tsv'}}}"
    assert main(["link", "--kg", kg, "France and Spain"]) == 0
    out = capsys.readouterr().out
    assert "'France'           -> France [Q1]" in out and "France --borders--> Spain" in out


def test_link_takes_its_retrieval_defaults_from_retrieval_config_and_options_override_the_file(tmp_path):
    """`kgpeft link` had its own defaults ([8, 4], 32 nodes, 3 candidates) beside RetrievalConfig's, and a
    second way from a config file to options (flat keys checked against argparse)."""
    from kgpeft.cli.link import link_config
    from kgpeft.cli.parser import build_parser
    from kgpeft.configuration import ConfigError
    from kgpeft.retrieval import RetrievalConfig

    assert link_config(build_parser().parse_args(["link"])).retrieval == RetrievalConfig()
    config = tmp_path / "link.yaml"
    config.write_text("kg: umls\nretrieval: {max_nodes: 8, num_neighbors: [4]}\n")
    args = build_parser().parse_args(["link", "--config", str(config), "--max-nodes", "5", "--num-neighbors", "3", "2"])
    settings = link_config(args)
    assert (settings.kg, settings.retrieval.max_nodes, settings.retrieval.num_neighbors) == ("umls", 5, [3, 2])
    config.write_text("num_neighbors: [4]\n")  # a retrieval setting belongs in its section, as in a job config
    with pytest.raises(ConfigError, match=rf"^{config}: unknown key 'num_neighbors' in link config"):
        link_config(build_parser().parse_args(["link", "--config", str(config)]))


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


class Loaded(BaseException):
    """The KG or the base model started loading."""


@pytest.fixture
def no_loading(monkeypatch):
    """Loading the KG or the base model fails the test: the errors below come before."""
    from kgpeft.pipeline import job

    def loader(*args, **kwargs):
        raise Loaded

    monkeypatch.setattr(job, "load_kg", loader)
    monkeypatch.setattr(job, "load_base_model", loader)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (b"", r"task: '.*task.jsonl' has no training examples \(0 train, 0 valid, 0 test\)"),
        (b'{"text": "a bank", "answer": "money", "split": "test"}\n', "has no training examples .* 1 test"),
        (
            b'{"text": "the dog", "answer": "pet", "split": "train"}\n'
            b'{"text": "the dog", "answer": "pet", "entity": "dog", "target_start": "4", "target_end": 7}\n',
            r"task.jsonl:2: Row 2: `target_start` .* should be int or None, got str '4'",
        ),
        (
            '{"text": "café", "answer": "x", "split": "train"}\n'.encode("latin-1"),
            r"task.jsonl:1: not UTF-8 \(byte 0xe9",
        ),
    ],
)
def test_bad_task_file_is_named_before_loading(job, tmp_path, capsys, no_loading, task, message):
    path, _ = job
    (tmp_path / "task.jsonl").write_bytes(task)
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1, err


def test_model_folder_without_config_is_named_before_loading(job, tmp_path, capsys, no_loading):
    path, values = job
    saved = (tmp_path / "model" / "config.json").read_text()
    (tmp_path / "model" / "config.json").unlink()
    assert main(["train", "--config", str(path)]) == 2
    assert f"model: {tmp_path / 'model'} has no config.json" in capsys.readouterr().err
    path.write_text(yaml.safe_dump({**values, "distillation": {"teacher": str(tmp_path / "none.safetensors")}}))
    (tmp_path / "model" / "config.json").write_text(saved)
    assert main(["train", "--config", str(path)]) == 2
    assert "distillation.teacher: " in capsys.readouterr().err


def _edit_json(file: Path, edit) -> None:
    file.write_text(json.dumps(edit(json.loads(file.read_text()))))


# how the model folder is damaged, and the error
DAMAGED_MODELS = {
    "truncated_weights": (
        lambda m: (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:5000]),
        r"model: {m}/model\.safetensors is not a whole safetensors file \(truncated or corrupt\?\): .*; copy it again",
    ),
    "config_not_json": (
        lambda m: (m / "config.json").write_text('{"model_type": "llama",\n'),
        r"model: {m}/config\.json:2:1: not valid JSON \(Expecting property name",
    ),
    "config_a_list": (
        lambda m: (m / "config.json").write_text("[]"),
        r"model: {m}/config\.json: expected a JSON object of settings, got a JSON list\.",
    ),
    "wrong_model_type": (
        lambda m: _edit_json(m / "config.json", lambda c: {**c, "model_type": "llamma"}),
        r"model: `model_type` in {m}/config\.json is 'llamma', not a model type this transformers knows",
    ),
    "no_model_type": (
        lambda m: _edit_json(m / "config.json", lambda c: {k: v for k, v in c.items() if k != "model_type"}),
        r"model: `model_type` in {m}/config\.json is missing",
    ),
    "no_tokenizer": (
        lambda m: [(m / name).unlink() for name in ("tokenizer.json", "tokenizer_config.json")],
        r"model: {m} has no tokenizer files \(tokenizer\.json, .*\); save the model's tokenizer there too",
    ),
}


@pytest.mark.parametrize("case", DAMAGED_MODELS)
def test_damaged_model_folder_is_named_before_loading(job, tmp_path, capsys, no_loading, case):
    path, _ = job
    damage, message = DAMAGED_MODELS[case]
    damage(tmp_path / "model")
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kgpeft train: error: ") and err.count("\n") == 1, err
    assert re.search(message.format(m=re.escape(str(tmp_path / "model"))), err), err


def test_damaged_tokenizer_file_is_named(job, tmp_path, capsys):
    path, _ = job
    (tmp_path / "model" / "tokenizer.json").write_text('{"version": ')
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kgpeft train: error: model: cannot load the tokenizer in {tmp_path / 'model'}: "), err
    assert err.count("\n") == 1, err


@pytest.mark.parametrize("field", ["text", "answer", "choices"])
def test_lone_surrogate_in_a_task_row_names_the_line(job, tmp_path, capsys, no_loading, field):
    path, _ = job
    row = {"text": "the dog", "answer": "animal", "split": "train", field: "the \ud800 dog"}
    if field == "choices":
        row.update(choices=["animal", "the \ud800 dog"], label=0)
    # json.dumps writes the lone surrogate as the escape "\ud800", which json.loads reads back as one
    (tmp_path / "task.jsonl").write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(row) + "\n")
    assert "\\ud800" in (tmp_path / "task.jsonl").read_text()
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    expected = f"task.jsonl:2: Row 2: `{field}` holds '\\ud800' at character 5, half of a UTF-16 surrogate pair"
    assert expected in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (
            ["predict", "--config", "JOB", "--adapter", "a"],
            "surrogateescape",
            "standard input line 3: not UTF-8 (byte 0xff at character 5)",
        ),
        (
            ["explain", "--config", "JOB", "--adapter", "a"],
            "surrogateescape",
            "standard input line 3: not UTF-8 (byte 0xff at character 5)",
        ),
        (["link"], "surrogateescape", "standard input line 3: not UTF-8 (byte 0xff at character 5)"),
        (["predict", "--config", "JOB", "--adapter", "a"], "strict", "standard input is not UTF-8 (byte 0xff)"),
        (["link", "dog", "the \udcff dog"], None, "text argument 2: not UTF-8 (byte 0xff at character 5)"),
        (["link", "the \ud800 dog"], None, "text argument 1: not UTF-8 (lone surrogate '\\ud800' at character 5)"),
        (
            ["explain", "--config", "JOB", "--adapter", "a", "--answer", "pet", "p\udce9t", "--", "dog", "cat"],
            None,
            "--answer 2: not UTF-8 (byte 0xe9 at character 2)",
        ),
    ],
)
def test_text_that_is_not_utf8_is_one_line(job, capsys, monkeypatch, no_loading, argv, stdin, message):
    import io

    import kgpeft.cli.link

    monkeypatch.setattr(kgpeft.cli.link, "load_kg", Loaded)  # what `link` loads
    if stdin is not None:  # as Python decodes a pipe: surrogateescape under C.UTF-8, strict in other UTF-8 locales
        data = io.BytesIO(b"the dog\n\nthe \xff dog\n")
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(data, encoding="utf-8", errors=stdin))
    path, _ = job
    old = Path(__file__).parents[1] / "tuners" / "fixtures" / "main_adapters" / "memory"  # saved before `answering`
    assert main([{"JOB": str(path), "OLD": str(old)}.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err == f"kgpeft {argv[0]}: error: {message}; pass UTF-8 text.\n", err


def test_unwritable_plot_is_refused_before_loading(job, tmp_path, capsys, no_loading):
    path, _ = job
    (tmp_path / "afile").write_text("")
    for plot, message in [
        (tmp_path / "afile" / "why.png", f"--plot {tmp_path / 'afile' / 'why.png'} cannot be written: "),
        (tmp_path, f"--plot {tmp_path} is a folder; give a file name."),
    ]:
        argv = ["explain", "--config", str(path), "--adapter", str(tmp_path), "--plot", str(plot), "the dog"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"kgpeft explain: error: {message}") and err.count("\n") == 1, err


def test_full_disk_while_saving_the_adapter_is_one_line(job, capsys, monkeypatch):
    import errno

    import kgpeft.model

    path, values = job
    save_file = kgpeft.model.save_file

    def disk_full(tensors, filename, *args, **kwargs):
        if "/.adapter." in filename:  # the job's adapter, saved after training (the final one was saved)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return save_file(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(kgpeft.model, "save_file", disk_full)
    assert main(["train", "--config", str(path)]) == 2
    folder = Path(values["training"]["output_dir"]) / "kg-lora"
    err = capsys.readouterr().err  # after the progress bar of loading the model
    assert err.endswith(
        f"\nkgpeft train: error: Cannot write {folder / 'adapter'}: No space left on device; nothing half-written is "
        "left. Free space (or choose another path) and try again.\n"
    )
    assert "Traceback" not in err, err
    assert sorted(p.name for p in folder.iterdir() if p.name != ".kgpeft.lock") == ["final"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["link", "--max-nodes", "0", "dog"], "`max_nodes` should be a positive integer, got 0"),
        (["link", "--max-candidates", "0", "dog"], "`max_candidates` should be a positive integer, got 0"),
        (["link", "--num-neighbors", "0", "--", "dog"], "`num_neighbors` should be a non-empty list"),
        (["link", "--max-facts", "-1", "dog"], "--max-facts should be at least 0, got -1"),
        (["demo", "--threads", "0"], "--threads should be at least 1, got 0"),
        (["predict", "--config", "JOB", "--adapter", "nowhere", "--max-facts", "-2", "dog"], "--max-facts should be"),
        (["evaluate", "--config", "JOB", "--adapter", "nowhere"], "--adapter: nowhere is not a folder"),
        (["predict", "--config", "JOB", "--adapter", "nowhere", "dog"], "--adapter: nowhere is not a folder"),
        (["predict", "--adapter", "nowhere", "dog"], "--kg: give the KG the adapter reads (or the job's --config)"),
        (["predict", "--adapter", "nowhere", "--kg", "umls", "dog"], "--adapter: nowhere is not a folder"),
        (["predict", "--config", "JOB", "--adapter", "a", "--kg", "umls", "dog"], "--kg and --model go without"),
        (["predict", "--adapter", "OLD", "--kg", "umls", "dog"], "holds no `answering` settings (saved outside a job"),
    ],
)
def test_bad_options_are_one_line_before_loading(job, capsys, no_loading, monkeypatch, argv, message):
    import kgpeft.cli.link

    monkeypatch.setattr(kgpeft.cli.link, "load_kg", Loaded)  # what `link` loads
    path, _ = job
    old = Path(__file__).parents[1] / "tuners" / "fixtures" / "main_adapters" / "memory"  # saved before `answering`
    assert main([{"JOB": str(path), "OLD": str(old)}.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kgpeft {argv[0]}: error: ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "argv", [["link", "--bogus"], ["link", "--max-nodes", "x"], ["train"], ["kge", "evaluate"], ["frobnicate"]]
)
def test_usage_errors_are_one_line(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("kgpeft") and "error: " in err and err.count("\n") == 1, err
    assert "--help`)" in err


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("cmd_link", ["link", "dog"]),
        ("cmd_demo", ["demo"]),
        ("cmd_train", ["train", "--config", "JOB"]),
        ("cmd_evaluate", ["evaluate", "--config", "JOB", "--adapter", "a"]),
        ("cmd_predict", ["predict", "--config", "JOB", "--adapter", "a", "dog"]),
        ("cmd_explain", ["explain", "--config", "JOB", "--adapter", "a", "dog"]),
        ("cmd_kge_train", ["kge", "train"]),
        ("cmd_kge_evaluate", ["kge", "evaluate", "--embeddings", "e", "--kg", "umls"]),
    ],
)
def test_every_command_exits_130_on_ctrl_c(job, capsys, monkeypatch, command, argv):
    import importlib

    def interrupted(args):
        raise KeyboardInterrupt

    # the parser imports each command's module when the command runs: patch it there
    home = "link" if command == "cmd_link" else "kge" if command.startswith("cmd_kge") else "job"
    monkeypatch.setattr(importlib.import_module(f"kgpeft.cli.{home}"), command, interrupted)
    path, _ = job
    assert main([str(path) if a == "JOB" else a for a in argv]) == 130
    assert capsys.readouterr().err == f"\nkgpeft {' '.join(argv[: 2 if argv[0] == 'kge' else 1])}: interrupted.\n"


def _default_sigint() -> None:
    # As in a terminal: a test run started in the background (`pytest &` in a script) ignores
    # SIGINT, and a child inherits that, so it would never see the Ctrl-C the test sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kgpeft(*argv: str, **kwargs) -> subprocess.Popen:
    """``kgpeft ARGV`` in a fresh Python process, running this checkout's code, with Ctrl-C as in a terminal."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "kgpeft.cli", *argv],
        env=env,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
        **kwargs,
    )


def test_ctrl_c_during_training_says_where_it_stopped_and_resume_continues(job, capsys):
    path, values = job
    values["training"].update(max_steps=100_000, save_steps=3, save_total_limit=2)
    path.write_text(yaml.safe_dump(values))
    process = _kgpeft("train", "--config", str(path), stdout=subprocess.DEVNULL)
    try:
        folder = Path(values["training"]["output_dir"]) / "kg-lora"
        deadline = time.monotonic() + 240
        while not list(folder.glob("checkpoint-*/trainer_state.json")) and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 4 minutes"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=300)  # a step can take long on a loaded machine
    finally:
        if process.poll() is None:  # a failed test leaves no training process behind
            process.kill()
            process.wait()
    last = err.decode().strip().splitlines()[-1]
    assert process.returncode == 130, err.decode()
    match = re.fullmatch(
        r"kgpeft train: interrupted; last checkpoint (.*checkpoint-(\d+)) \(step \d+\)\. Resume with: (.*)", last
    )
    assert match and Path(match[1]).is_dir() and "Traceback" not in err.decode(), err.decode()
    command = shlex.split(match[3])
    assert command == ["kgpeft", "train", "--config", str(path), "--resume"]
    step = int(match[2])
    values["training"]["max_steps"] = step + 1  # the resumed run takes one more step
    path.write_text(yaml.safe_dump(values))
    capsys.readouterr()
    assert main(command[1:]) == 0
    assert f"Resumed from {match[1]} at step {step}." in capsys.readouterr().out


def test_closed_pipe_and_user_error_exit_quietly(tmp_path):
    (tmp_path / "kg.tsv").write_text("dog\tis_a\tanimal\ncat\tis_a\tanimal\n")
    link = _kgpeft("link", "--kg", str(tmp_path / "kg.tsv"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    link.stdin.write(b"the dog and the cat\n" * 5000)  # far more output than a pipe holds
    link.stdin.close()
    assert link.stdout.readline()  # `| head -1`
    link.stdout.close()
    assert link.wait(timeout=120) == 141 and link.stderr.read() == b""
    bad = _kgpeft("link", "--kg", str(tmp_path / "kg.tsv"), "--max-nodes", "0", "dog")
    _, err = bad.communicate(timeout=120)
    assert bad.returncode == 2 and err.decode().count("\n") == 1 and "`max_nodes` should be" in err.decode()
