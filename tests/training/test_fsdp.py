"""FSDP2 with two CPU processes: the knowledge context survives sharding and activation checkpointing."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("fsdp_script.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_fsdp_matches_an_unsharded_reference_and_saves_full_weights(tmp_path):
    paths = [str(ROOT / "tests"), str(ROOT / "tests" / "training"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_port", str(_free_port()), str(SCRIPT), str(tmp_path)]
    log = tmp_path / "launch.log"
    with log.open("w") as out:
        launch = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            launch.wait(timeout=180)
        except subprocess.TimeoutExpired:
            for process in [*psutil.Process(launch.pid).children(recursive=True), psutil.Process(launch.pid)]:
                process.kill()
            launch.wait()
            pytest.fail(f"the two-process FSDP run hung:\n{log.read_text()[-5000:]}")
    assert launch.returncode == 0, log.read_text()[-5000:]

    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert all(r["sharded"] > 0 for r in ranks), "parameters are DTensor shards"
    assert ranks[0]["hashes"] == ranks[1]["hashes"], "the gathered parameters differ between ranks after some step"
    assert len(set(ranks[0]["hashes"])) == 3, "every step changed the adapters"
    assert ranks[0]["losses"] != ranks[1]["losses"], "each process trained on its own half of the batch"
    # sharded training on two halves equals unsharded training on the whole batch, up to float rounding
    assert max(ranks[0]["differences"]) < 1e-4, ranks[0]["differences"]
    assert ranks[0]["loaded_difference"] < 1e-4, "save_pretrained(state_dict=...) wrote the full, trained weights"
