"""Resuming from a damaged or no longer fitting checkpoint, and a full disk while saving: errors that name the file."""

import errno
import importlib
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from accelerate.state import AcceleratorState, GradientState
from tiny_models import ARCHITECTURES, build_model, tiny_kg, tiny_tokenizer

from kgpeft import KGLoraConfig, get_kg_peft_model
from kgpeft.checkpoint import CheckpointError
from kgpeft.errors import KGFileNotFoundError, KGPeftError, OutputPathError
from kgpeft.training.config import TrainingConfig
from kgpeft.training.trainer import train

_spec = importlib.util.spec_from_file_location("ddp_script", Path(__file__).with_name("ddp_script.py"))
ddp_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ddp_script)
collate, make_dataset, make_model = ddp_script.collate, ddp_script.make_dataset, ddp_script.make_model


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    yield
    # accelerate keeps process-wide singletons; a run that raised must not leak into the next test
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _config(folder, **kwargs) -> TrainingConfig:
    values = {"output_dir": str(folder), "per_device_train_batch_size": 2, "progress_bar": False, "save_steps": 2}
    return TrainingConfig(**{**values, **kwargs})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run of 4 steps with checkpoint-2 and checkpoint-4 (r=4), copied by each test."""
    folder = tmp_path_factory.mktemp("trained") / "run"
    train(make_model(), make_dataset(8), collate, _config(folder, max_steps=4))
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return folder


def _resume(folder, model=None):
    config = _config(folder, max_steps=6, resume_from_checkpoint="latest")
    return train(model or make_model(), make_dataset(8), collate, config)


def test_resume_after_changing_r_names_the_setting(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    _, model_config, auto = ARCHITECTURES[1]  # as make_model, with r=8 for 4
    config = KGLoraConfig(knowledge_mode="token", r=8, graph_channels=16, lora_dropout=0.1)
    model = get_kg_peft_model(build_model(model_config, auto), config, tiny_kg(), tokenizer=tiny_tokenizer())
    with pytest.raises(CheckpointError) as error:
        _resume(run, model)
    assert re.search(
        r"checkpoint-4/trainable_params\.safetensors does not fit the model: '\S+' has shape \(4, \d+\) there, "
        r"\(8, \d+\) in the model \(changed since: `r` 4 -> 8\)\. The adapter settings changed",
        str(error.value),
    ), error.value


def _edit_json(edit):
    def apply(file):
        file.write_text(json.dumps(edit(json.loads(file.read_text()))))

    return apply


def _without(key):
    return _edit_json(lambda s: {k: v for k, v in s.items() if k != key})


# the checkpoint file damaged, how, and the error's pattern
DAMAGED = {
    "state_not_json": ("trainer_state.json", lambda f: f.write_text('{"global_step": 4,'), r":1:19: not valid JSON"),
    "state_a_list": ("trainer_state.json", lambda f: f.write_text("[4]"), ": expected a JSON object, got a JSON list"),
    "state_no_epoch": ("trainer_state.json", _without("epoch"), " lacks `epoch`: the checkpoint is damaged"),
    "state_no_config": ("trainer_state.json", _without("config"), " lacks `config`"),
    "state_step_str": (
        "trainer_state.json",
        _edit_json(lambda s: {**s, "global_step": "4"}),
        "`global_step` in {} should be int, got str '4'",
    ),
    "state_negative_epoch": (
        "trainer_state.json",
        _edit_json(lambda s: {**s, "epoch": -1}),
        "`epoch` in {} should be an integer >= 0, got -1",
    ),
    "state_no_processes": (
        "trainer_state.json",
        _edit_json(lambda s: {**s, "num_processes": 0}),
        "`num_processes` in {} should be an integer >= 1, got 0",
    ),
    "state_config_null": (
        "trainer_state.json",
        _edit_json(lambda s: {**s, "config": None}),
        "`config` in {} should be a mapping of settings, got None",
    ),
    "state_sha256_list": (
        "trainer_state.json",
        _edit_json(lambda s: {**s, "sha256": []}),
        "`sha256` in {} should map file names to hex digests",
    ),
    "state_newer": (
        "trainer_state.json",
        _edit_json(lambda s: {**s, "format_version": 99}),
        "`format_version` in {} is 99; this kgpeft reads up to 1",
    ),
    "optimizer_not_json": ("optimizer.json", lambda f: f.write_text("["), r":1:2: not valid JSON \(Expecting value\)"),
    "optimizer_not_groups": (
        "optimizer.json",
        lambda f: f.write_text('{"params": []}'),
        ": expected a list of parameter groups",
    ),
    "optimizer_groups_merged": (
        "optimizer.json",
        _edit_json(lambda groups: [{**groups[0], "params": [n for g in groups for n in g["params"]]}]),
        r": does not fit the optimizer \(loaded state dict has a different number of parameter groups\)",
    ),
    "optimizer_missing": ("optimizer.json", lambda f: f.unlink(), "Checkpoint file missing: {}"),
    "scheduler_a_list": ("scheduler.json", lambda f: f.write_text("[]"), ": expected a JSON object, got a JSON list"),
    "rng_state": (
        "rng_state_0.json",
        lambda f: f.write_text('{"numpy": 1}'),
        " or rng_state_0.safetensors: not an RNG",
    ),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_checkpoint_file_is_named(finished_run, tmp_path, case):
    name, damage, message = DAMAGED[case]
    run = shutil.copytree(finished_run, tmp_path / "run")
    file = run / "checkpoint-4" / name
    damage(file)
    expected = KGFileNotFoundError if case == "optimizer_missing" else CheckpointError
    pattern = message.format(re.escape(str(file))) if "{}" in message else re.escape(str(file)) + message
    with pytest.raises(expected, match=pattern):
        _resume(run)


class DiskFull:
    """Stands for safetensors' ``save_file``: raises ENOSPC when writing a path that contains ``where``."""

    def __init__(self, save_file, where: str):
        self.save_file, self.where = save_file, where

    def __call__(self, tensors, filename, *args, **kwargs):
        if self.where in str(filename):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return self.save_file(tensors, filename, *args, **kwargs)


@pytest.mark.parametrize(
    ("module", "where", "folder", "kept"),
    [
        # the optimizer state of the second checkpoint: the first one is where to resume from
        ("kgpeft.training.checkpoints", ".checkpoint-4.tmp", "checkpoint-4", ["checkpoint-2"]),
        # the final adapter's knowledge weights, written by save_pretrained inside the trainer's temporary folder
        ("kgpeft.model", ".final.tmp", "final", ["checkpoint-2", "checkpoint-4"]),
    ],
)
def test_full_disk_while_saving_names_the_folder_and_leaves_nothing_half_written(
    tmp_path, monkeypatch, module, where, folder, kept
):
    target = importlib.import_module(module)
    monkeypatch.setattr(target, "save_file", DiskFull(target.save_file, where))
    run = tmp_path / "run"
    with pytest.raises(OutputPathError) as error:
        train(make_model(), make_dataset(8), collate, _config(run, max_steps=4))
    last = run / kept[-1]
    assert str(error.value) == (
        f"Cannot write {run / folder}: No space left on device; nothing half-written is left. Free space (or choose "
        f"another `output_dir`); then resume from {last} (`kgpeft train --resume`, `resume_from_checkpoint='latest'`)."
    )
    assert isinstance(error.value, KGPeftError)
    assert sorted(p.name for p in run.iterdir() if p.name != ".kgpeft.lock") == kept, "no temporary folder is left"
    monkeypatch.undo()
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    assert _resume(run).global_step == 6, "the run resumes from the last complete checkpoint"
