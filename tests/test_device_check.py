"""``python -m benchmarks.device_check`` runs end to end (``--smoke``: CPU, toy model) and writes its JSON."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_device_check_smoke_writes_every_section(tmp_path):
    output = tmp_path / "device_check.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.device_check",
        "--smoke",
        "--out",
        str(tmp_path),
        "--output",
        str(output),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(output.read_text())
    assert results["smoke"] is True
    tests = results["cuda_tests"]
    assert tests["returncode"] == 0 and tests["failures"] == tests["errors"] == 0 and tests["tests"] >= 1
    steps = results["steps_bf16"]
    assert "error" not in steps, steps.get("traceback")
    for name in ("lora", "lora+2 facts", "kg-lora memory", "kg-lora token"):
        assert steps[name]["step_s"] > 0 and steps[name]["tokens_per_s"] > 0
    assert steps["lora"]["step_vs_lora"] == 1.0
    assert "skipped" in results["steps_4bit"] and results["main_job"] == {"skipped": "--smoke"}
    # the main memory design on a q/k-norm family and a fused q/k/v one: an adapter reading no facts is LoRA
    families = results["families_bf16"]
    assert set(families) == {"qwen3", "phi3"}, families.get("traceback")
    for row in families.values():
        assert row["finite"] and row["no_facts_vs_lora_max_abs"] == 0.0 and row["memory"]["step_vs_lora"] > 0
    assert "skipped" in results["families_4bit"]
    # the step times are the harness's rows too
    assert {(r["section"], r["variant"]) for r in results["rows"]} == {
        ("steps_bf16", name) for name in ("lora", "lora+2 facts", "kg-lora memory", "kg-lora token")
    }
