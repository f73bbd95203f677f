"""Variant kinds as objects: what a variant's `adapter` names, asked instead of compared."""

import pytest

from kgpeft.pipeline import VARIANT_KINDS, JobConfigError, Variant, VariantKind
from kgpeft.training.checkpoints import ADAPTER_FOLDERS


def test_one_registry_of_variant_kinds():
    assert list(VARIANT_KINDS) == ["none", "lora", "kg-lora"]
    assert all(isinstance(k, VariantKind) and k.name == name for name, k in VARIANT_KINDS.items())


@pytest.mark.parametrize(
    ("adapter", "reads", "trains", "folders"),
    [
        ("none", False, False, ()),
        ("lora", False, True, ADAPTER_FOLDERS),
        ("kg-lora", True, True, (*ADAPTER_FOLDERS, "adapter")),
    ],
)
def test_each_kind_says_what_it_reads_trains_and_writes(adapter, reads, trains, folders):
    kind = Variant("v", adapter=adapter).kind
    assert (kind.name, kind.reads_knowledge, kind.trains, kind.folders) == (adapter, reads, trains, folders)
    assert Variant("v", adapter=adapter).uses_knowledge is reads
    assert Variant("v", adapter=adapter, facts="prior").uses_knowledge


def test_the_config_still_names_the_kind():
    """Configs and saved runs keep `adapter: kg-lora`; the help lists each kind's meaning."""
    from kgpeft.configuration import field_help

    assert Variant().adapter == "kg-lora" and Variant().kind is VARIANT_KINDS["kg-lora"]
    help_ = field_help(Variant)["adapter"]
    assert all(f"`{name}` ({kind.help})" in help_ for name, kind in VARIANT_KINDS.items())
    with pytest.raises(JobConfigError, match=r"`adapter` should be one of \('none', 'lora', 'kg-lora'\), got 'qlora'"):
        Variant("v", adapter="qlora")
    with pytest.raises(JobConfigError, match="`knowledge` overrides a KG-LoRA adapter; variant 'v' has none"):
        Variant("v", adapter="lora", knowledge={"r": 2})


@pytest.mark.parametrize("mode", ["token", "cross", "prefix", "memory"])
def test_memory_facts_are_read_by_a_kg_lora_variant_whose_mode_reads_fact_memory(mode):
    from kgpeft.pipeline import JobConfig

    config = JobConfig.from_dict(
        {
            "model": "m",
            "adapter": {"knowledge_mode": mode},
            "retrieval": {"memory_facts": 3},
            "variants": [{"name": "plain", "adapter": "lora"}, {"name": "kg", "adapter": "kg-lora"}],
        }
    )
    plain, kg = config.variants
    assert plain.kind.memory_facts(config, plain) == 0
    assert kg.kind.memory_facts(config, kg) == (3 if mode == "memory" else 0)
    # a variant's own `knowledge` section decides for it
    config.variants[1] = Variant("kg", knowledge={"knowledge_mode": "memory" if mode != "memory" else "token"})
    assert config.variants[1].kind.memory_facts(config, config.variants[1]) == (0 if mode == "memory" else 3)


def test_prepare_reads_a_model_folders_headers_once(tmp_path, monkeypatch):
    """`prepare` checks the model folder before the slow loads and hands the checked folder on."""
    from kgpeft.pipeline import JobConfig, base_model, job

    calls = []
    checked = tmp_path / "model"

    def check(config):
        calls.append(config.model)
        return checked

    def loaded(config, folder=None):
        assert folder == checked
        raise RuntimeError("loaded")

    monkeypatch.setattr(job, "check_model_folder", check)
    monkeypatch.setattr(base_model, "check_model_folder", check)
    monkeypatch.setattr(job, "load_base_model", loaded)
    monkeypatch.setattr(job, "load_kg", lambda name: None)
    monkeypatch.setattr(job, "load_examples", lambda config, kg=None: {"train": [1], "valid": [], "test": []})
    config = JobConfig.from_dict({"model": str(checked), "task": "hypernym_qa", "retrieval": {"memory_facts": 2}})
    with pytest.raises(RuntimeError, match="loaded"):
        job.prepare(config)
    assert calls == [str(checked)]
