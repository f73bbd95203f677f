"""The training loop: config checks, saved folders and logs, exact resumption, DDP with two processes."""

import csv
import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import is_tensorboard_available
from launching import free_port, run_launcher
from safetensors.torch import load_file
from tiny_models import ARCHITECTURES, build_model, tiny_kg, tiny_tokenizer
from torch.optim.optimizer import register_optimizer_step_post_hook

from kgpeft.checkpoint import CheckpointError
from kgpeft.errors import KGFileNotFoundError, OutputPathError
from kgpeft.model import KGPeftModel
from kgpeft.training.checkpoints import LOCK_NAME
from kgpeft.training.config import TrainingConfig, TrainingConfigError
from kgpeft.training.trainer import TrainingDivergedError, train

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ddp_script.py")
_spec = importlib.util.spec_from_file_location("ddp_script", SCRIPT)
ddp_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ddp_script)


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    yield
    # accelerate keeps process-wide singletons; an interrupted run must not leak into the next test
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _config(tmp_path, **kwargs) -> TrainingConfig:
    values = {
        "output_dir": str(tmp_path / "run"),
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,
        "learning_rate": 1e-2,
        "warmup_steps": 1,
        "progress_bar": False,
        "seed": 0,
        **kwargs,
    }
    return TrainingConfig(**values)


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


# --------------------------------------------------------------------- config
def test_config_defaults_and_dict_round_trip():
    config = TrainingConfig()
    assert config.mixed_precision == "auto" and config.log_with == [] and config.max_steps is None
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert TrainingConfig.from_dict({"learning_rate": 1, "log_with": ["csv"]}).learning_rate == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"learning_rate": 0.0}, r"`learning_rate` should be positive, got 0\.0\."),
        ({"max_steps": 0}, r"`max_steps` should be a positive integer, got 0\."),
        ({"gradient_accumulation_steps": 1.5}, r"`gradient_accumulation_steps` .* should be int, got float 1\.5"),
        ({"warmup_steps": -1}, r"`warmup_steps` should be a non-negative integer, got -1\."),
        ({"mixed_precision": "fp8"}, r"`mixed_precision` should be one of .*got 'fp8'\."),
        ({"lr_scheduler_type": "reduce_lr_on_plateau"}, r"`lr_scheduler_type` should be one of .*'cosine'"),
        ({"log_with": ["wandb"]}, r"`log_with` entries should be among \('csv', 'tensorboard'\), got \['wandb'\]"),
        ({"max_grad_norm": -1.0}, r"`max_grad_norm` should be positive or None, got -1\.0\."),
        ({"learning_rate": float("inf")}, r"`learning_rate` .*finite.*, got inf\."),
    ],
)
def test_config_validation_names_field_and_value(kwargs, message):
    with pytest.raises(TrainingConfigError, match=message):
        TrainingConfig(**kwargs)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"lerning_rate": 1e-3}, r"unknown key 'lerning_rate' in training config; did you mean 'learning_rate'\?"),
        ({"learning_rate": "1e-4"}, r"`learning_rate` in training config should be float, got str '1e-4' \(YAML"),
        ({"max_steps": 2.5}, r"`max_steps` in training config should be int or None, got float 2\.5\."),
        ({"save_best": "yes"}, r"`save_best` in training config should be bool, got str 'yes'\."),
        ({"log_with": "csv"}, r"`log_with` in training config should be a list of str, got str 'csv'\."),
        ({"mixed_precision": "fp32"}, r"`mixed_precision` in training config should be 'no' \| 'bf16' \| 'fp16' \|"),
    ],
)
def test_from_dict_rejects_unknown_keys_and_wrong_types(values, message):
    with pytest.raises(TrainingConfigError, match=message):
        TrainingConfig.from_dict(values)
    assert issubclass(TrainingConfigError, ValueError)


# ---------------------------------------------------------------------- train
def test_train_evaluates_saves_best_and_final_and_logs_csv(tmp_path):
    model = ddp_script.make_model()
    before = _trainable(model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    calls = []

    def evaluate(prepared, accelerator):
        calls.append(prepared.training)
        return ddp_script.count_predictions(prepared, accelerator)

    config = _config(
        tmp_path, max_steps=4, logging_steps=1, eval_steps=2, save_best=True, log_with=["csv"], max_grad_norm=0.5
    )
    eval_set = ddp_script.make_dataset(5, seed=1, first_id=100)
    result = train(model, ddp_script.make_dataset(10), ddp_script.collate, config, eval_set, evaluate)

    assert result.global_step == 4 and calls == [False, False], "evaluated at steps 2 and 4, in eval mode"
    assert model.training, "back in training mode after evaluating"
    assert set(result.metrics) == {"loss", "predictions"} and result.metrics["predictions"] == 5
    assert result.best_step in (2, 4) and result.best_metric <= result.metrics["loss"]
    after = _trainable(model)
    assert any(not torch.equal(before[n], after[n]) for n in before), "the adapters trained"
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen), "base stays frozen"

    run = tmp_path / "run"
    assert result.final_dir == run / "final"
    for name in ("final", "best"):
        state = json.loads((run / name / "trainer_state.json").read_text())
        assert state["config"]["learning_rate"] == 1e-2 and set(state["metrics"]) == {"loss", "predictions"}
    assert json.loads((run / "final" / "trainer_state.json").read_text())["global_step"] == 4
    assert json.loads((run / "best" / "trainer_state.json").read_text())["global_step"] == result.best_step
    _, model_config, auto = ARCHITECTURES[1]
    loaded = KGPeftModel.from_pretrained(build_model(model_config, auto), run / "final", tiny_kg(), tiny_tokenizer())
    loaded_params = dict(loaded.named_parameters())
    assert all(torch.equal(loaded_params[n], after[n]) for n in after), "final/ holds the trained adapter"

    with open(run / "logs" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = {(int(r["step"]), r["name"]) for r in rows}
    assert {(s, "train/loss") for s in (1, 2, 3, 4)} <= names
    assert {(2, "eval/loss"), (4, "eval/predictions"), (1, "train/learning_rate")} <= names
    assert not [p for p in run.iterdir() if p.name.startswith(".") and p.name != LOCK_NAME], "no temporary folders"


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    """Dropout on, gradient accumulation 2, 5 batches per epoch (an odd one out): resume from step 4."""
    data = ddp_script.make_dataset(10)
    common = {"max_steps": 6, "gradient_accumulation_steps": 2, "logging_steps": 1}
    full = ddp_script.make_model(lora_dropout=0.1)
    train(full, data, ddp_script.collate, _config(tmp_path / "full", **common))

    interrupted = ddp_script.make_model(lora_dropout=0.1)
    steps = []

    def crash_at_step_5(optimizer, args, kwargs):
        steps.append(1)
        if len(steps) == 5:
            raise KeyboardInterrupt

    handle = register_optimizer_step_post_hook(crash_at_step_5)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(interrupted, data, ddp_script.collate, _config(tmp_path, save_steps=2, **common))
    finally:
        handle.remove()
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME, "checkpoint-2", "checkpoint-4"]
    checkpoint = run / "checkpoint-4"
    assert {p.suffix for p in checkpoint.iterdir()} <= {".json", ".safetensors", ".md"}, "no pickle"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    # epoch 0: steps 1, 2 and 3 (its last batch alone); epoch 1: step 4 after batches 0 and 1
    assert (state["global_step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 2)

    params = checkpoint / "trainable_params.safetensors"
    good = params.read_bytes()
    params.write_bytes(good[:-2] + bytes([good[-2] ^ 0xFF]) + good[-1:])  # a flipped byte in a tensor
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    with pytest.raises(
        CheckpointError, match=r"trainable_params\.safetensors is corrupt .*/trainer_state\.json records"
    ):
        train(
            ddp_script.make_model(),
            data,
            ddp_script.collate,
            _config(tmp_path, resume_from_checkpoint="latest", **common),
        )
    params.write_bytes(good)

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    resumed = ddp_script.make_model(lora_dropout=0.1)
    torch.manual_seed(123)  # whatever the RNG holds now, the checkpoint's state replaces it
    result = train(resumed, data, ddp_script.collate, _config(tmp_path, resume_from_checkpoint="latest", **common))

    assert result.global_step == 6
    expected, got = _trainable(full), _trainable(resumed)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[n], got[n]) for n in expected), "resumed run differs from the uninterrupted one"
    assert not torch.equal(_trainable(interrupted)[next(iter(got))], got[next(iter(got))])


def test_gradient_checkpointing_and_bf16_train_the_same_adapters(tmp_path):
    trained = {}
    for name, setting in [("plain", {}), ("checkpointing", {"gradient_checkpointing": True}), ("bf16", {})]:
        model = ddp_script.make_model(lora_dropout=0.1)
        mixed_precision = "bf16" if name == "bf16" else "no"
        config = _config(tmp_path / name, max_steps=2, mixed_precision=mixed_precision, **setting)
        train(model, ddp_script.make_dataset(4), ddp_script.collate, config)
        trained[name] = _trainable(model)
        AcceleratorState._reset_state(reset_partial_state=True)  # another mixed precision needs a fresh state
    plain = trained["plain"]
    assert all(torch.equal(plain[n], trained["checkpointing"][n]) for n in plain), "recomputation changed the result"
    assert all(torch.allclose(plain[n], trained["bf16"][n], atol=1e-2) for n in plain)


def test_bad_setups_fail_clearly(tmp_path):
    data = ddp_script.make_dataset(4)
    model = ddp_script.make_model()
    with pytest.raises(TrainingConfigError, match="`save_best=True` needs something to evaluate"):
        train(model, data, ddp_script.collate, _config(tmp_path, max_steps=1, save_best=True))
    with pytest.raises(KGFileNotFoundError, match=r"No resumable checkpoint at .*nowhere"):
        train(model, data, ddp_script.collate, _config(tmp_path, resume_from_checkpoint=str(tmp_path / "nowhere")))
    if not is_tensorboard_available():
        with pytest.raises(TrainingConfigError, match="includes 'tensorboard', but neither tensorboard nor"):
            train(model, data, ddp_script.collate, _config(tmp_path, max_steps=1, log_with=["tensorboard"]))
    with pytest.raises(
        TrainingConfigError, match=r"`metric_for_best_model` is 'accuracy', but evaluation .*\['loss'\]"
    ):
        config = _config(tmp_path, max_steps=1, save_best=True, metric_for_best_model="accuracy")
        train(model, data, ddp_script.collate, config, eval_dataset=data)


# ------------------------------------------------------------ the output folder
@pytest.mark.parametrize("where", ["file", "file/run", "/proc/x"])
def test_unwritable_output_dir_fails_before_training(tmp_path, where):
    (tmp_path / "file").write_text("")
    output_dir = where if where.startswith("/") else str(tmp_path / where)
    steps = []
    handle = register_optimizer_step_post_hook(lambda *args: steps.append(1))
    try:
        with pytest.raises(OutputPathError, match=rf"`output_dir` {output_dir} (is a file|cannot be written)"):
            train(
                ddp_script.make_model(),
                ddp_script.make_dataset(4),
                ddp_script.collate,
                _config(tmp_path, output_dir=output_dir),
            )
    finally:
        handle.remove()
    assert steps == [], "no step was trained"


def test_output_dir_is_held_by_one_run(tmp_path):
    from filelock import FileLock

    run = tmp_path / "run"
    run.mkdir()
    other = FileLock(run / LOCK_NAME, timeout=0)
    other.acquire()  # another run writing there
    try:
        with pytest.raises(OutputPathError, match=rf"`output_dir` {run} is in use by another training run"):
            train(
                ddp_script.make_model(), ddp_script.make_dataset(4), ddp_script.collate, _config(tmp_path, max_steps=1)
            )
    finally:
        other.release()
    train(ddp_script.make_model(), ddp_script.make_dataset(4), ddp_script.collate, _config(tmp_path, max_steps=1))
    assert other.acquire() and other.is_locked, "released when the run ended"
    other.release()


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("name", ["final", "best"])
def test_a_users_final_or_best_folder_is_refused_before_training_not_deleted(tmp_path, name, overwrite):
    mine = tmp_path / "run" / name
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    steps = []
    handle = register_optimizer_step_post_hook(lambda *args: steps.append(1))
    try:
        with pytest.raises(OutputPathError, match=rf"{mine} holds files that are not a saved adapter.s"):
            train(
                ddp_script.make_model(),
                ddp_script.make_dataset(4),
                ddp_script.collate,
                _config(tmp_path, max_steps=1, overwrite_output_dir=overwrite),
            )
    finally:
        handle.remove()
    assert steps == [], "refused before training"
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_users_folder_made_during_training_is_not_replaced_by_the_save(tmp_path):
    best = tmp_path / "run" / "best"

    def evaluate(model, accelerator):  # the user makes `best` after the run has started
        best.mkdir(exist_ok=True)
        (best / "notes.txt").write_text("keep me")
        return {"loss": 1.0}

    config = _config(tmp_path, max_steps=1, eval_steps=1, save_best=True)
    with pytest.raises(OutputPathError, match=r"best holds files that are not a saved adapter.s"):
        train(ddp_script.make_model(), ddp_script.make_dataset(4), ddp_script.collate, config, evaluate=evaluate)
    assert [p.name for p in best.iterdir()] == ["notes.txt"]


def test_an_adapter_the_trainer_saved_is_replaced_by_the_next_run(tmp_path):
    data = ddp_script.make_dataset(4)
    train(ddp_script.make_model(), data, ddp_script.collate, _config(tmp_path, max_steps=1))
    train(ddp_script.make_model(), data, ddp_script.collate, _config(tmp_path, max_steps=2))
    assert json.loads((tmp_path / "run" / "final" / "trainer_state.json").read_text())["global_step"] == 2


def test_earlier_run_checkpoints_are_refused_unless_resumed_or_overwritten(tmp_path):
    data = ddp_script.make_dataset(8)
    first = _config(tmp_path, max_steps=4, save_steps=1, save_total_limit=2, log_with=["csv"], logging_steps=1)
    train(ddp_script.make_model(), data, ddp_script.collate, first)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]

    fresh = _config(tmp_path, max_steps=2, save_steps=1, save_total_limit=2)
    with pytest.raises(OutputPathError, match=r"holds checkpoints of an earlier run \(checkpoint-3, checkpoint-4\)"):
        train(ddp_script.make_model(), data, ddp_script.collate, fresh)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"], "left alone"

    resumed = _config(tmp_path, max_steps=5, save_steps=1, save_total_limit=2, resume_from_checkpoint="latest")
    assert train(ddp_script.make_model(), data, ddp_script.collate, resumed).global_step == 5

    overwrite = _config(tmp_path, max_steps=2, save_steps=1, save_total_limit=5, overwrite_output_dir=True)
    train(ddp_script.make_model(), data, ddp_script.collate, overwrite)
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"], "only this run's"
    assert not (run / "logs").exists(), "the earlier run's metrics.csv went with it"
    assert json.loads((run / "final" / "trainer_state.json").read_text())["global_step"] == 2


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    model = ddp_script.make_model()
    forward = type(model).forward
    calls = []

    def nan_from_batch_7(self, *args, **kwargs):  # steps 1-3 are fine, step 4 sees a NaN loss
        calls.append(1)
        out = forward(self, *args, **kwargs)
        if len(calls) >= 7:  # the trainer takes a causal LM's loss from the logits of labelled positions
            out["logits"] = out.logits * float("nan")
            if out.get("loss") is not None:
                out["loss"] = out.loss * float("nan")
        return out

    monkeypatch.setattr(type(model), "forward", nan_from_batch_7)
    config = _config(tmp_path, max_steps=6, save_steps=2, gradient_accumulation_steps=2)
    with pytest.raises(
        TrainingDivergedError, match=r"the training loss became NaN or infinite at step 4\. .*run/checkpoint-2, is kept"
    ):
        train(model, ddp_script.make_dataset(20), ddp_script.collate, config)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == ["checkpoint-2"], (
        "no final, no NaN checkpoint"
    )
    saved = load_file(run / "checkpoint-2" / "trainable_params.safetensors")
    assert all(torch.isfinite(t).all() for t in saved.values())


def test_non_finite_parameters_are_not_saved(tmp_path):
    model = ddp_script.make_model()
    weight = next(p for p in model.parameters() if p.requires_grad)

    def overflow(optimizer, args, kwargs):  # a step with a finite loss can still take the weights to infinity
        with torch.no_grad():
            weight.fill_(float("inf"))

    handle = register_optimizer_step_post_hook(overflow)
    try:
        with pytest.raises(
            TrainingDivergedError, match=r"the trainable parameters became .* at step 1\. .*no checkpoint"
        ):
            train(model, ddp_script.make_dataset(2), ddp_script.collate, _config(tmp_path, max_steps=1))
    finally:
        handle.remove()
    assert not (tmp_path / "run" / "final").exists()


def test_saved_files_and_folders_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        config = _config(tmp_path, max_steps=2, save_steps=2, log_with=["csv"])
        train(ddp_script.make_model(), ddp_script.make_dataset(4), ddp_script.collate, config)
    finally:
        os.umask(old)
    run = tmp_path / "run"
    saved = [p for p in run.rglob("*") if p.name != LOCK_NAME]
    assert {p.relative_to(run).as_posix() for p in saved} >= {"checkpoint-2/optimizer.safetensors", "final/README.md"}
    wrong = {p.relative_to(run).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in saved}
    wrong = {k: m for k, m in wrong.items() if int(m, 8) != (0o750 if (run / k).is_dir() else 0o640)}
    assert wrong == {}


# ------------------------------------------------------------------------ DDP
@pytest.mark.slow
def test_two_process_ddp_keeps_replicas_identical(tmp_path):
    # `--cpu` alone would make `accelerate launch` start one process; ACCELERATE_USE_CPU with the
    # torchrun-based launcher starts two that form a gloo process group on the CPU.
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--main_process_port", str(free_port()), str(SCRIPT), str(tmp_path)]
    run_launcher(command, env, ROOT, tmp_path / "launch.log", timeout=120, what="two-process run")

    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert len(ranks[0]["hashes"]) == 4 and len(set(ranks[0]["hashes"])) == 4, "every step changed the adapters"
    assert ranks[0]["hashes"] == ranks[1]["hashes"], "the replicas differ after some step"
    train_seen = [[i for i in r["seen"] if i < 100] for r in ranks]
    for step in range(4):  # 2 samples per process per step, different on the two processes
        assert not set(train_seen[0][2 * step : 2 * step + 2]) & set(train_seen[1][2 * step : 2 * step + 2])
    assert all(r["metrics"]["predictions"] == 5 for r in ranks), "gather_for_metrics dropped the padding samples"
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoint-4").glob("rng_state_*.safetensors")) == [
        "rng_state_0.safetensors",
        "rng_state_1.safetensors",
    ]


def test_sharded_runs_refuse_resumable_checkpoints_and_save_gathered_weights(tmp_path, monkeypatch):
    import kgpeft.training.checkpoints as checkpoints
    import kgpeft.training.trainer as trainer

    # Under FSDP or DeepSpeed (which accelerate runs only on accelerators) the trainer refuses what
    # needs whole optimizer states, and saves adapters from accelerate's gathered state dict.
    monkeypatch.setattr(trainer, "is_sharded", lambda accelerator: True)
    with pytest.raises(TrainingConfigError, match="`save_steps` and `resume_from_checkpoint` are not supported"):
        train(ddp_script.make_model(), ddp_script.make_dataset(4), ddp_script.collate, _config(tmp_path, save_steps=1))
    assert not list((tmp_path / "run").glob("checkpoint-*"))

    gathered = []
    monkeypatch.setattr(checkpoints, "is_sharded", lambda accelerator: True)
    original = Accelerator.get_state_dict

    def get_state_dict(self, model, unwrap=True):
        gathered.append(model)
        return original(self, model, unwrap=unwrap)

    monkeypatch.setattr(Accelerator, "get_state_dict", get_state_dict)
    model = ddp_script.make_model()
    result = train(model, ddp_script.make_dataset(4), ddp_script.collate, _config(tmp_path / "b", max_steps=2))
    assert len(gathered) == 1, "the final adapter was saved from the gathered state dict"
    _, model_config, auto = ARCHITECTURES[1]
    loaded = KGPeftModel.from_pretrained(build_model(model_config, auto), result.final_dir, tiny_kg(), tiny_tokenizer())
    loaded_params = dict(loaded.named_parameters())
    assert all(torch.equal(loaded_params[n], p) for n, p in _trainable(model).items())
