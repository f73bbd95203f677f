"""``kgpeft kge train | evaluate`` end to end, on Nations with a tiny model and a few epochs."""

import json
from pathlib import Path

import pytest
import yaml

from kgpeft.cli import main
from kgpeft.datasets import DATASETS, load
from kgpeft.kge import KGEConfig
from kgpeft.kge.job import load_job

CONFIGS = Path(__file__).parents[2] / "configs" / "kge"
KGE = {
    "model": "complex",
    "hidden_channels": 16,
    "reciprocal": True,
    "training": "1-n",
    "loss": "ce",
    "regularization_weight": 0.01,
    "learning_rate": 0.05,
    "num_epochs": 4,
    "eval_every": 2,
    "device": "cpu",
}


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "nations.yaml"
    output = tmp_path / "out" / "nations.safetensors"
    path.write_text(yaml.safe_dump({"kg": "nations", "output": str(output), "kge": KGE}))
    return path


@pytest.fixture
def trained(config, tmp_path, capsys):
    assert main(["kge", "train", "--config", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    return tmp_path / "out" / "nations.safetensors", out


def test_train_writes_embeddings_and_metrics(trained):
    path, out = trained
    metrics_path = path.with_suffix(".metrics.json")
    assert sorted(p.name for p in path.parent.iterdir()) == ["nations.metrics.json", "nations.safetensors"]
    assert "validation (filtered MRR" in out and "test: 201 triples" in out
    assert f"wrote {path}" in out and str(metrics_path) in out
    report = json.loads(metrics_path.read_text())
    assert report["kg"] == "nations" and report["kg_fingerprint"] == load("nations").fingerprint
    assert report["splits"] == {"train": 1592, "valid": 199, "test": 201}
    assert report["config"] == KGEConfig.from_dict(KGE).to_dict()
    assert [row["epoch"] for row in report["history"]] == [2, 4] and report["best_epoch"] in (2, 4)
    test = report["test"]
    assert 0.3 < test["mrr"] <= 1 and 1 <= test["mr"] <= 14  # 14 entities; random would score about 0.3
    assert test["hits@1"] <= test["hits@3"] <= test["hits@10"] <= 1
    assert test["mrr"] == pytest.approx((test["head_mrr"] + test["tail_mrr"]) / 2)
    assert report["valid"]["mrr"] == max(row["valid_mrr"] for row in report["history"])
    assert sum(m["count"] for m in report["test_per_relation"].values()) == 2 * 201
    assert report["triples_per_second"] > 0 and report["train_seconds"] > 0


def test_options_override_the_config(config, tmp_path, capsys):
    out = tmp_path / "distmult.safetensors"
    argv = ["kge", "train", "--config", str(config), "--no-progress", "--output", str(out)]
    assert main([*argv, "--model", "DistMult", "--hidden-channels", "8", "--num-epochs", "1", "--no-reciprocal"]) == 0
    report = json.loads(out.with_suffix(".metrics.json").read_text())
    assert report["config"]["model"] == "distmult" and report["config"]["hidden_channels"] == 8
    assert report["config"]["reciprocal"] is False and report["config"]["learning_rate"] == KGE["learning_rate"]
    assert [row["epoch"] for row in report["history"]] == [1]  # validated after the last epoch


def test_evaluate_prints_metrics(trained, capsys):
    path, _ = trained
    test_mrr = json.loads(path.with_suffix(".metrics.json").read_text())["test"]["mrr"]
    assert main(["kge", "evaluate", "--embeddings", str(path), "--kg", "nations"]) == 0
    out = capsys.readouterr().out
    assert "MRR" in out and "Hits@10" in out and f"{test_mrr:.4f}" in out
    assert [line.split()[0] for line in out.splitlines()[-3:]] == ["both", "head", "tail"]

    assert main(["kge", "evaluate", "--embeddings", str(path), "--kg", "nations", "--per-relation"]) == 0
    out = capsys.readouterr().out
    assert "per relation" in out and "embassy" in out

    argv = ["kge", "evaluate", "--embeddings", str(path), "--kg", "nations", "--split", "valid", "--json"]
    assert main([*argv, "--batch-size", "7", "--per-relation"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "valid" and 0 < result["metrics"]["mrr"] <= 1
    assert sum(m["count"] for m in result["per_relation"].values()) == 2 * 199


def test_evaluate_refuses_another_kg(trained, capsys):
    path, _ = trained
    assert main(["kge", "evaluate", "--embeddings", str(path), "--kg", "kinships"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kgpeft kge evaluate: error: ") and "fingerprint" in err and "Traceback" not in err
    assert str(path) in err


def test_evaluate_names_a_missing_split_or_file(trained, tmp_path, capsys):
    path, _ = trained
    assert main(["kge", "evaluate", "--embeddings", str(path), "--kg", "nations", "--split", "dev"]) == 2
    assert "no split 'dev'; it has train, valid, test" in capsys.readouterr().err
    assert main(["kge", "evaluate", "--embeddings", str(tmp_path / "none.safetensors"), "--kg", "nations"]) == 2
    assert "No embedding file at" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outptu": "x.safetensors"}, "unknown key 'outptu' in KGE job; did you mean 'output'?"),
        (
            {"num_epochs": 3},
            "unknown key 'num_epochs' in KGE job; 'num_epochs' is a KGEConfig setting: put it under `kge:`",
        ),
        ({"kge": {**KGE, "hiden_channels": 8}}, "unknown key 'hiden_channels' in kge; did you mean 'hidden_channels'?"),
        ({"kge": {**KGE, "learning_rate": "1e-3"}}, "`learning_rate` in kge should be float, got str '1e-3'"),
        ({"kge": {**KGE, "lr": 0.1}}, "unknown key 'lr' in kge; known keys: model, hidden_channels"),
        ({"kge": [1, 2]}, "`kge` in KGE job should be a mapping, got list [1, 2]"),
        ({"kge": {**KGE, "training": "negative_sampling", "loss": "ce"}}, "kge: `loss='ce'` does not go with"),
        ({"kge": {**KGE, "num_epochs": -1}}, "kge: `num_epochs` should be a non-negative integer, got -1"),
    ],
)
def test_bad_config_names_the_key_and_file(config, capsys, change, message):
    values = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**values, **change}))
    assert main(["kge", "train", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kgpeft kge train: error: {config}: ") and message in err, err


def test_train_needs_a_kg_and_an_output(tmp_path, capsys):
    assert main(["kge", "train", "--kg", "nations"]) == 2
    assert "give `output:` in the config or --output" in capsys.readouterr().err
    assert main(["kge", "train", "--output", str(tmp_path / "x.safetensors")]) == 2
    assert "give `kg:` in the config or --kg" in capsys.readouterr().err


def test_kg_without_splits_trains_on_all_triples_and_skips_test(tmp_path, capsys):
    (tmp_path / "kg.tsv").write_text("dog\tis_a\tanimal\ncat\tis_a\tanimal\ndog\tis_a\tpet\nbank\tholds\tmoney\n")
    out = tmp_path / "tiny.safetensors"
    argv = ["kge", "train", "--kg", str(tmp_path / "kg.tsv"), "--output", str(out), "--no-progress"]
    assert main([*argv, "--num-epochs", "2", "--hidden-channels", "4", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "has no splits: training on all 4 triples" in printed and "test evaluation skipped" in printed
    report = json.loads(out.with_suffix(".metrics.json").read_text())
    assert report["test"] is None and report["valid"] is None and report["history"] == []
    assert report["best_epoch"] == 2 and report["splits"] == {}
    assert main(["kge", "evaluate", "--embeddings", str(out), "--kg", str(tmp_path / "kg.tsv")]) == 2
    assert "no split 'test'; it has no splits" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_are_valid(path):
    job = load_job(path)
    assert job.kg in DATASETS and job.output.endswith(".safetensors")
    assert job.kge == KGEConfig.from_dict(yaml.safe_load(path.read_text())["kge"])


@pytest.mark.parametrize("output", ["file/e.safetensors", "folder", "/proc/x/e.safetensors"])
def test_unwritable_output_fails_before_loading_the_kg(config, tmp_path, capsys, monkeypatch, output):
    (tmp_path / "file").write_text("")
    (tmp_path / "folder").mkdir()
    output = output if output.startswith("/") else str(tmp_path / output)

    def load_kg(name):
        raise AssertionError("the KG was loaded before the output was checked")

    monkeypatch.setattr("kgpeft.kge.job.load_kg", load_kg)
    assert main(["kge", "train", "--config", str(config), "--output", output, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"error: `output` {output} " in err and ("cannot be written" in err or "is a folder" in err)


def test_train_takes_a_kg_mapping_and_reports_it(tmp_path, capsys):
    nations = Path(__file__).parents[2] / "kgpeft" / "datasets" / "data" / "nations"
    kg = {"triples": [str(nations / f"{s}.txt") for s in ("train", "valid", "test")], "name": "nations-files"}
    output = tmp_path / "n.safetensors"
    path = tmp_path / "n.yaml"
    path.write_text(yaml.safe_dump({"kg": kg, "output": str(output), "kge": {**KGE, "num_epochs": 1, "eval_every": 0}}))
    assert main(["kge", "train", "--config", str(path), "--no-progress"]) == 0
    report = json.loads(output.with_suffix(".metrics.json").read_text())
    assert report["kg"] == kg and report["splits"] == {"train": 1592, "valid": 199, "test": 201}
