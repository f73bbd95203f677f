"""``kgpeft task build``: a task file from a saved KG with labels, written whole, never over a user's files."""

import json

import pytest
from tasks.test_graph_qa import ontology

from kgpeft.cli import main
from kgpeft.pipeline.examples import read_task_file

TEMPLATES = ["--template", "What kind of thing is {a}?", "--template", "part_of=What is {head} a {relation}?"]


ONE = ["--template", "{head}?"]


@pytest.fixture
def saved(tmp_path):
    ontology().save(tmp_path / "kg")
    return tmp_path / "kg"


def _build(saved, out, *more, relations=("is_a", "part_of"), templates=TEMPLATES):
    return main(["task", "build", "--kg", str(saved), "--relations", *relations, *templates, "--out", str(out), *more])


def test_a_task_file_a_job_reads(tmp_path, saved, capsys):
    assert _build(saved, tmp_path / "task", "--split-fractions", "0.5", "0.25", "0.25", "--seed", "3") == 0
    rows = [json.loads(line) for line in (tmp_path / "task" / "task.jsonl").read_text().splitlines()]
    first = next(r for r in rows if r["id"] == "graph_qa/GO:1/part_of")
    assert first["text"] == "What is mitochondrion a part of?" and first["answer_entities"] == ["GO:3", "GO:4"]
    assert first["text"][first["target_start"] : first["target_end"]] == "mitochondrion"
    assert "label" not in first and "choices" not in first, "fields left unset are not written"
    assert next(r for r in rows if r["id"] == "graph_qa/GO:5/is_a")["text"] == "What kind of thing is a nucleus?"
    splits = read_task_file(str(tmp_path / "task" / "task.jsonl"))  # as a job's `task:` reads it
    assert sum(map(len, splits.values())) == len(rows) == 6
    subjects = [{e.entity for e in splits[s]} for s in ("train", "valid", "test")]
    assert not (subjects[0] & subjects[1] or subjects[0] & subjects[2] or subjects[1] & subjects[2])
    out = capsys.readouterr().out
    assert "6 questions (" in out and "about 4 subjects; is_a: 3, part_of: 3" in out and "task: " in out
    assert [p.name for p in (tmp_path / "task").iterdir()] == ["task.jsonl"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary folder is left"


def test_an_existing_folder_is_replaced_only_with_overwrite_and_only_if_it_is_a_task(tmp_path, saved, capsys):
    out = tmp_path / "task"
    assert _build(saved, out) == 0
    before = (out / "task.jsonl").read_bytes()
    assert _build(saved, out, "--seed", "1") == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "task.jsonl").read_bytes() == before
    assert _build(saved, out, "--seed", "1", "--overwrite") == 0
    assert (out / "task.jsonl").read_bytes() != before
    (out / "notes.txt").write_text("mine")
    assert _build(saved, out, "--overwrite") == 2
    assert "holds files that are not a task kgpeft wrote (task.jsonl) (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ({"templates": ["--template", "What is it?"]}, "'What is it?' has 0 subject fields; it should name"),
        ({"templates": ["--template", "is_a=What is {a}?"]}, "no template for ['part_of']"),
        ({"relations": ("is_a",)}, "'part_of=What is {head} a {relation}?' is for 'part_of', which --relations"),
        ({"templates": ["--template", "is_a={a}?", "--template", "is_a={head}!"]}, "'is_a' is given two templates"),
        ({"relations": ("is_a", "located_in"), "templates": ONE}, "needs the relations 'located_in', which the KG"),
        ({"relations": ("has_part",), "templates": ONE}, "--relations has_part: no question to ask"),
        ({"args": ("--split-fractions", "0.5", "0.5", "0.5")}, "--split-fractions should be three non-negative"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, saved, capsys, more, message):
    kwargs = {k: v for k, v in more.items() if k != "args"}
    assert _build(saved, tmp_path / "task", *more.get("args", ()), **kwargs) == 2
    err = capsys.readouterr().err
    assert err.startswith("kgpeft task build: error: ") and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kg"]


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("a-file", "--out {tmp}/a-file is a file; the task is written as a folder"),
        ("a-file/task", "--out's folder {tmp}/a-file is a file, not a folder"),
        ("bad\x00name", "--out should be a file or folder name, got 'bad\\x00name'"),
        (".hidden", "--out should be a file or folder name, got '.hidden': it starts with a dot"),
    ],
)
def test_a_bad_out_path_is_refused_before_the_kg_is_read(tmp_path, saved, capsys, monkeypatch, out, message):
    (tmp_path / "a-file").write_text("mine")
    monkeypatch.setattr("kgpeft.cli.task.load_kg", lambda *a: pytest.fail("the KG is read before --out is checked"))
    assert _build(saved, tmp_path / out, "--overwrite") == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "kg"]
    assert (tmp_path / "a-file").read_text() == "mine"
