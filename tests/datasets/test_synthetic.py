"""kgpeft.datasets.synthetic: deterministic, readable by the ordinary readers, power-law, clear errors."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from kgpeft.datasets import synthetic
from kgpeft.datasets.synthetic_kg import _main
from kgpeft.graph.readers import read_pykeen_folder

FILES = ("train.txt", "valid.txt", "test.txt", "entities.tsv", "synthetic.json")


def read(path):
    return read_pykeen_folder(path, unknown="error", labels=path / "entities.tsv")


def triples(path, split):
    return [tuple(line.split("\t")) for line in (path / f"{split}.txt").read_text().splitlines()]


@pytest.fixture(scope="module")
def kg_dir(tmp_path_factory):
    return synthetic(tmp_path_factory.mktemp("syn") / "kg", 3000, num_relations=20, aliases_per_entity=2, seed=3)


def test_same_seed_same_bytes_other_seed_other_graph(kg_dir, tmp_path):
    again = synthetic(tmp_path / "again", 3000, num_relations=20, aliases_per_entity=2, seed=3)
    for name in FILES:
        assert (again / name).read_bytes() == (kg_dir / name).read_bytes(), name
    other = synthetic(tmp_path / "other", 3000, num_relations=20, aliases_per_entity=2, seed=4)
    assert (other / "train.txt").read_bytes() != (kg_dir / "train.txt").read_bytes()
    assert (other / "entities.tsv").read_bytes() != (kg_dir / "entities.tsv").read_bytes()


def test_reads_back_with_unknown_error_and_the_counts_it_reports(kg_dir):
    info = json.loads((kg_dir / "synthetic.json").read_text())
    kg = read(kg_dir)
    assert kg.num_entities == info["counts"]["entities"] == 3000
    assert kg.num_relations == 20
    assert {k: v.size(1) for k, v in kg.splits.items()} == info["counts"]["triples"]
    assert sum(info["counts"]["triples"].values()) == 4 * 3000
    assert info["counts"]["triples"]["valid"] == info["counts"]["triples"]["test"] == 120
    # every entity and relation is in the training split (12,000 triples cover 3,000 entities)
    train = triples(kg_dir, "train")
    assert len({h for h, _, _ in train} | {t for _, _, t in train}) == 3000
    assert len({r for _, r, _ in train}) == 20
    assert all(kg.labels[i] for i in range(kg.num_entities))


def test_triples_are_distinct_across_splits_without_self_loops(kg_dir):
    every = [t for split in ("train", "valid", "test") for t in triples(kg_dir, split)]
    assert len(every) == len(set(every)) == 12_000
    assert all(h != t for h, _, t in every)


def test_degrees_have_a_heavy_tail(kg_dir):
    degree = Counter()
    for h, _, t in triples(kg_dir, "train"):
        degree[h] += 1
        degree[t] += 1
    values = np.array(sorted(degree.values()))
    assert values.max() >= 25 * np.median(values)  # hubs
    top = values[-len(values) // 100 :].sum() / values.sum()
    assert top > 0.1  # the top 1% of entities take ten times their share of the edges (Poisson: ~2%)
    relations = Counter(r for _, r, _ in triples(kg_dir, "train"))
    assert max(relations.values()) > 5 * min(relations.values())


def test_names_are_words_and_aliases_differ_from_the_label_and_each_other(kg_dir):
    rows = [line.split("\t") for line in (kg_dir / "entities.tsv").read_text().splitlines()]
    assert [r[0] for r in rows] == [f"Q{i}" for i in range(1, 3001)]
    for _, label, aliases, description in rows:
        names = [label, *aliases.split("|")]
        assert len(names) == 3 and len(set(names)) == 3
        assert all(1 <= len(n.split()) <= 4 and n == n.strip() for n in names)
        assert len(description.split()) >= 3
    labels = Counter(r[1] for r in rows)
    assert labels.most_common(1)[0][1] >= 2  # names repeat across entities, as real ones do
    assert len(labels) > 2000


def test_fewer_triples_than_entities_and_no_aliases(tmp_path):
    path = synthetic(tmp_path / "kg", 500, num_relations=3, num_triples=300, aliases_per_entity=0, seed=1)
    kg = read(path)
    assert kg.num_entities == 500 and sum(v.size(1) for v in kg.splits.values()) == 300
    assert all(len(a) == 0 for a in kg.aliases)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_entities": 1}, "`num_entities` should be an integer >= 2"),
        ({"num_entities": 10, "num_relations": 0}, "`num_relations`"),
        ({"num_entities": 10, "num_triples": 2.5}, "`num_triples` should be an integer"),
        ({"num_entities": 3, "num_relations": 1, "num_triples": 7}, "more than the 6 distinct triples"),
        ({"num_entities": 10, "aliases_per_entity": -1}, "`aliases_per_entity`"),
        ({"num_entities": 10, "valid_fraction": 1.5}, "`valid_fraction` should be a number in"),
        ({"num_entities": 10, "valid_fraction": 0.5, "test_fraction": 0.5}, "should be below 1"),
        ({"num_entities": 10, "seed": True}, "`seed`"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        synthetic(tmp_path / "kg", **kwargs)
    assert not (tmp_path / "kg").exists()


def test_refuses_an_existing_folder_unless_overwrite(tmp_path):
    path = synthetic(tmp_path / "kg", 50, num_relations=2)
    with pytest.raises(FileExistsError, match="overwrite"):
        synthetic(path, 60, num_relations=2)
    synthetic(path, 60, num_relations=2, overwrite=True)
    assert read(path).num_entities == 60


def test_command_line(tmp_path, capsys):
    assert _main([str(tmp_path / "kg"), "--entities", "200", "--relations", "5", "--seed", "2"]) == 0
    assert "entities:  200" in capsys.readouterr().out
    assert (tmp_path / "kg" / "train.txt").read_bytes() == (
        synthetic(tmp_path / "same", 200, num_relations=5, seed=2) / "train.txt"
    ).read_bytes()
    with pytest.raises(SystemExit):
        _main([str(tmp_path / "kg"), "--entities", "200"])  # exists
    assert "exists" in capsys.readouterr().err


def test_python_dash_m_runs_without_runpy_warning(tmp_path):
    """The module run as ``__main__`` is not one ``kgpeft.datasets`` has imported (runpy would warn)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "kgpeft.datasets.synthetic_kg", str(tmp_path / "kg"), "--entities", "50"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "entities:  50" in done.stdout
