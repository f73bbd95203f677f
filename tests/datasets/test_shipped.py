import pytest

from kgpeft import UnknownDatasetError
from kgpeft.datasets import load

# Published sizes: entities, relations, triples over train + valid + test.
PUBLISHED = {"nations": (14, 55, 1992), "kinships": (104, 25, 10686), "umls": (135, 46, 6529)}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_counts_match_published(name):
    kg = load(name)
    total = sum(split.size(1) for split in kg.splits.values())
    print(f"{name}: {kg}")
    assert (kg.num_entities, kg.num_relations, total) == PUBLISHED[name]
    assert kg.info["duplicates_dropped"] == {"train": 0, "valid": 0, "test": 0}
    assert kg.triples.data_ptr() == kg.splits["train"].data_ptr() or kg.triples.equal(kg.splits["train"])


def test_nations_by_hand():
    kg = load("nations")
    usa, uk = kg.entity_id("usa"), kg.entity_id("uk")
    r = kg.relation_id("militaryalliance")
    fact = [[kg.entity_id("netherlands")], [r], [uk]]
    assert (kg.splits["train"][:, :1] == kg.splits["train"].new_tensor(fact)).all()
    assert kg.entity_keys[usa] == "usa"


def test_unknown_dataset():
    with pytest.raises(UnknownDatasetError, match="Unknown dataset 'freebase'; available: nations"):
        load("freebase")
