"""The training loop: config checks, saved folders and logs, exact resumption, DDP with two processes."""

import csv
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import is_tensorboard_available
from tiny_models import ARCHITECTURES, build_model, tiny_kg, tiny_tokenizer
from torch.optim.optimizer import register_optimizer_step_post_hook

from kgpeft.errors import KGFileNotFoundError
from kgpeft.model import KGPeftModel
from kgpeft.training.config import TrainingConfig, TrainingConfigError
from kgpeft.training.trainer import train

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
    assert not [p for p in run.iterdir() if p.name.startswith(".")], "no temporary folders left behind"


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
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    checkpoint = run / "checkpoint-4"
    assert {p.suffix for p in checkpoint.iterdir()} <= {".json", ".safetensors", ".md"}, "no pickle"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    # epoch 0: steps 1, 2 and 3 (its last batch alone); epoch 1: step 4 after batches 0 and 1
    assert (state["global_step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 2)

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


# ------------------------------------------------------------------------ DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    command += ["--main_process_port", str(_free_port()), str(SCRIPT), str(tmp_path)]
    log = tmp_path / "launch.log"
    with log.open("w") as out:
        launch = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            launch.wait(timeout=120)
        except subprocess.TimeoutExpired:
            for process in [*psutil.Process(launch.pid).children(recursive=True), psutil.Process(launch.pid)]:
                process.kill()  # the workers run in sessions of their own: kill each by its id
            launch.wait()
            pytest.fail(f"the two-process run hung:\n{log.read_text()[-5000:]}")
    assert launch.returncode == 0, log.read_text()[-5000:]

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
