"""FSDP2 with two CPU processes: the knowledge context survives sharding and activation checkpointing."""

import json
import os
import sys
from pathlib import Path

import pytest
from launching import free_port, run_launcher

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("fsdp_script.py")


@pytest.mark.slow
def test_two_process_fsdp_matches_an_unsharded_reference_and_saves_full_weights(tmp_path):
    paths = [str(ROOT / "tests"), str(ROOT / "tests" / "training"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_port", str(free_port()), str(SCRIPT), str(tmp_path)]
    run_launcher(command, env, ROOT, tmp_path / "launch.log", timeout=180, what="two-process FSDP run")

    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert all(r["sharded"] > 0 for r in ranks), "parameters are DTensor shards"
    assert ranks[0]["hashes"] == ranks[1]["hashes"], "the gathered parameters differ between ranks after some step"
    assert len(set(ranks[0]["hashes"])) == 3, "every step changed the adapters"
    assert ranks[0]["losses"] != ranks[1]["losses"], "each process trained on its own half of the batch"
    # sharded training on two halves equals unsharded training on the whole batch, up to float rounding
    assert max(ranks[0]["differences"]) < 1e-4, ranks[0]["differences"]
    assert ranks[0]["loaded_difference"] < 1e-4, "save_pretrained(state_dict=...) wrote the full, trained weights"
