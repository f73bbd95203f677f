"""Fixtures every test package shares: the tiny tokenizer and KG, and one torch thread per module."""

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
