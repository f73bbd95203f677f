"""Fixtures every test package shares: the tiny tokenizer and KG, and one torch thread per module."""

import os

import pytest
import torch
from tiny_models import tiny_kg, tiny_tokenizer


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped, not failed, on a machine without a CUDA GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (benchmarks/device_check.sh runs these on one)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def seed() -> int:
    """The seed of a test that trains a model to a quality bar (its task, initialisation and batch order).

    ``KGPEFT_TEST_SEED`` sets it (default 0); ``benchmarks/seed_robustness.py`` runs a test under
    seeds 0..9, for such a test must pass whichever seed it meets.
    """
    value = os.environ.get("KGPEFT_TEST_SEED", "0")
    if not value.isdigit():
        raise pytest.UsageError(f"KGPEFT_TEST_SEED should be a non-negative integer, got {value!r}.")
    return int(value)


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def kg():
    return tiny_kg()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread per test module: PyG's small index ops and tiny models run many times slower
    when OpenMP threads contend for shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
