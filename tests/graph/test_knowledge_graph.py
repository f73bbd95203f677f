import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kgpeft import KGFileNotFoundError, KGFormatError, KnowledgeGraph
from kgpeft.errors import OutputPathError
from kgpeft.graph.strings import RaggedStrings, StringTable


@pytest.fixture
def kg() -> KnowledgeGraph:
    # a -likes-> b, b -likes-> c, a -knows-> c
    return KnowledgeGraph(
        ["a", "b", "c", "d"],
        ["likes", "knows"],
        torch.tensor([[0, 1, 0], [0, 0, 1], [1, 2, 2]]),
        labels=["Alice", "Bob", "Carol", "Dave"],
        aliases=[("Ally",), (), ("Caz", "Carol"), ()],
        descriptions=["first", "second", "third", "isolated"],
        entity_prior=torch.tensor([1.0, 2.0, 3.0, 4.0]),
        name_priors=[(3, 1), (2.5,), (0.5, 4.0, 1.0), (0.0,)],
        splits={"train": torch.tensor([[0, 1, 0], [0, 0, 1], [1, 2, 2]]), "test": torch.tensor([[3], [0], [0]])},
        extras={"kind": ["p", "p", "p", "p"]},
    )


def test_sizes_and_vocab(kg):
    assert (kg.num_entities, kg.num_relations, kg.num_triples) == (4, 2, 3)
    assert kg.entity_id("c") == 2 and kg.relation_id("knows") == 1
    assert kg.names(2) == ("Carol", "Caz")
    with pytest.raises(KeyError, match="'zed'"):
        kg.entity_id("zed")
    assert repr(kg) == "KnowledgeGraph(num_entities=4, num_relations=2, num_triples=3, splits={train: 3, test: 1})"


def test_csr_both_directions(kg):
    csr = kg.csr()
    assert csr.rowptr.tolist() == [0, 2, 4, 6, 6]
    # a: ->b (likes), ->c (knows); b: ->a (inverse likes), ->c (likes); c: ->a (inv knows), ->b (inv likes)
    assert csr.col.tolist() == [1, 2, 0, 2, 0, 1]
    assert csr.edge_type.tolist() == [0, 1, 2, 0, 3, 2]
    assert csr.edge_id.tolist() == [0, 2, 0, 1, 2, 1]
    assert kg.degree.tolist() == [2, 2, 2, 0]
    assert kg.out_degree.tolist() == [2, 1, 0, 0]
    assert kg.in_degree.tolist() == [0, 1, 2, 0]


def test_to_pyg(kg):
    data = kg.to_pyg()
    assert data.edge_index.tolist() == [[0, 1, 0], [1, 2, 2]]
    assert data.num_nodes == 4 and data.num_relations == 2
    both = kg.to_pyg(add_inverse=True)
    assert both.edge_index.tolist() == [[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]]
    assert both.edge_type.tolist() == [0, 1, 2, 0, 3, 2]
    assert both.num_relations == 4


def test_fingerprint_depends_on_vocab_only(kg):
    same = KnowledgeGraph(["a", "b", "c", "d"], ["likes", "knows"], torch.zeros(3, 0, dtype=torch.long))
    renamed = KnowledgeGraph(["a", "b", "c", "e"], ["likes", "knows"], torch.zeros(3, 0, dtype=torch.long))
    reordered = KnowledgeGraph(["b", "a", "c", "d"], ["likes", "knows"], torch.zeros(3, 0, dtype=torch.long))
    assert kg.fingerprint == same.fingerprint
    assert len({kg.fingerprint, renamed.fingerprint, reordered.fingerprint}) == 3
    assert len(kg.fingerprint) == 64


@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_round_trip(kg, tmp_path, mmap):
    kg.save(tmp_path / "kg")
    back = KnowledgeGraph.load(tmp_path / "kg", mmap=mmap)
    assert back.fingerprint == kg.fingerprint
    assert back.labels == kg.labels and back.aliases == kg.aliases and back.descriptions == kg.descriptions
    assert back.extras == kg.extras
    assert torch.equal(back.triples, kg.triples) and torch.equal(back.entity_prior, kg.entity_prior)
    assert back.name_priors == kg.name_priors == [(3.0, 1.0), (2.5,), (0.5, 4.0, 1.0), (0.0,)]
    assert back.splits.keys() == kg.splits.keys()
    assert all(torch.equal(back.splits[k], v) for k, v in kg.splits.items())
    for got, want in zip(back.csr(), kg.csr(), strict=True):
        assert torch.equal(got, want)
    with pytest.raises(FileExistsError):
        kg.save(tmp_path / "kg")
    kg.save(tmp_path / "kg", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["kg"], "no temporary folder left behind"


def test_save_replaces_only_a_saved_kg(kg, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(
        OutputPathError, match=r"mine holds files that are not a saved knowledge graph's \(notes\.txt, sub\)"
    ):
        kg.save(mine, overwrite=True)
    assert (
        sorted(p.name for p in mine.iterdir()) == ["notes.txt", "sub"] and (mine / "notes.txt").read_text() == "keep me"
    )
    kg.save(mine, overwrite=True, force=True)  # writes the KG beside the user's files
    assert (mine / "notes.txt").read_text() == "keep me" and (mine / "sub").is_dir()
    assert KnowledgeGraph.load(mine).fingerprint == kg.fingerprint

    file = tmp_path / "file"
    file.write_text("data")
    with pytest.raises(OutputPathError, match=r"file is a file; KnowledgeGraph\.save writes a folder"):
        kg.save(file, overwrite=True, force=True)
    assert file.read_text() == "data"

    kg.save(tmp_path / "kg")
    bare = KnowledgeGraph(["x"], ["r"], torch.zeros(3, 0, dtype=torch.long))
    bare.save(tmp_path / "kg", overwrite=True)  # a saved KG is replaced, its stale arrays with it
    assert sorted(p.name for p in (tmp_path / "kg").iterdir()) == sorted(
        [
            "kg.json",
            "triples.npy",
            *(f"csr.{k}.npy" for k in ("rowptr", "col", "edge_type", "edge_id")),
            *(f"strings.{c}.{p}.npy" for c in ("entity_keys", "relation_keys") for p in ("data", "offsets")),
        ]
    )
    assert KnowledgeGraph.load(tmp_path / "kg").entity_keys == ["x"]
    (tmp_path / "kg" / "kg.json").write_text('{"format": "something else"}')
    with pytest.raises(OutputPathError, match=r"kg holds files that are not a saved knowledge graph's \(csr\.col"):
        kg.save(tmp_path / "kg", overwrite=True)

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "notes.txt").write_text("keep me")
    monkeypatch.chdir(cwd)
    with pytest.raises(OutputPathError, match=r"\. holds files that are not a saved knowledge graph's \(notes\.txt\)"):
        kg.save(".", overwrite=True)
    assert [p.name for p in cwd.iterdir()] == ["notes.txt"]
    (cwd / "notes.txt").unlink()
    kg.save(".", overwrite=True)
    kg.save(".", overwrite=True)  # and again, over the KG now there
    assert Path.cwd() == cwd and KnowledgeGraph.load(".").fingerprint == kg.fingerprint


def test_load_errors(kg, tmp_path):
    with pytest.raises(KGFileNotFoundError, match=r"kg\.json"):
        KnowledgeGraph.load(tmp_path / "nothing")
    kg.save(tmp_path / "kg")
    (tmp_path / "kg" / "csr.col.npy").unlink()
    with pytest.raises(KGFileNotFoundError, match=r"csr\.col\.npy"):
        KnowledgeGraph.load(tmp_path / "kg")
    (tmp_path / "kg" / "kg.json").write_text('{"format": "kgpeft.knowledge_graph", "version": 99}')
    with pytest.raises(KGFormatError, match="newer kgpeft"):
        KnowledgeGraph.load(tmp_path / "kg")
    (tmp_path / "kg" / "kg.json").write_text("{not json")
    with pytest.raises(KGFormatError, match=r"kg\.json: not valid JSON"):
        KnowledgeGraph.load(tmp_path / "kg")


def test_kg_without_name_priors_loads(tmp_path):
    bare = KnowledgeGraph(["a", "b"], ["r"], torch.zeros(3, 0, dtype=torch.long), aliases=[("A",), ()])
    assert bare.name_priors is None
    bare.save(tmp_path / "bare")
    assert KnowledgeGraph.load(tmp_path / "bare").name_priors is None
    # A KG saved before name priors existed has no "has_name_priors" in kg.json.
    meta = tmp_path / "bare" / "kg.json"
    meta.write_text(meta.read_text().replace('"has_name_priors": false, ', ""))
    assert "has_name_priors" not in meta.read_text()
    old = KnowledgeGraph.load(tmp_path / "bare")
    assert old.name_priors is None and old.aliases == [("A",), ()]


def test_name_priors_not_matching_the_names_are_refused(kg, tmp_path):
    kg.save(tmp_path / "kg")
    np.save(tmp_path / "kg" / "name_priors.npy", np.ones(6))
    with pytest.raises(KGFormatError, match=r"name_priors\.npy: name priors do not match the names"):
        KnowledgeGraph.load(tmp_path / "kg")


def test_tampered_vocabulary_is_refused(kg, tmp_path):
    kg.save(tmp_path / "kg")
    data = tmp_path / "kg" / "strings.entity_keys.data.npy"
    keys = np.load(data)
    keys[0] = ord("z")  # "a" -> "z": same length, other key
    np.save(data, keys)
    for mmap in (False, True):
        with pytest.raises(KGFormatError, match=r"strings\.entity_keys\.data\.npy: the entity_keys do not match"):
            KnowledgeGraph.load(tmp_path / "kg", mmap=mmap)


def _as_version_1(folder: Path) -> None:
    """Rewrite a saved KG as format version 1 wrote it: vocabularies as JSON lists, no string tables."""
    kg = KnowledgeGraph.load(folder)
    meta = json.loads((folder / "kg.json").read_text())
    for name in ("strings", "num_entities", "num_relations"):
        del meta[name]
    meta.update(
        version=1,
        entity_keys=list(kg.entity_keys),
        relation_keys=list(kg.relation_keys),
        labels=None if kg.labels == kg.entity_keys else list(kg.labels),
        aliases=[list(a) for a in kg.aliases] if any(kg.aliases) else None,
        descriptions=None if kg.descriptions is None else list(kg.descriptions),
    )
    (folder / "kg.json").write_text(json.dumps(meta))
    for file in folder.glob("*.npy"):
        if file.name.startswith(("strings.", "aliases.")):
            file.unlink()


def test_version_1_folders_still_load(kg, tmp_path):
    kg.save(tmp_path / "kg")
    _as_version_1(tmp_path / "kg")
    old = KnowledgeGraph.load(tmp_path / "kg")
    assert old.fingerprint == kg.fingerprint and old.labels == kg.labels and old.aliases == kg.aliases
    assert old.name_priors == kg.name_priors and old.descriptions == kg.descriptions
    meta = tmp_path / "kg" / "kg.json"
    meta.write_text(meta.read_text().replace('["a", "b"', '["z", "b"'))
    with pytest.raises(KGFormatError, match="fingerprint"):
        KnowledgeGraph.load(tmp_path / "kg")


def test_fingerprint_is_the_json_of_the_vocabularies(kg):
    keys = [*kg.entity_keys, *(f'é{i}"' for i in range(70_000))]  # more than one chunk, escapes, non-ASCII
    big = KnowledgeGraph(keys, ["r", "s"], torch.zeros(3, 0, dtype=torch.long))
    payload = json.dumps(["kgpeft.knowledge_graph", keys, ["r", "s"]], ensure_ascii=False)
    assert big.fingerprint == hashlib.sha256(payload.encode()).hexdigest()
    assert KnowledgeGraph(StringTable.from_strings(keys), ["r", "s"], big.triples).fingerprint == big.fingerprint


def test_string_table_columns(kg, tmp_path):
    tables = KnowledgeGraph(
        StringTable.from_strings(kg.entity_keys),
        StringTable.from_strings(kg.relation_keys),
        kg.triples,
        labels=StringTable.from_strings(kg.labels),
        aliases=RaggedStrings.from_rows(kg.aliases),
        descriptions=StringTable.from_strings(kg.descriptions),
        name_priors=kg.name_priors,
    )
    assert tables.fingerprint == kg.fingerprint and tables.entity_id("c") == 2
    assert tables.names(2) == kg.names(2) and tables.name_priors == kg.name_priors
    with pytest.raises(ValueError, match="`entity_keys` should be unique, got 1 duplicates"):
        KnowledgeGraph(StringTable.from_strings(["a", "a"]), ["r"], torch.zeros(3, 0, dtype=torch.long)).entity_id("a")


@pytest.mark.parametrize("mmap", [False, True])
def test_reload_of_a_kg_written_in_another_process(kg, tmp_path, mmap):
    script = (
        "import sys, torch; from kgpeft import KnowledgeGraph\n"
        "kg = KnowledgeGraph(['a', 'b', 'c', 'd'], ['likes', 'knows'], torch.tensor([[0, 1, 0], [0, 0, 1], [1, 2, 2]]),"
        " labels=['Alice', 'Bob', 'Carol', 'Dave'], aliases=[('Ally',), (), ('Caz', 'Carol'), ()],"
        " descriptions=['first', 'second', 'third', 'isolated'], entity_prior=torch.tensor([1.0, 2.0, 3.0, 4.0]),"
        " name_priors=[(3, 1), (2.5,), (0.5, 4.0, 1.0), (0.0,)],"
        " splits={'train': torch.tensor([[0, 1, 0], [0, 0, 1], [1, 2, 2]]), 'test': torch.tensor([[3], [0], [0]])},"
        " extras={'kind': ['p', 'p', 'p', 'p']})\n"
        "kg.save(sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "kg")], check=True)
    loaded = KnowledgeGraph.load(tmp_path / "kg", mmap=mmap)
    assert isinstance(loaded.entity_keys, StringTable) and isinstance(loaded.aliases, RaggedStrings)
    if mmap:
        assert isinstance(loaded.entity_keys.data, np.memmap) and isinstance(loaded.aliases.rowptr, np.memmap)
    assert loaded.fingerprint == kg.fingerprint and loaded.entity_keys == kg.entity_keys
    assert loaded.labels == kg.labels and loaded.aliases == kg.aliases and loaded.descriptions == kg.descriptions
    assert loaded.name_priors == kg.name_priors and loaded.extras == kg.extras
    assert torch.equal(loaded.triples, kg.triples) and loaded.splits.keys() == kg.splits.keys()
    assert all(torch.equal(loaded.splits[k], kg.splits[k]) for k in kg.splits)
    assert all(torch.equal(a, b) for a, b in zip(loaded.csr(), kg.csr(), strict=True))
    assert torch.equal(loaded.entity_prior, kg.entity_prior) and loaded.entity_id("d") == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"triples": torch.tensor([[0, 1], [0, 0]])}, r"shape \(3, E\)"),
        ({"triples": torch.tensor([[0], [0], [9]])}, "tail ids in"),
        ({"triples": torch.tensor([[0], [5], [1]])}, "relation ids in"),
        ({"labels": ["x"]}, "`labels` should have one entry per entity"),
        ({"entity_prior": torch.ones(5)}, "`entity_prior` should have shape"),
        ({"name_priors": [[1.0]]}, r"`name_priors` should have one entry per entity \(2\), got 1"),
        (
            {"aliases": [(), ("B",)], "name_priors": [[1.0], [1.0]]},
            r"`name_priors\[1\]` should have one prior per name of entity 'b' \(2: its label and 1 aliases\), got 1",
        ),
        ({"name_priors": [[1.0], [-1.0]]}, r"`name_priors\[1\]` should be non-negative, got \(-1.0,\) for entity 'b'"),
        ({"name_priors": [[float("nan")], [1.0]]}, r"`name_priors\[0\]` should be non-negative, got \(nan,\)"),
        ({"extras": {"kind": []}}, r"`extras\['kind'\]`"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = {"entity_keys": ["a", "b"], "relation_keys": ["r"], "triples": torch.tensor([[0], [0], [1]])}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        KnowledgeGraph(**args)


def test_duplicate_keys_rejected():
    with pytest.raises(ValueError, match="`entity_keys` should be unique, got 1 duplicates"):
        KnowledgeGraph(["a", "a"], ["r"], torch.zeros(3, 0, dtype=torch.long))
