#!/usr/bin/env bash
# The GPU device check, as one prepared script a GPU machine runs as-is (under 8 minutes on one
# H200): the CUDA-marked tests, bf16 and 4-bit KG-LoRA training steps on SmolLM2 against plain
# LoRA (tokens/s, peak memory), the main memory design on tiny Qwen3 and Phi-3 (fused q/k/v) models
# in bf16 and 4-bit, and the main job at a GPU-sized budget when the packaged SmolLM2
# and WordNet are there. Results: $OUT_DIR/device_check.json (see benchmarks/device_check.py).
#
#   benchmarks/device_check.sh [OUT_DIR]        # default: $OUT, else runs/device_check
#
# The machine needs torch (CUDA), torch-geometric, transformers, peft, accelerate and pytest.
# Packages a GPU image may lack (pyahocorasick, rouge-score, nltk, bitsandbytes) travel as wheels
# in .whl/ (`make device-wheels` fetches them for Python 3.12); they are installed beside the
# image's packages, and kgpeft is imported from this checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-runs/device_check}}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
if compgen -G ".whl/*.whl" >/dev/null && ! "$PY" -c "import ahocorasick, rouge_score, nltk, bitsandbytes" 2>/dev/null; then
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/kgpeft-site .whl/*.whl; then
    export PYTHONPATH=/tmp/kgpeft-site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "device_check: the wheels in .whl/ do not install here (built for Python 3.12); going on without them" >&2
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "device_check: no nvidia-smi"
timeout 470 "$PY" -m benchmarks.device_check --out "$OUT_DIR" --output "$OUT_DIR/device_check.json" "${@:2}" 2>&1 | tee "$OUT_DIR/device_check.log"
