"""Every shipped config reads: the job configs as JobConfig, the accelerate ones as accelerate configs."""

from pathlib import Path

import pytest
import yaml

from kgpeft.configuration import read_yaml
from kgpeft.pipeline import JobConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_job_configs_read(path):
    config = JobConfig.from_dict(read_yaml(path))
    assert config.variants and config.training.output_dir


def test_one_gpu_recipe_quantises_with_checkpointing_and_bf16():
    config = JobConfig.from_dict(read_yaml(CONFIGS / "qlora.yaml"))
    assert config.quantization == "4bit" and config.training.mixed_precision == "bf16"
    assert config.training.gradient_checkpointing and config.adapter.knowledge_mode == "memory"


@pytest.mark.parametrize("name", ["ddp.yaml", "fsdp.yaml", "deepspeed_zero2.yaml"])
def test_accelerate_configs_are_accelerate_configs(name):
    from accelerate.commands.config.config_args import ClusterConfig

    path = CONFIGS / "accelerate" / name
    assert yaml.safe_load(path.read_text())["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")
    config = ClusterConfig.from_yaml_file(path)  # accelerate's own reader: refuses unknown keys
    assert config.num_processes == 2 and config.mixed_precision == "bf16"
    if name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_version"] == 2
    if name == "deepspeed_zero2.yaml":
        assert config.deepspeed_config["zero_stage"] == 2
