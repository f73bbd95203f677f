"""Synthetic knowledge graphs of any size, for scale benchmarks.

:func:`synthetic` writes a folder that :func:`~kgpeft.graph.readers.read_pykeen_folder` reads::

    path = synthetic("/tmp/kg-1m", num_entities=1_000_000)
    kg = read_pykeen_folder(path, unknown="error", labels=path / "entities.tsv")

or, from the shell (:mod:`kgpeft.datasets.synthetic_kg`), ``python -m kgpeft.datasets.synthetic_kg OUT
--entities N [--relations R] [--triples T] [--aliases A] [--seed S]``.

The graph has power-law degrees: heads, tails and relations are drawn from Zipf-like
distributions (``p(rank) ∝ 1 / (rank + 10)`` for entities, ``1 / (rank + 1)`` for relations) over
random orders of the entities and relations, so a few hubs take a large share of the triples and
most entities have a handful. There are no self-loops and no repeated triples, within or across
splits. Entities are labelled with one to three words (mostly two, e.g. ``"amber falcon"``) from a
WordNet word list shipped in ``data/synthetic_words.txt``; names repeat across entities, as real
ones do. Aliases are variants of the label (words reordered, a word dropped, a word added) or a
new name, and descriptions short phrases (``"wooden bridge near the river"``).

Everything is computed on numpy arrays and written in chunks of about a million rows, so that
5 million entities and 20 million triples take well under two minutes and memory stays bounded
by the integer arrays (about 1 GB at that size), not by Python strings.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np

from kgpeft.datasets.synthetic_names import write_entities
from kgpeft.datasets.synthetic_triples import draw_triples, write_triples
from kgpeft.utils import atomic_folder

FORMAT_VERSION = 1


def synthetic(
    path: str | os.PathLike,
    num_entities: int,
    num_relations: int = 100,
    num_triples: int | None = None,
    aliases_per_entity: int = 2,
    seed: int = 0,
    valid_fraction: float = 0.01,
    test_fraction: float = 0.01,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic KG folder at ``path`` and return ``path``.

    The folder holds ``train.txt``, ``valid.txt`` and ``test.txt`` (tab-separated head, relation
    and tail keys, as :func:`~kgpeft.graph.readers.read_pykeen_folder` reads them),
    ``entities.tsv`` (key, label, ``|``-separated aliases, description; see
    :func:`~kgpeft.graph.readers.read_entity_labels`) and ``synthetic.json`` (the parameters and
    counts). Entity keys are ``Q1`` ... ``QN``, relation keys ``P1`` ... ``PR``. The folder is
    written atomically (a temporary sibling renamed into place), and the same arguments give
    byte-identical files.

    The triples are distinct (also across splits) and none joins an entity to itself. Every
    entity occurs in the training split when it has at least ``num_entities`` triples, and
    every relation when it has at least ``num_relations``; with fewer, as many as possible do
    (``entities.tsv`` still lists all entities, so a KG read with it has all of them). Valid and
    test triples use only entities and relations of the training split, so
    ``unknown="error"`` reads them.

    Args:
        path: the folder to write.
        num_entities: the number of entities, at least 2.
        num_relations: the number of relations. (default: 100)
        num_triples: the number of triples over all three splits. (default: ``4 * num_entities``)
        aliases_per_entity: the aliases of each entity, all different from its label and each
            other. (default: 2)
        seed: the seed of :func:`numpy.random.default_rng`. (default: 0)
        valid_fraction: the share of the triples in ``valid.txt``, in [0, 1); a positive share
            gives at least one triple. With 0 the file is empty, which
            :func:`~kgpeft.graph.readers.read_pykeen_folder` refuses. (default: 0.01)
        test_fraction: the share of the triples in ``test.txt``, likewise. (default: 0.01)
        overwrite: replace an existing folder at ``path``. (default: ``False``)

    Raises:
        ValueError: an argument is out of range (the message names it), or the entities and
            relations cannot make that many distinct triples.
        FileExistsError: ``path`` exists and ``overwrite`` is off.
    """
    parameters = _checked_parameters(
        num_entities, num_relations, num_triples, aliases_per_entity, seed, valid_fraction, test_fraction, overwrite
    )
    n, r = parameters["num_entities"], parameters["num_relations"]
    num_triples, aliases_per_entity = parameters["num_triples"], parameters["aliases_per_entity"]
    n_train, n_valid, n_test = _split_sizes(
        n, r, num_triples, parameters["valid_fraction"], parameters["test_fraction"]
    )
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")

    graph_rng, text_rng = np.random.default_rng(parameters["seed"]).spawn(2)
    train, valid, test, used_entities, used_relations = draw_triples(
        graph_rng, n, r, n_train, n_valid + n_test, n_valid
    )
    info = _info(parameters, (train, valid, test), used_entities, used_relations)
    with atomic_folder(target, overwrite=overwrite) as tmp:
        for name, keys in (("train", train), ("valid", valid), ("test", test)):
            write_triples(tmp / f"{name}.txt", keys, n, r)
        del train, valid, test
        write_entities(tmp / "entities.tsv", text_rng, n, aliases_per_entity)
        (tmp / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return target


# ---------------------------------------------------------------------------- arguments


def _info(
    parameters: dict[str, Any],
    splits: tuple[np.ndarray, np.ndarray, np.ndarray],
    used_entities: int,
    used_relations: int,
) -> dict[str, Any]:
    """What ``synthetic.json`` holds: the generator, the parameters, the counts and the files."""
    n, aliases_per_entity = parameters["num_entities"], parameters["aliases_per_entity"]
    train, valid, test = splits
    return {
        "generator": "kgpeft.datasets.synthetic",
        "format_version": FORMAT_VERSION,
        "parameters": parameters,
        "counts": {
            "entities": n,
            "relations": parameters["num_relations"],
            "triples": {"train": int(train.size), "valid": int(valid.size), "test": int(test.size)},
            "train_entities": used_entities,
            "train_relations": used_relations,
            "aliases": n * aliases_per_entity,
        },
        "files": {"train": "train.txt", "valid": "valid.txt", "test": "test.txt", "labels": "entities.tsv"},
    }


def _checked_parameters(
    num_entities: Any,
    num_relations: Any,
    num_triples: Any,
    aliases_per_entity: Any,
    seed: Any,
    valid_fraction: Any,
    test_fraction: Any,
    overwrite: Any,
) -> dict[str, Any]:
    """:func:`synthetic`'s arguments, checked, as ``synthetic.json`` records them (``overwrite`` only checked)."""
    num_entities = _check_int("num_entities", num_entities, 2)
    num_relations = _check_int("num_relations", num_relations, 1)
    num_triples = 4 * num_entities if num_triples is None else _check_int("num_triples", num_triples, 1)
    aliases_per_entity = _check_int("aliases_per_entity", aliases_per_entity, 0)
    seed = _check_int("seed", seed, 0)
    valid_fraction = _check_fraction("valid_fraction", valid_fraction)
    test_fraction = _check_fraction("test_fraction", test_fraction)
    if not isinstance(overwrite, bool):
        raise ValueError(f"`overwrite` should be True or False, got {overwrite!r}.")
    return {
        "num_entities": num_entities,
        "num_relations": num_relations,
        "num_triples": num_triples,
        "aliases_per_entity": aliases_per_entity,
        "seed": seed,
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
    }


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` should be an integer >= {minimum}, got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` should be an integer >= {minimum}, got {value}.")
    return int(value)


def _check_fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`{name}` should be a number in [0, 1), got {value!r}.")
    return float(value)


def _split_sizes(n: int, r: int, num_triples: int, valid_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """The train, valid and test triple counts; ``ValueError`` if ``n`` entities and ``r`` relations cannot."""
    if valid_fraction + test_fraction >= 1:
        raise ValueError(
            f"`valid_fraction` + `test_fraction` should be below 1 to leave training triples, "
            f"got {valid_fraction} + {test_fraction}."
        )
    if n * n * r >= 1 << 63:
        raise ValueError(f"num_entities**2 * num_relations should be below 2**63, got {n}**2 * {r}.")
    capacity = n * (n - 1) * r
    if num_triples > capacity:
        raise ValueError(
            f"num_triples={num_triples} is more than the {capacity} distinct triples without self-loops "
            f"that {n} entities and {r} relations allow."
        )
    n_valid, n_test = _split_size(num_triples, valid_fraction), _split_size(num_triples, test_fraction)
    n_train = num_triples - n_valid - n_test
    if n_train < 1:
        raise ValueError(
            f"num_triples={num_triples} leaves no training triples after {n_valid} valid and {n_test} test "
            f"triples; raise num_triples or lower valid_fraction/test_fraction."
        )
    return n_train, n_valid, n_test


def _split_size(total: int, fraction: float) -> int:
    """``total * fraction`` rounded half up, at least 1 when ``fraction`` is positive."""
    return 0 if fraction == 0 else max(1, math.floor(total * fraction + 0.5))
