"""`kgpeft.configuration`: the one path from a dict or a YAML file to a validated config."""

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.utils import set_seed
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from transformers import get_scheduler

from kgpeft.cli import main
from kgpeft.configuration import ConfigError, dataclass_from_dict, field_help, read_yaml
from kgpeft.errors import KGPeftError
from kgpeft.kge import KGEConfig, KGEConfigError
from kgpeft.kge.distillation import DistillationConfig, DistillationConfigError
from kgpeft.kge.job import KGEJob
from kgpeft.pipeline import JobConfig, JobConfigError, Variant
from kgpeft.retrieval import RetrievalConfig, RetrievalConfigError
from kgpeft.training.config import TrainingConfig, TrainingConfigError
from kgpeft.training.fact_selection import FactScorerConfig
from kgpeft.tuners.config import KGLoraConfig, KGLoraConfigError


class SectionError(ConfigError):
    pass


@dataclass
class Inner:
    size: int = field(default=1, metadata={"help": "A size."})

    def __post_init__(self):
        if self.size < 1:
            raise SectionError(f"`size` should be at least 1, got {self.size}.")


@dataclass
class Outer:
    name: str = field(metadata={"help": "Required."})
    rate: float = field(default=0.5, metadata={"help": "A rate."})
    tags: list[str] = field(default_factory=list, metadata={"help": "Tags."})
    inner: Inner = field(default_factory=Inner, metadata={"help": "A section."})
    extra: Inner | None = field(default=None, metadata={"help": "An optional section."})


def test_nested_sections_are_built():
    config = dataclass_from_dict(Outer, {"name": "a", "rate": 1, "inner": {"size": 3}, "extra": {"size": 2}}, "outer")
    assert config == Outer(name="a", rate=1, inner=Inner(3), extra=Inner(2))
    assert dataclass_from_dict(Outer, {"name": "a", "extra": None}, "outer").extra is None
    assert dataclass_from_dict(Outer, {"name": "a", "inner": Inner(5)}, "outer").inner == Inner(5)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": "a", "rat": 1.0}, "unknown key 'rat' in outer; did you mean 'rate'?"),
        ({"name": "a", "colour": 1}, "unknown key 'colour' in outer; known keys: name, rate, tags, inner, extra."),
        ({"name": "a", "rate": "fast"}, "`rate` in outer should be float, got str 'fast'"),
        ({"name": "a", "rate": True}, "`rate` in outer should be float, got bool True."),
        ({"name": "a", "tags": [1]}, "`tags` in outer should be a list of str, got list [1]."),
        ({"name": "a", "inner": {"sise": 2}}, "unknown key 'sise' in inner; did you mean 'size'?"),
        ({"name": "a", "inner": {"size": "2"}}, "`size` in inner should be int, got str '2'."),
        ({"name": "a", "inner": 3}, "`inner` in outer should be a mapping, got int 3."),
        ({"name": "a", "extra": {"size": 0}}, "extra: `size` should be at least 1, got 0."),
        ({"rate": 1.0}, "the key 'name' is required in outer."),
    ],
)
def test_errors_name_the_key(values, message):
    with pytest.raises(SectionError) as info:
        dataclass_from_dict(Outer, values, "outer", SectionError)
    assert str(info.value).startswith(message)


def test_read_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb: [x, y]\n")
    assert read_yaml(path) == {"a": 1, "b": ["x", "y"]}
    path.write_text("")
    assert read_yaml(path) == {}
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=rf"^{path}: expected a mapping of settings, got list"):
        read_yaml(path)
    path.write_text("a: [1\n")
    with pytest.raises(ConfigError, match=rf"^{path}: cannot read config"):
        read_yaml(path)
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'none.yaml'}: cannot read config"):
        read_yaml(tmp_path / "none.yaml")
    assert issubclass(ConfigError, KGPeftError) and issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: 1\nseed: 0\nlr: 2\n", ":3: duplicate key 'lr' (first on line 1)."),
        ("training:\n  lr: 1\n\n  lr: 1\n", ":4: duplicate key 'lr' (first on line 2)."),
        ("a:\n  - {x: 1, y: 2, x: 3}\n", ":2: duplicate key 'x' (first on line 2)."),
        ("1: a\n0x1: b\n", ":2: duplicate key 1 (first on line 1)."),  # the same int, written twice
    ],
)
def test_read_yaml_duplicate_keys_are_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    assert str(info.value) == f"{path}{message}"


def test_read_yaml_merge_keys_may_be_overridden(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "base: &b {lr: 1, seed: 0}\nrun: &r\n  <<: *b\n  lr: 2\nagain:\n  <<: *r\n  seed: 3\nloop: &l [*l]\n"
    )
    values = read_yaml(path)
    assert values["run"] == {"lr": 2, "seed": 0} and values["again"] == {"lr": 2, "seed": 3}
    assert values["loop"][0] is values["loop"]


CONFIGS = [KGLoraConfig, TrainingConfig, DistillationConfig, KGEConfig, JobConfig, KGEJob]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_has_help(cls):
    helps = field_help(cls)
    assert helps and all(len(text) > 5 for text in helps.values()), helps


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: KGLoraConfig.from_dict({"r": 0}), KGLoraConfigError, "`r` should be a positive integer, got 0."),
        (lambda: KGLoraConfig(lora_dropout=1.0), KGLoraConfigError, "`lora_dropout` should be in [0, 1), got 1.0."),
        (lambda: RetrievalConfig(num_neighbors=[0]), RetrievalConfigError, "`num_neighbors` should be a non-empty"),
        (lambda: KGLoraConfig.from_dict({"r": "8"}), KGLoraConfigError, "`r` in adapter config should be int"),
        (lambda: TrainingConfig(max_steps=-5), TrainingConfigError, "`max_steps` should be a positive integer, got -5"),
        (lambda: TrainingConfig(learning_rate=0), TrainingConfigError, "`learning_rate` should be positive, got 0."),
        (lambda: DistillationConfig("t", weight=-1), DistillationConfigError, "`weight` should be non-negative"),
        (lambda: DistillationConfig("t", num_candidates=1), DistillationConfigError, "`num_candidates` should be at"),
        (lambda: DistillationConfig.from_dict({}), DistillationConfigError, "the key 'teacher' is required"),
        (lambda: KGEConfig(optimizer="sgd"), KGEConfigError, "`optimizer` should be one of ('adam', 'adagrad'), got"),
        (lambda: KGEConfig(num_epochs=-1), KGEConfigError, "`num_epochs` should be a non-negative integer, got -1."),
        (
            lambda: JobConfig.from_dict({"model": "m", "retrieval": {"num_facts": -1}}),
            JobConfigError,
            "retrieval: `num_facts` should be a non-negative integer",
        ),
        (lambda: JobConfig(model="m", task_type="x"), JobConfigError, "`task_type` should be one of"),
    ],
)
def test_invalid_values_are_config_errors_naming_the_key(build, error, message):
    with pytest.raises(error) as info:
        build()
    assert issubclass(error, ConfigError) and str(info.value).startswith(message), str(info.value)


def test_job_config_sections_are_configs():
    config = JobConfig.from_dict(
        {"model": "m", "adapter": {"r": 4}, "training": {"max_steps": 3}, "distillation": {"teacher": "t"}}
    )
    assert config.adapter_config() == KGLoraConfig(r=4) and config.training_config() == TrainingConfig(max_steps=3)
    assert config.distillation_config() == DistillationConfig(teacher="t")
    classification = JobConfig.from_dict({"model": "m", "task_type": "classification", "num_labels": 3})
    assert classification.adapter.modules_to_save == ["classifier", "score"]
    with pytest.raises(JobConfigError, match=r"^job\.yaml: adapter: `r` should be a positive integer, got 0\.$"):
        JobConfig.from_dict({"model": "m", "adapter": {"r": 0}}, source="job.yaml")


def test_saved_adapter_configs_ignore_unknown_keys_with_a_warning():
    with pytest.warns(UserWarning, match=r"Ignoring unknown KGLoraConfig keys \['future'\]"):
        config = KGLoraConfig.from_dict({"r": 2, "future": 1})
    assert config == KGLoraConfig(r=2)


# Random values for the known keys of a job config: wrong types, out-of-range numbers, nulls, strings for
# numbers, non-finite floats, nested lists and mappings.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["0.1", "1e-4", "-1", "memory", "prior", "lora", "latest", "cosine_with_min_lr", "csv", "kge"]),
)
VALUES = st.one_of(
    st.integers(0, 8),  # often in range, so that many configs are valid and reach the loaders
    st.floats(0, 0.9),
    st.booleans(),
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    ),
)
SECTIONS = {
    None: JobConfig,
    "adapter": KGLoraConfig,
    "retrieval": RetrievalConfig,
    "training": TrainingConfig,
    "selection": FactScorerConfig,
    "distillation": DistillationConfig,
    "variants": Variant,
}


@st.composite
def changes(draw):
    """``(section, key, value)``: a known key of the job config or of one of its sections, set to a random value."""
    section = draw(st.sampled_from(list(SECTIONS)))
    key = draw(st.sampled_from([f.name for f in dataclasses.fields(SECTIONS[section])]))
    return section, key, draw(VALUES)


def _settings_work(config: JobConfig) -> None:
    """What a valid config's settings are handed to without a model accepts them (model folder, seeds, schedule)."""
    assert (Path(config.model) / "config.json").is_file()
    assert all(
        math.isfinite(getattr(config.adapter, f.name)) for f in dataclasses.fields(config.adapter) if f.type == "float"
    )
    training = config.training
    set_seed(config.seed)
    set_seed(training.seed)
    if config.selection is not None:
        set_seed(config.selection.seed)
    optimizer = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=training.learning_rate)
    scheduler = get_scheduler(
        training.lr_scheduler_type,
        optimizer,
        num_warmup_steps=training.warmup_steps,
        num_training_steps=training.max_steps or 10,
        scheduler_specific_kwargs=training.lr_scheduler_kwargs or None,
    )
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    assert all(math.isfinite(group["lr"]) for group in optimizer.param_groups)


class Loaded(BaseException):
    """A KG or a model started loading (a BaseException: no `except Exception` in kgpeft swallows it)."""


@pytest.fixture
def job_files(tmp_path, monkeypatch):
    """A valid job config's files, with the KG and model loaders replaced by ones that raise `Loaded`."""
    from kgpeft.pipeline import job

    def loader(*args, **kwargs):
        raise Loaded

    monkeypatch.setattr(job, "load_kg", loader)
    monkeypatch.setattr(job, "load_base_model", loader)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "teacher.safetensors").write_text("")
    (tmp_path / "task.jsonl").write_text('{"text": "the dog", "answer": "animal", "split": "train"}\n')
    base = {"model": str(tmp_path / "model"), "kg": "tiny", "task": str(tmp_path / "task.jsonl")}
    base["training"] = {"output_dir": str(tmp_path / "run")}
    return tmp_path, base


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(changes(), min_size=1, max_size=3))
@example(edits=[("training", "lr_scheduler_kwargs", {"bogus": 1})])
@example(edits=[("training", "lr_scheduler_type", "cosine_with_min_lr")])
@example(edits=[("training", "seed", -1)])
@example(edits=[(None, "seed", 2**40)])
@example(edits=[(None, "model", "nowhere")])
@example(edits=[("adapter", "memory_gate_scale", math.inf)])
@example(edits=[("adapter", "lora_dropout", "0.1")])
@example(edits=[(None, "max_train_examples", 0)])
def test_random_job_configs_validate_or_name_the_key_before_anything_loads(job_files, capsys, edits):
    """`kgpeft train` on a config of random values: a `Loaded` (it validated, then loading began) or exit
    status 2 with one line naming a key it changed; never another exception, never a load before that."""
    folder, values = job_files
    values = copy.deepcopy(values)
    for section, key, value in edits:
        if section is None:
            values[key] = value
        elif section == "variants":
            values["variants"] = [{key: value}]
        elif isinstance(values.get(section), dict):
            values[section][key] = value
        else:
            values[section] = {"teacher": str(folder / "teacher.safetensors")} if section == "distillation" else {}
            values[section][key] = value
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(values))
    try:
        status = main(["train", "--config", str(path)])
    except Loaded:
        event("valid")
        _settings_work(JobConfig.from_yaml(path))
        return
    event("refused")
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("kgpeft train: error: ") and err.count("\n") == 1, err
    named = {key for _, key, _ in edits} | {section for section, _, _ in edits if section}
    assert any(name in err for name in named), (err, edits)
