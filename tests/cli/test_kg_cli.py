"""``kgpeft kg edit``: edits read from TSV and JSON Lines files, a saved KG written, every bad line named."""

import json

import pytest
import torch

from kgpeft import KnowledgeGraph
from kgpeft.cli import main


@pytest.fixture
def saved(tmp_path):
    kg = KnowledgeGraph(
        ["a", "b", "c", "d"],
        ["likes", "knows"],
        torch.tensor([[0, 1, 0], [0, 0, 1], [1, 2, 2]]),
        labels=["Alice", "Bob", "Carol", "Dave"],
        aliases=[("Ally",), (), ("Caz",), ()],
        entity_prior=torch.tensor([1.0, 2.0, 3.0, 4.0]),
        name_priors=[(3, 1), (2.5,), (0.5, 4.0), (0.0,)],
        extras={"kind": ["p", "p", "p", "q"]},
    )
    kg.save(tmp_path / "kg")
    return tmp_path / "kg"


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _edit(tmp_path, saved, text, name="edits.tsv", *more):
    (tmp_path / name).write_text(text, encoding="utf-8")
    return main(
        ["kg", "edit", "--kg", str(saved), "--edits", str(tmp_path / name), "--output", str(tmp_path / "out"), *more]
    )


def test_tsv_edits_give_a_saved_kg_with_every_other_column(tmp_path, saved, capsys):
    before = _files(saved)
    text = "# counterfactual\nremove\ta\tlikes\tb\n\nadd\ta\tlikes\td\nentity\tx:e\tEve\nadd\tx:e\tknows\ta\n"
    assert _edit(tmp_path, saved, text) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'out'}: 4 triples (1 removed, 2 added), 5 entities (1 new)\n"
    original, edited = KnowledgeGraph.load(saved), KnowledgeGraph.load(tmp_path / "out")
    assert edited.triples.tolist() == [[1, 0, 0, 4], [0, 1, 0, 1], [2, 2, 3, 0]]
    assert list(edited.labels) == [*original.labels, "Eve"] and edited.aliases[0] == ("Ally",)
    assert edited.name_priors == [*original.name_priors, (0.0,)] and edited.extras["kind"] == ["p", "p", "p", "q", None]
    assert edited.entity_prior.tolist() == [1.0, 2.0, 3.0, 4.0, 0.0]
    assert _files(saved) == before  # the input is untouched


def test_jsonl_edits(tmp_path, saved):
    records = [
        {"op": "remove", "head": "b", "relation": "likes", "tail": "c"},
        {"op": "add", "head": "d", "relation": "knows", "tail": "c"},
    ]
    assert _edit(tmp_path, saved, "\n".join(map(json.dumps, records)) + "\n", "edits.jsonl") == 0
    assert KnowledgeGraph.load(tmp_path / "out").triples.tolist() == [[0, 0, 3], [0, 1, 1], [1, 2, 2]]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "edits.tsv",
            "add\ta\tlikes\td\nmove\ta\tlikes\tb\n",
            "edits.tsv:2: unknown op 'move'; use one of add, remove, entity",
        ),
        ("edits.tsv", "add a likes d\n", "edits.tsv:1: unknown op 'add a likes d'"),
        (
            "edits.tsv",
            "\nadd\ta\tlikes\n",
            "edits.tsv:2: `add` takes 3 tab-separated fields (head, relation, tail), got 2",
        ),
        (
            "edits.tsv",
            "add\ta\t\td\n",
            "edits.tsv:1: `add` takes 3 tab-separated fields (head, relation, tail), got 3 with an empty one",
        ),
        (
            "edits.tsv",
            "add\ta\tlikes\td\n# x\nremove\ta\tknows\tb\n",
            "edits.tsv:3: Cannot remove the triple ('a', 'knows', 'b'): it is not in the graph.",
        ),
        (
            "edits.tsv",
            "add\ta\tlikes\tb\n",
            "edits.tsv:1: Cannot add the triple ('a', 'likes', 'b'): it is already in the graph.",
        ),
        (
            "edits.tsv",
            "add\ta\tlikes\td\nadd\ta\tlikes\td\n",
            "edits.tsv:2: the triple ('a', 'likes', 'd') is given twice.",
        ),
        ("edits.tsv", "add\ta\thates\td\n", "edits.tsv:1: Unknown relation key 'hates' in ('a', 'hates', 'd')."),
        (
            "edits.tsv",
            "entity\tx\tX\nentity\tb\tB\n",
            "edits.tsv:2: Cannot add entity 'b': the KG has an entity of that key.",
        ),
        ("edits.tsv", "entity\tx\tX\nentity\tx\tY\n", "edits.tsv:2: entity 'x' is added twice (first on line 1)"),
        ("edits.jsonl", '{"op": "add", "head": "a"}\n', "edits.jsonl:1: `add` takes the keys op, head, relation, tail"),
        ("edits.json", '[{"op": "add",\n "head": "a"}]\n', "edits.json:1: not valid JSON"),
        ("edits.jsonl", '\n["add", "a", "likes", "d"]\n', "edits.jsonl:2: an edit should be an object with an op in"),
    ],
)
def test_bad_lines_are_named_and_nothing_is_written(tmp_path, saved, capsys, name, text, message):
    assert _edit(tmp_path, saved, text, name) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kgpeft kg edit: error: {tmp_path}/{message}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_output_is_checked_before_loading(tmp_path, saved, capsys):
    (tmp_path / "edits.tsv").write_text("add\ta\tlikes\td\n")
    argv = ["kg", "edit", "--kg", str(saved), "--edits", str(tmp_path / "edits.tsv")]
    before = _files(saved)
    assert main([*argv, "--output", str(saved), "--overwrite"]) == 2
    assert "is the input KG's folder; write the edited KG to another folder" in capsys.readouterr().err
    assert main([*argv, "--output", str(tmp_path / "out")]) == 0
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    assert "exists; pass --overwrite to replace the saved KG there" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("mine")
    assert main([*argv, "--output", str(tmp_path), "--overwrite"]) == 2  # a folder of the user's files is kept
    assert (tmp_path / "notes.txt").read_text() == "mine" and "kgpeft kg edit: error: " in capsys.readouterr().err
    assert main([*argv, "--output", str(tmp_path / "notes.txt" / "x")]) == 2
    assert _files(saved) == before
    assert main([*argv, "--output", str(tmp_path / "out"), "--overwrite"]) == 0


def test_a_dataset_by_name(tmp_path, capsys):
    (tmp_path / "edits.tsv").write_text("remove\tbrazil\tintergovorgs\tusa\n")
    assert (
        main(
            ["kg", "edit", "--kg", "nations", "--edits", str(tmp_path / "edits.tsv"), "--output", str(tmp_path / "out")]
        )
        == 0
    )
    edited = KnowledgeGraph.load(tmp_path / "out")
    assert "(1 removed, 0 added)" in capsys.readouterr().out and edited.info["name"] == "nations"


@pytest.mark.parametrize("flag", [[], ["--no-inverses"]], ids=["both-ways", "given-only"])
def test_a_kg_that_states_links_both_ways_is_edited_both_ways(tmp_path, capsys, flag):
    # a -likes-> b is stated as b -liked_by-> a too; removing one direction removes both unless --no-inverses
    kg = KnowledgeGraph(
        ["a", "b"],
        ["likes", "liked_by"],
        torch.tensor([[0, 1], [0, 1], [1, 0]]),
        inverse_relations={"likes": "liked_by", "liked_by": "likes"},
    )
    kg.save(tmp_path / "kg")
    assert _edit(tmp_path, tmp_path / "kg", "remove\ta\tlikes\tb\n", "edits.tsv", *flag) == 0
    edited = KnowledgeGraph.load(tmp_path / "out")
    assert edited.triples.tolist() == ([[1], [1], [0]] if flag else [[], [], []])
    inverses = "" if flag else " and their inverse triples"
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'out'}: {len(flag)} triples (1 removed, 0 added{inverses})")


# kgpeft kg import


def _import_files(tmp_path):
    (tmp_path / "t.csv").write_text("subject,predicate,object\nGO:1,is_a,GO:2\nGO:2,part_of,GO:3\nGO:4,is_a,GO:3\n")
    (tmp_path / "l.tsv").write_text("GO:1\tmitochondrion\tmito\nGO:2\tcytoplasm\nGO:3\tcell\tcellula|cells\n")
    return tmp_path / "t.csv", tmp_path / "l.tsv"


def test_import_writes_a_kg_folder_and_prints_its_card(tmp_path, capsys):
    triples, labels = _import_files(tmp_path)
    out = tmp_path / "go"
    argv = ["kg", "import", str(triples), "--labels", str(labels), "--columns", "subject", "predicate", "object"]
    assert main([*argv, "--name", "go", "--out", str(out)]) == 0
    card = capsys.readouterr().out
    kg = KnowledgeGraph.load(out)
    assert kg.entity_keys == ["GO:1", "GO:2", "GO:3", "GO:4"] and list(kg.labels)[:3] == [
        "mitochondrion",
        "cytoplasm",
        "cell",
    ]
    assert kg.info["name"] == "go"
    assert f"{out}: a saved KG (go)\n  entities: 4, relations: 2, triples: 3\n" in card
    assert "labels: 3 of 4 entities (75.0%) have a label other than their id; 3 have a name" in card
    assert "aliases: 0.75 per entity (2 entities have some)" in card
    assert "'mitochondrion' -> mitochondrion [GO:1] 1.00" in card and "'cell' -> cell [GO:3]" in card


def test_import_reads_its_keys_from_a_job_config(tmp_path, capsys):
    triples, labels = _import_files(tmp_path)
    config = tmp_path / "job.yaml"
    config.write_text(
        f"model: m\nkg: {{triples: {triples}, labels: {labels}, columns: {{head: 0, relation: 1, tail: 2}}}}\n"
    )
    assert main(["kg", "import", "--config", str(config), "--out", str(tmp_path / "go")]) == 0
    assert list(KnowledgeGraph.load(tmp_path / "go").labels)[:2] == ["mitochondrion", "cytoplasm"]
    config.write_text(f"triples: {triples}\nlabel: {labels}\n")
    assert main(["kg", "import", "--config", str(config), "--out", str(tmp_path / "go2")]) == 2
    assert f"error: {config}: unknown key 'label' in kg; did you mean 'labels'?" in capsys.readouterr().err
    config.write_text(f"kg:\n  triple: {triples}\n")  # the key that names the triples, mistyped
    assert main(["kg", "import", "--config", str(config), "--out", str(tmp_path / "go2")]) == 2
    assert f"error: {config}: unknown key 'triple' in kg; did you mean 'triples'?" in capsys.readouterr().err
    config.write_text(f"kg:\n  labels: {labels}\n")
    assert main(["kg", "import", "--config", str(config), "--out", str(tmp_path / "go2")]) == 2
    assert capsys.readouterr().err == (
        "kgpeft kg import: error: give the triples: SRC (a file, a folder, or train valid test files), or a "
        "`triples:` key in --config.\n"
    )
    assert not (tmp_path / "go2").exists()


def test_import_refuses_a_non_empty_out_and_keeps_what_kgpeft_did_not_write(tmp_path, capsys):
    triples, labels = _import_files(tmp_path)
    argv = ["kg", "import", str(triples), "--labels", str(labels), "--header", "true", "--columns", "0", "1", "2"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main([*argv, "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"
    assert main([*argv, "--out", str(out), "--overwrite"]) == 2  # not a saved KG's files: never deleted
    assert "notes.txt" in capsys.readouterr().err and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main([*argv, "--out", str(tmp_path / "kg")]) == 0
    assert main([*argv, "--out", str(tmp_path / "kg")]) == 2  # a saved KG is replaced only with --overwrite
    assert main([*argv, "--out", str(tmp_path / "kg"), "--overwrite"]) == 0


def test_import_errors_are_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / "bad.tsv").write_text("a\tr\tb\nc\tr\n")
    assert main(["kg", "import", str(tmp_path / "bad.tsv"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"kgpeft kg import: error: {tmp_path / 'bad.tsv'}:2: expected 3 columns separated by '\\t', got 2\n"
    assert not (tmp_path / "out").exists()


def test_import_declares_inverse_relations_that_kg_edit_then_edits_both_ways(tmp_path, capsys):
    """`--inverse REL=INV` (one way; the other is implied) is saved with the KG, and `kgpeft kg edit` then removes
    a link's both triples; a relation that is not in the KG, or a pair given two ways that disagree, is refused."""
    (tmp_path / "t.tsv").write_text("a\thas_part\tb\nb\tpart_of\ta\nc\tnear\td\nd\tnear\tc\n")
    out = tmp_path / "kg"
    argv = ["kg", "import", str(tmp_path / "t.tsv"), "--inverse", "has_part=part_of", "--inverse", "near=near"]
    assert main([*argv, "--out", str(out)]) == 0
    kg = KnowledgeGraph.load(out)
    assert kg.inverse_relations == {"has_part": "part_of", "part_of": "has_part", "near": "near"}
    assert _edit(tmp_path, out, "remove\ta\thas_part\tb\nremove\tc\tnear\td\n") == 0
    assert KnowledgeGraph.load(tmp_path / "out").num_triples == 0, "both triples of both links removed"
    capsys.readouterr()
    for bad, message in [
        (["--inverse", "has_part=contains"], "kg: inverses: `inverse_relations` names 'contains', which is not"),
        (["--inverse", "has_part=part_of", "--inverse", "part_of=near"], "but 'part_of' to 'near'"),
        (["--inverse", "has_part"], "--inverse 'has_part' should be REL=INV"),
    ]:
        assert main([*argv[:3], *bad, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
