"""The checkpoint format on its own: file names, kgpeft_config.json, safe reading, no model code."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import ARCHITECTURES, build_model, tiny_kg

from kgpeft.checkpoint import (
    CONFIG_NAME,
    FORMAT_VERSION,
    CheckpointError,
    base_model_signature,
    foreign_entries,
    load_safetensors,
    read_checkpoint_config,
    write_checkpoint_config,
)
from kgpeft.errors import KGFileNotFoundError
from kgpeft.graph import KnowledgeGraph

LLAMA = next(a for a in ARCHITECTURES if a[0] == "llama")


def _write(folder, kg, model):
    write_checkpoint_config(
        folder, kg, base_model_signature(model), "default", {"default": {"r": 4}}, {"default": ["q_proj"]}
    )


def test_config_round_trip(tmp_path):
    kg, model = tiny_kg(), build_model(*LLAMA[1:])
    _write(tmp_path, kg, model)
    meta = read_checkpoint_config(tmp_path, kg, model)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["kg_size"] == {"num_entities": 9, "num_relations": 3}
    assert meta["base_model"]["model_type"] == "llama"
    assert (meta["active_adapter"], meta["adapters"], meta["target_modules"]) == (
        "default",
        {"default": {"r": 4}},
        {"default": ["q_proj"]},
    )


def test_signature_fits_a_float16_copy_but_not_other_weights():
    model = build_model(*LLAMA[1:])
    assert (
        base_model_signature(model.to(torch.float16))["embedding_checksum"]
        == base_model_signature(build_model(*LLAMA[1:]))["embedding_checksum"]
    )
    with torch.no_grad():
        model.get_input_embeddings().weight[0, 0] += 1
    assert base_model_signature(model) != base_model_signature(build_model(*LLAMA[1:]))


def test_config_refusals(tmp_path):
    kg, model = tiny_kg(), build_model(*LLAMA[1:])
    with pytest.raises(KGFileNotFoundError, match=f"missing {CONFIG_NAME}"):
        read_checkpoint_config(tmp_path, kg, model)
    _write(tmp_path, kg, model)
    other_kg = KnowledgeGraph(["a", "b"], ["r"], torch.tensor([[0], [0], [1]]))
    with pytest.raises(CheckpointError, match=r"another knowledge graph: .* \(9 entities, 3 relations\)"):
        read_checkpoint_config(tmp_path, other_kg, model)
    with pytest.raises(CheckpointError, match="another base model"):
        read_checkpoint_config(tmp_path, kg, build_model(*ARCHITECTURES[0][1:]))
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**meta, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(CheckpointError, match=f"format version {FORMAT_VERSION + 1}"):
        read_checkpoint_config(tmp_path, kg, model)
    (tmp_path / CONFIG_NAME).write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_checkpoint_config(tmp_path, kg, model)


def test_foreign_entries_of_a_folder_the_trainer_saved_a_plain_peft_adapter_to(tmp_path):
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md"):
        (tmp_path / name).write_text("{}")
    assert foreign_entries(tmp_path) == ["README.md", "adapter_config.json", "adapter_model.safetensors"], "not ours"
    (tmp_path / "trainer_state.json").write_text("{}")
    assert foreign_entries(tmp_path) == [], "peft's files beside the trainer's state"
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "sub").mkdir()
    assert foreign_entries(tmp_path) == ["notes.txt", "sub"]


def test_load_safetensors_names_the_file(tmp_path):
    file = tmp_path / "w.safetensors"
    with pytest.raises(KGFileNotFoundError, match=r"Checkpoint file missing: .*w\.safetensors"):
        load_safetensors(file)
    save_file({"x": torch.arange(6.0)}, str(file), metadata={"format": "pt"})
    assert load_safetensors(file)["x"].tolist() == [0, 1, 2, 3, 4, 5]
    file.write_bytes(file.read_bytes()[:20])
    with pytest.raises(CheckpointError, match=r"w\.safetensors is not a readable safetensors file"):
        load_safetensors(file)


def test_the_model_reexports_the_error():
    from kgpeft.model import CheckpointError as FromModel

    assert FromModel is CheckpointError


def test_imports_no_model_code():
    heavy = ("kgpeft.model", "kgpeft.tuners", "peft")
    code = f"import sys, kgpeft.checkpoint; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
