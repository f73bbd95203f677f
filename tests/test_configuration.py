"""`kgpeft.configuration`: the one path from a dict or a YAML file to a validated config."""

import contextlib
import copy
import dataclasses
import math
import os
import threading
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
from kgpeft.configuration import (
    MAX_ALIAS_EXPANSION,
    MAX_CONFIG_BYTES,
    ConfigError,
    dataclass_from_dict,
    field_help,
    read_yaml,
)
from kgpeft.errors import KGPeftError
from kgpeft.kge import KGEConfig, KGEConfigError
from kgpeft.kge.distillation import DistillationConfig, DistillationConfigError
from kgpeft.kge.job import KGEJob
from kgpeft.pipeline import JobConfig, JobConfigError, Variant
from kgpeft.retrieval import RetrievalConfig, RetrievalConfigError
from kgpeft.selection import FactScorerConfig
from kgpeft.training.config import TrainingConfig, TrainingConfigError
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
    path.write_text("base: &b {lr: 1, seed: 0}\nrun: &r\n  <<: *b\n  lr: 2\nagain:\n  <<: *r\n  seed: 3\n")
    values = read_yaml(path)
    assert values["run"] == {"lr": 2, "seed": 0} and values["again"] == {"lr": 2, "seed": 3}
    path.write_text("seed: 0\nloop: &l [1, *l]\n")  # a value that holds itself: no config has one
    with pytest.raises(ConfigError, match=rf"^{path}:2: this value holds itself through a YAML alias"):
        read_yaml(path)


def _alias_bomb(levels: int = 8, setting: str = "seed: {}") -> str:
    """YAML of a few hundred bytes whose ``setting`` expands, through aliases, to ``9 ** levels`` strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels - 1)]
    lines.append(setting.format(f"[{','.join([f'*a{levels - 2}'] * 9)}]"))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("setting", ["seed: {}", "training: {{lr_scheduler_kwargs: {}}}"])
def test_read_yaml_refuses_alias_bombs(tmp_path, setting):
    """The issue's bomb: a setting that expands to 9**8 strings, >2.5 GB in the type error that printed it."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(8, setting))
    assert len(path.read_bytes()) < 450
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: YAML aliases repeat values beyond 100,000 values"):
        read_yaml(path)
    # A config repeating a section a few times through aliases still reads.
    path.write_text("a: &a {lr: 1, seed: 0, tags: [x, y, z]}\nb: [*a, *a, *a, *a]\nc: {<<: *a, lr: 2}\n")
    assert read_yaml(path)["b"] == [{"lr": 1, "seed": 0, "tags": ["x", "y", "z"]}] * 4


def _pipe(data: bytes) -> str:
    """A path like bash's ``<(...)`` (``/dev/fd/N``) to a pipe that a thread fills with ``data``."""
    read, write = os.pipe()

    def fill():
        with contextlib.suppress(BrokenPipeError), open(write, "wb") as f:
            f.write(data)

    threading.Thread(target=fill, daemon=True).start()
    return f"/dev/fd/{read}"


def test_read_yaml_reads_files_and_pipes_up_to_a_size_cap(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# comment\n" * (MAX_CONFIG_BYTES // 10) + "seed: 1\n")  # just over the cap
    with pytest.raises(ConfigError, match=rf"^{path}: cannot read config: larger than 1,048,576 bytes"):
        read_yaml(path)
    path.write_text("# comment\n" * (MAX_CONFIG_BYTES // 10 - 1) + "seed: 1\n")
    assert read_yaml(path) == {"seed": 1}
    pipe = _pipe(b"seed: 2\n")
    assert read_yaml(pipe) == {"seed": 2}
    pipe = _pipe(b"# comment\n" * MAX_CONFIG_BYTES)  # 10 MB that would all be read before
    with pytest.raises(ConfigError, match=rf"^{pipe}: cannot read config: larger than 1,048,576 bytes"):
        read_yaml(pipe)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_read_yaml_refuses_devices(device):
    """`--config /dev/zero` read forever; a device is no config file."""
    with pytest.raises(ConfigError, match=rf"^{device}: cannot read config: it is a device; give a YAML file\.$"):
        read_yaml(device)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: 2001-02-30\n", r"cannot read config \(day is out of range for month\)"),
        ("seed: " + "1" * 5000 + "\n", r"cannot read config \(Exceeds the limit \(4300 digits\)"),
        ("seed: " + "[" * 5000, "cannot read config: values nested too deeply"),
        ("seed: *" + "a" * 5000 + "\n", r"cannot read config \(found undefined alias 'aaaa.*\.\.\.\)$"),
        (f"? {'x' * 5000}\n: 1\n? {'x' * 5000}\n: 2\n", r":3: duplicate key 'xxx.*xxx' \(first on line 1\)\.$"),
    ],
)
def test_read_yaml_malformed_values_are_short_config_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{path}:?.*{message}") as info:
        read_yaml(path)
    assert len(str(info.value)) < len(str(path)) + 400


def test_type_errors_print_a_bounded_repr(tmp_path):
    value = ["lol"]
    for _ in range(6):
        value = [value] * 9  # 9**6 strings, shared as YAML aliases share them
    with pytest.raises(JobConfigError, match=r"^`seed` in job config should be int, got list \[\[\[") as info:
        JobConfig.from_dict({"model": "m", "seed": value})
    assert len(str(info.value)) < 200
    with pytest.raises(JobConfigError, match=r"^`model` in job config should be str, got list \['xxx.*\.\.\.\.$"):
        JobConfig.from_dict({"model": ["x" * 1000] * 1000})
    path = tmp_path / "job.yaml"
    path.write_text("model: m\nseed: 0x" + "f" * 5000 + "\n")  # printing it would raise ValueError
    with pytest.raises(JobConfigError, match=rf"^{path}: `seed` in job config should be int, got int <int of 20000"):
        JobConfig.from_yaml(path)
    path.write_text("model: m\nretrieval: {num_neighbors: [0x" + "f" * 5000 + "]}\n")
    with pytest.raises(
        JobConfigError, match=r"`num_neighbors` in retrieval should be a list of int, got list \[<int of"
    ):
        JobConfig.from_yaml(path)


@pytest.mark.parametrize("command", ["train", "link"])
def test_cli_refuses_unbounded_configs_in_one_line(tmp_path, capsys, command):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb(8, "max_facts: {}" if command == "link" else "seed: {}"))
    for config, message in [("/dev/zero", "it is a device"), (str(bomb), "YAML aliases repeat values beyond")]:
        assert main([command, "--config", config]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"kgpeft {command}: error: {config}") and message in err and err.count("\n") == 1, err
    path = tmp_path / "link.yaml"
    path.write_text("max_facts: [" + ", ".join(["x" * 1000] * 1000) + "]\n")  # 1 MB of value
    assert main(["link", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "`max_facts` in link config should be int, got list ['xxx" in err and len(err) < 300, err


@st.composite
def aliased_configs(draw):
    """A job config's YAML with anchors (``&a3``): lists or mappings that repeat earlier anchors (rarely their
    own: a cycle), one of them set as ``seed``, ``lr_scheduler_kwargs`` or ``adapter``; sometimes with stray
    YAML characters."""
    anchors = []
    for i in range(draw(st.integers(1, 10))):
        refs = st.just(i) if draw(st.integers(0, 19)) == 0 else st.integers(0, i - 1) if i else st.nothing()
        items = draw(st.lists(refs.map(lambda j: f"*a{j}") | st.text("xyz", min_size=1, max_size=40), max_size=12))
        body = ", ".join(items) if draw(st.booleans()) else ", ".join(f"k{k}: {v}" for k, v in enumerate(items))
        anchors.append(f"  a{i}: &a{i} {'[' if body[:1] != 'k' else '{'}{body}{']' if body[:1] != 'k' else '}'}")
    use = f"*a{draw(st.integers(0, len(anchors) - 1))}"
    setting = draw(st.sampled_from([f"seed: {use}", f"training: {{lr_scheduler_kwargs: {use}}}", f"adapter: {use}"]))
    text = "model: m\nanchors:\n" + "\n".join(anchors) + f"\n{setting}\n"
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text("[]{}&*:,!'\"\n -", max_size=4)) + text[at:]
    return text


def _expanded_size(value, limit: int) -> int:
    """The values and characters of ``value`` with shared parts counted each time, counted up to ``limit``."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        total += 1 + (len(item) if isinstance(item, str) else 0)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=aliased_configs())
@example(text=_alias_bomb(8))
def test_any_aliased_config_reads_bounded_or_is_refused_in_a_short_line(tmp_path, text):
    """A config of aliases reads to values no bigger than its text plus MAX_ALIAS_EXPANSION, or is refused;
    a job config built from it is valid or refused; every message is short, whatever the values hold."""
    path = tmp_path / "job.yaml"
    path.write_text(text)
    try:
        values = read_yaml(path)
    except ConfigError as e:
        assert str(e).startswith(f"{path}") and len(str(e)) < len(str(path)) + 400, str(e)
        event("refused by read_yaml")
        return
    assert _expanded_size(values, 10**7) <= len(text) + MAX_ALIAS_EXPANSION
    values.pop("anchors", None)
    try:
        JobConfig.from_dict(values, source=str(path))
    except JobConfigError as e:
        # An unknown key's message lists the section's known keys (a fixed text, up to ~500 characters).
        known = max(len(", ".join(f.name for f in dataclasses.fields(c))) for c in (JobConfig, TrainingConfig))
        assert len(str(e)) < len(str(path)) + known + 400, str(e)
        event("refused by JobConfig")
        return
    event("valid")


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
        {
            "model": "m",
            "adapter": {"r": 4, "knowledge_mode": "token"},
            "training": {"max_steps": 3},
            "distillation": {"teacher": "t"},
        }
    )
    assert config.adapter == KGLoraConfig(r=4, knowledge_mode="token")
    assert config.training == TrainingConfig(max_steps=3)
    assert config.distillation == DistillationConfig(teacher="t")
    classification = JobConfig.from_dict(
        {"model": "m", "adapter": {"knowledge_mode": "token"}, "task_type": "classification", "num_labels": 3}
    )
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
    (tmp_path / "model" / "config.json").write_text('{"model_type": "llama"}')  # checked before loading
    (tmp_path / "model" / "tokenizer.json").write_text("{}")
    (tmp_path / "teacher.safetensors").write_text("")
    (tmp_path / "task.jsonl").write_text('{"text": "the dog", "answer": "animal", "split": "train"}\n')
    base = {"model": str(tmp_path / "model"), "kg": "tiny", "task": str(tmp_path / "task.jsonl")}
    base["adapter"] = {"knowledge_mode": "token"}
    base["training"] = {"output_dir": str(tmp_path / "run")}
    return tmp_path, base


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(changes(), min_size=1, max_size=3))
@example(edits=[("training", "lr_scheduler_kwargs", {"bogus": 1})])
@example(edits=[("training", "lr_scheduler_type", "cosine_with_min_lr")])
@example(edits=[("training", "seed", -1)])
@example(edits=[(None, "seed", 2**40)])
@example(edits=[(None, "adapter", {})])  # the default memory mode without memory facts: the error names the adapter
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
