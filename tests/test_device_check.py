"""benchmarks/device_check.py runs end to end (``--smoke``: CPU, toy model) and writes its JSON."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_device_check_smoke_writes_every_section(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "device_check.py"), "--smoke", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "device_check.json").read_text())
    assert results["smoke"] is True
    tests = results["cuda_tests"]
    assert tests["returncode"] == 0 and tests["failures"] == tests["errors"] == 0 and tests["tests"] >= 1
    steps = results["steps_bf16"]
    assert "error" not in steps, steps.get("traceback")
    for name in ("lora", "lora+2 facts", "kg-lora memory", "kg-lora token"):
        assert steps[name]["step_s"] > 0 and steps[name]["tokens_per_s"] > 0
    assert steps["lora"]["step_vs_lora"] == 1.0
    assert "skipped" in results["steps_4bit"] and results["main_job"] == {"skipped": "--smoke"}
