"""Names that become paths (adapter and variant names) never leave their folder: one check, at every entry."""

import json
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from peft import LoraConfig
from tiny_models import ARCHITECTURES, build_model

from kgpeft.checkpoint import CONFIG_NAME, CheckpointError
from kgpeft.cli import main
from kgpeft.errors import KGPeftError, PathNameError
from kgpeft.model import KGPeftModel, get_kg_peft_model
from kgpeft.pipeline import JobConfig, JobConfigError
from kgpeft.tuners import KGLoraConfig
from kgpeft.utils import check_name

LLAMA = ARCHITECTURES[1]
SMALL = {"r": 2, "graph_channels": 8, "knowledge_mode": "token"}


def _model(kg, tokenizer):
    return get_kg_peft_model(build_model(*LLAMA[1:]), KGLoraConfig(**SMALL), kg, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def model(kg, tokenizer):
    return _model(kg, tokenizer)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "it is empty"),
        (".", "the folder itself or the one above it"),
        ("..", "the folder itself or the one above it"),
        (".hidden", "starts with a dot"),
        ("/abs/dir", r"holds '/' \(a path separator character\)"),
        ("sub/dir", r"holds '/' \(a path separator character\)"),
        ("a\\b", r"holds '\\\\' \(a path separator character\)"),
        ("a\x00b", r"holds '\\x00' \(a control character\)"),
        ("a\nb", r"holds '\\n' \(a control character\)"),
        ("a:b", r"holds ':' \(a Windows-reserved character\)"),
        ("name.", "ends with a dot or a space"),
        ("name ", "ends with a dot or a space"),
        ("con.txt", "a device name on Windows"),
        ("\ud800", "lone surrogate"),
        ("é" * 101, "202 bytes long in UTF-8, more than 200"),
        (3, "it is of type int, not str"),
    ],
)
def test_check_name_refuses_what_is_no_single_file_name(name, problem):
    with pytest.raises(PathNameError, match=rf"^`what` should be a file or folder name, got .*: .*{problem}"):
        check_name(name, "`what`")
    assert isinstance(PathNameError("x"), ValueError) and isinstance(PathNameError("x"), KGPeftError)


def test_the_bad_value_is_shortened_in_the_message():
    with pytest.raises(PathNameError) as info:
        check_name("x" * 10_000 + "/", "`name`")
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("name", ["default", "kg-lora", "lora+facts", "ünïcode 名前", "a" * 200, "v1.5"])
def test_check_name_keeps_ordinary_names(name):
    assert check_name(name, "`name`") == name


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="./\\\x00:ab ", max_size=5)))
@example("..")
@example("/abs")
def test_a_checked_name_is_one_entry_of_its_folder(name):
    try:
        check_name(name, "`name`")
    except PathNameError:
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "folder"
        base.mkdir()
        (base / name).mkdir()
        assert [p.name for p in base.iterdir()] == [name]
        assert [p.name for p in Path(tmp).iterdir()] == ["folder"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=12), st.text(alphabet="./\\\x00:ab ", max_size=5)))
@example("..")
@example("sub/dir")
def test_saving_any_adapter_name_writes_only_inside_the_folder(model, name):
    """A name is refused by `add_adapter` with a kgpeft error, or saving writes inside the save folder only."""
    config = KGLoraConfig(**SMALL)
    if name in model.kg_configs:
        return
    try:
        model.add_adapter(name, config)
    except KGPeftError:
        assert name not in model.kg_configs and name not in model.peft_model.peft_config, "refused before anything"
        return
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(Path(tmp) / "save")
        assert [p.name for p in Path(tmp).iterdir()] == ["save"]
        assert (Path(tmp) / "save" / name / "adapter_model.safetensors").is_file()


def test_an_absolute_adapter_name_is_refused_before_it_overwrites_that_folder(kg, tokenizer, tmp_path):
    model = _model(kg, tokenizer)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "adapter_model.safetensors").write_bytes(b"the user's")
    with pytest.raises(
        PathNameError, match=r"^`adapter_name` should be a file or folder name, got '/.*elsewhere': it holds '/'"
    ):
        model.add_adapter(str(elsewhere), KGLoraConfig(**SMALL))
    assert list(model.kg_configs) == list(model.peft_model.peft_config) == ["default"]
    model.save_pretrained(tmp_path / "ckpt")
    assert (elsewhere / "adapter_model.safetensors").read_bytes() == b"the user's"

    # An adapter added to the peft model directly, past add_adapter's check, is refused by save_pretrained.
    model.peft_model.add_adapter(str(elsewhere), LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(PathNameError, match=r"a key of `peft_model\.peft_config`\) should be a file or folder name"):
        model.save_pretrained(tmp_path / "again")
    assert (elsewhere / "adapter_model.safetensors").read_bytes() == b"the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "elsewhere"]


def test_an_adapter_name_with_a_separator_is_refused_not_saved_then_called_foreign(kg, tokenizer, tmp_path):
    model = _model(kg, tokenizer)
    with pytest.raises(PathNameError, match=r"got 'sub/dir': it holds '/'"):
        model.add_adapter("sub/dir", KGLoraConfig(**SMALL))
    with pytest.raises(PathNameError, match="it holds a dot, which torch module names cannot"):
        model.add_adapter("v1.5", KGLoraConfig(**SMALL))  # torch's KeyError, after peft had added it
    assert list(model.peft_model.peft_config) == ["default"]
    model.save_pretrained(tmp_path / "ckpt")
    model.save_pretrained(tmp_path / "ckpt")  # its own folder again


@pytest.mark.parametrize("name", ["../x", "x\x00", ""])
def test_a_hand_edited_adapter_name_is_refused_by_info_and_loading(kg, tokenizer, tmp_path, capsys, name):
    _model(kg, tokenizer).save_pretrained(tmp_path / "ckpt")
    file = tmp_path / "ckpt" / CONFIG_NAME
    meta = json.loads(file.read_text())
    meta["adapters"] = {name: meta["adapters"]["default"]}
    meta["target_modules"] = {name: meta["target_modules"]["default"]}
    meta["active_adapter"] = name
    file.write_text(json.dumps(meta))
    message = f"An adapter name (a key of `adapters`) in {file} should be a file or folder name, got {name!r}"
    assert main(["info", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    with pytest.raises(CheckpointError) as info:
        KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "ckpt", kg, tokenizer=tokenizer)
    assert message in str(info.value)


def _job(tmp_path, variants):
    values = {
        "model": "nowhere",
        "adapter": {"knowledge_mode": "token"},
        "training": {"output_dir": str(tmp_path / "run")},
    }
    values["variants"] = variants
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize(("name", "shown"), [("..", "'..'"), (".", "'.'"), ("a\x00b", "'a\\x00b'"), ("a/b", "'a/b'")])
def test_a_variant_name_that_leaves_output_dir_is_refused_before_anything_is_written(tmp_path, capsys, name, shown):
    (tmp_path / "logs").mkdir()  # what `overwrite_output_dir` deleted in the parent of `output_dir`
    path = _job(tmp_path, [{"name": name, "adapter": "kg-lora"}])
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kgpeft train: error: {path}: variants[0]: `name` should be a file or folder name, got")
    assert shown in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.yaml", "logs"], "nothing written"
    with pytest.raises(JobConfigError, match=r"variants\[0\]: `name` should be a file or folder name"):
        JobConfig.from_dict({"model": "m", "adapter": {"knowledge_mode": "token"}, "variants": [{"name": name}]})


def test_output_dir_with_nul_is_one_line(tmp_path, capsys):
    path = _job(tmp_path, [{"name": "kg-lora"}])
    assert main(["train", "--config", str(path), "--output-dir", "run\x00"]) == 2
    err = capsys.readouterr().err
    assert "holds a NUL character" in err and err.count("\n") == 1, err


def test_a_first_adapter_not_named_default_loads_from_its_subfolder(kg, tokenizer, tmp_path):
    model = get_kg_peft_model(build_model(*LLAMA[1:]), KGLoraConfig(**SMALL), kg, tokenizer, adapter_name="main")
    model.add_adapter("default", KGLoraConfig(**SMALL))
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "main" / "adapter_model.safetensors").is_file(), "peft's layout"
    loaded = KGPeftModel.from_pretrained(build_model(*LLAMA[1:]), tmp_path / "ckpt", kg, tokenizer=tokenizer)
    assert loaded.active_adapter == "main" and sorted(loaded.kg_configs) == ["default", "main"]
    theirs = dict(loaded.named_parameters())
    assert all(torch.equal(theirs[n], p) for n, p in model.named_parameters() if "lora_" in n)
