import pytest
from tiny_models import tiny_kg, tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def kg():
    return tiny_kg()
