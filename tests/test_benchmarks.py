"""benchmarks/ is one package: every module imports as ``benchmarks.<name>``, every benchmark takes the shared
options, and one writes the results file that ``benchmarks.report`` reads.

The checks run in a fresh Python started in the repository root (``python -m`` / ``-c`` there), as the
benchmarks are run: the package is not installed with kgpeft.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Modules of benchmarks/ that are shared code, not benchmarks (no ``benchmark()``).
HELPERS = {"harness", "main_job", "report", "timing"}
#: A benchmark's positional arguments, where it has any.
POSITIONAL = {"quality_table": ["runs"], "seed_robustness": ["tests/test_names.py"]}

#: Imports every module, parses every benchmark's command line, and runs the cheapest benchmark, with tiny
#: settings, to the file named by its first argument: in one process, to import torch and the rest once.
CHECK = """
import contextlib, importlib, importlib.util, io, json, sys
from pathlib import Path
import torch
from benchmarks.harness import RESULTS

POSITIONAL, ENCODER = json.loads(sys.argv[1]), sys.argv[2:]
report = {"benchmarks": {}, "helpers": [], "skipped": {}}
for path in sorted(Path("benchmarks").glob("*.py")):
    name = path.stem
    if name == "__init__":
        continue
    if name == "gretriever" and not all(importlib.util.find_spec(m) for m in ("pandas", "pcst_fast")):
        report["skipped"][name] = "needs kgpeft[benchmarks] (pandas, pcst_fast)"
        continue
    module = importlib.import_module(f"benchmarks.{name}")
    if not hasattr(module, "benchmark"):
        report["helpers"].append(name)
        continue
    bench = module.benchmark()
    args = bench.parse(["--threads", "1", *POSITIONAL.get(name, [])])
    report["benchmarks"][name] = {
        "bench_name": bench.name,
        "output": str(args.output) == str(RESULTS / f"{name}.json"),
        "threads": torch.get_num_threads(),
        "options": sorted(k for k in ("config", "seeds", "threads", "output") if hasattr(args, k)),
        "main": callable(getattr(module, "main", None)),
    }
from benchmarks import encoder
stderr = io.StringIO()
with contextlib.redirect_stderr(stderr):
    try:
        encoder.benchmark().parse(["--seeds", "0", "1"])
    except SystemExit as e:
        report["several_seeds"] = [e.code, stderr.getvalue()]
stdout = io.StringIO()
with contextlib.redirect_stdout(stdout):
    encoder.main(ENCODER)
report["encoder_printed"] = stdout.getvalue()
print(json.dumps(report))
"""


def python(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert not check or done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> tuple[dict, Path]:
    """What ``CHECK`` reports, and the encoder's results file."""
    output = tmp_path_factory.mktemp("results") / "encoder.json"
    tiny = ["--num-relations", "4", "--hidden", "8", "--decompositions", "full", "--num-graphs", "2"]
    tiny += ["--num-nodes", "4", "--num-edges", "16", "--max-rounds", "5", "--threads", "1", "--output", str(output)]
    done = python("-c", CHECK, json.dumps(POSITIONAL), *tiny)
    return json.loads(done.stdout.strip().splitlines()[-1]), output


def test_every_module_imports_from_the_package_and_takes_the_shared_options(checked):
    report, _ = checked
    found = set(report["benchmarks"]) | set(report["helpers"]) | set(report["skipped"])
    assert found == {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"__init__"}
    assert set(report["helpers"]) == HELPERS
    assert len(report["benchmarks"]) + len(report["skipped"]) == 22
    for name, seen in report["benchmarks"].items():
        assert seen["bench_name"] == name and seen["main"], name
        assert seen["output"], f"{name}: --output should default to benchmarks/results/{name}.json"
        assert seen["threads"] == 1, f"{name}: --threads 1 should set torch's threads"
        assert {"threads", "output"} <= set(seen["options"]), name
    # the benchmarks that run the job read a config; the ones that draw nothing at random take no seeds
    assert "config" in report["benchmarks"]["padding"]["options"]
    assert "config" not in report["benchmarks"]["encoder"]["options"]
    assert "seeds" not in report["benchmarks"]["linking"]["options"]


def test_no_benchmark_reaches_into_sys_path_or_imports_a_sibling_by_bare_name():
    for path in (ROOT / "benchmarks").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "sys.path" not in text, path.name
        for sibling in ("timing", "overhead", "main_job", "harness"):
            assert f"\nfrom {sibling} import" not in text and f"\nimport {sibling}\n" not in text, path.name


def test_a_benchmark_writes_the_results_schema_and_the_report_prints_it(checked):
    report, output = checked
    assert "FastRGCNConv ms" in report["encoder_printed"]  # it still prints what it measured
    record = json.loads(output.read_text())
    assert list(record) == ["name", "args", "versions", "started", "seconds", "rows"]
    assert record["name"] == "encoder" and record["args"]["hidden"] == [8] and record["args"]["threads"] == 1
    assert record["versions"]["torch"] and record["versions"]["kgpeft"] and record["seconds"] >= 0
    (row,) = record["rows"]
    assert row["types"] == 4 and row["hidden"] == 8 and row["weights"] == "full" and row["rounds"] >= 5
    assert row["rgcn_ms"] > 0 and row["fast_ms"] > 0 and row["fast_vs_rgcn"] > 0

    printed = python("-m", "benchmarks.report", str(output)).stdout.splitlines()
    assert printed[0].startswith("== encoder: started ") and str(output) in printed[0]
    assert printed[1].split() == list(row)
    assert printed[3].split()[:3] == ["4", "8", "full"]


def test_the_report_prints_a_table_per_kind_of_row(tmp_path):
    path = tmp_path / "x.json"
    rows = [{"table": "step", "variant": "lora", "step_s": 1.5}, {"table": "memory", "variant": "lora", "mb": 12345.6}]
    record = {"name": "x", "args": {}, "versions": {}, "started": "2026-01-01T00:00:00+00:00", "seconds": 1.0}
    path.write_text(json.dumps({**record, "rows": rows}))
    printed = python("-m", "benchmarks.report", str(path)).stdout.splitlines()
    step = ["-- step", "variant  step_s", "-------  ------", "   lora     1.5"]
    memory = ["-- memory", "variant      mb", "-------  ------", "   lora  12,346"]
    assert printed[1:] == [*step, *memory]


def test_the_report_refuses_a_file_that_is_not_a_results_file(tmp_path):
    other = tmp_path / "results.json"
    other.write_text(json.dumps({"name": "x", "rows": []}))
    done = python("-m", "benchmarks.report", str(other), check=False)
    assert done.returncode == 1
    assert (
        done.stderr.strip() == f"{other}: no args, versions, started, seconds; not a benchmarks.harness results file."
    )


def test_a_one_seed_benchmark_refuses_several_seeds(checked):
    code, stderr = checked[0]["several_seeds"]
    assert code == 2
    assert "--seeds: this benchmark runs one seed at a time, got [0, 1]" in stderr
