"""Answer entities linked from answer text (`link_answers`), and a job whose task file gives answers as text only."""

import json
import warnings

import pytest
import torch
from tiny_models import ARCHITECTURES, build_model, tiny_tokenizer

from kgpeft import KnowledgeGraph
from kgpeft.linking import EntityLinker
from kgpeft.pipeline import JobConfig, prepare
from kgpeft.selection import FactScorerError, answer_fact_recall, link_answers
from kgpeft.tasks import TaskExample


@pytest.fixture(scope="module")
def graph():
    # keys unlike the labels, as in a real KG: the link must give keys, not labels
    labels = ["dog", "cat", "animal", "pet", "bank", "river", "money", "tree", "domestic dog"]
    return KnowledgeGraph(
        [f"E{i}" for i in range(len(labels))],
        ["is_a", "near", "holds"],
        torch.tensor([[0, 1, 0, 1, 4, 4, 7], [0, 0, 0, 0, 1, 2, 1], [2, 2, 3, 3, 5, 6, 5]]),
        labels=labels,
        aliases=[()] * 5 + [("stream",)] + [()] * 3,
    )


def test_a_whole_answer_wins_over_a_mention_inside_another(graph):
    linker = EntityLinker(graph)
    rows = [
        TaskExample("q1", answer="Animal."),  # the whole text, folded: E2
        TaskExample("q2", answer="a big river"),  # only a mention inside: the longest, E5
        TaskExample("q3", answer="dog food", accepted_answers=("dog food", "stream")),  # `stream` is whole: E5 only
        TaskExample("q4", answer="a tame domestic dog"),  # the longest mention, not `dog`
        TaskExample("q5", answer="zebra"),  # nothing to link: stays without
        TaskExample("q6", answer="money", answer_entities=("E3",)),  # given: kept as it is
    ]
    linked, links = link_answers(rows, linker, graph)
    assert [r.answer_entities for r in linked] == [("E2",), ("E5",), ("E5",), ("E8",), (), ("E3",)]
    assert linked[5] is rows[5] and linked[4] is rows[4]
    assert (links.rows, links.given, links.whole, links.partial) == (6, 1, 2, 2)
    assert links.share == pytest.approx(5 / 6)
    assert links.describe() == "answer entities in 83% of 6 training rows (1 given, 2 whole answers linked, 2 partly)"


def test_a_linker_is_built_only_for_a_row_that_needs_one(graph):
    built = []

    def build():
        built.append(1)
        return EntityLinker(graph)

    given = [TaskExample("q", answer="cat", answer_entities=("E1",))] * 3
    assert link_answers(given, build, graph)[1].given == 3 and not built, "every row names its answers"
    rows, links = link_answers([*given, TaskExample("q", answer="cat"), TaskExample("q", answer="dog")], build, graph)
    assert (links.given, links.whole) == (3, 2)
    assert [r.answer_entities for r in rows[3:]] == [("E1",), ("E0",)] and len(built) == 1


KG = "dog\tis_a\tanimal\ncat\tis_a\tanimal\ndog\tis_a\tpet\nbank\tholds\tmoney\nbank\tnear\triver\ntree\tnear\triver\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("job")
    _, config, auto = ARCHITECTURES[1]  # llama
    build_model(config, auto, 0).save_pretrained(folder / "model")
    tiny_tokenizer().save_pretrained(folder / "model")
    (folder / "kg.tsv").write_text(KG)
    return folder


def _config(files, tmp_path, rows) -> JobConfig:
    (tmp_path / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return JobConfig.from_dict(
        {
            "model": str(files / "model"),
            "kg": str(files / "kg.tsv"),
            "task": str(tmp_path / "task.jsonl"),
            "retrieval": {"num_neighbors": [-1, -1], "num_facts": 1},
            "selection": {"hidden_channels": 16, "max_steps": 30, "batch_size": 4, "learning_rate": 0.01},
            "training": {"output_dir": str(tmp_path / "run"), "progress_bar": False, "log_with": []},
            "variants": [{"name": "graph+facts", "adapter": "lora", "facts": "selected", "num_facts": 1}],
        }
    )


def test_a_task_file_with_answer_text_only_trains_the_answers_objective(files, tmp_path, capsys):
    rows = [
        {"text": "the dog", "answer": "animal", "split": "train"},
        {"text": "the cat", "answer": "Animal", "split": "train"},
        {"text": "the bank", "answer": "money", "split": "train"},
        {"text": "a tree", "answer": "the river", "split": "train"},
        {"text": "the dog", "answer": "a pet", "answer_entities": ["animal"], "split": "train"},
        {"text": "the tree", "answer": "river", "split": "test"},
    ]
    job = prepare(_config(files, tmp_path, rows))
    linked = [("animal",), ("animal",), ("money",), ("river",)]
    assert [r.answer_entities for r in job.splits["train"]] == [*linked, ("animal",)], "the given one is kept (not pet)"

    assert job.splits["test"][0].answer_entities == (), "held-out rows are left as they are"
    assert "selection: answer entities in 100% of 5 training rows (1 given, 3 whole answers linked, 1 partly)" in (
        capsys.readouterr().err
    )
    assert job.selection_report["objective"] == "answers"
    train = job._base_dataset("train", with_target=True)
    assert answer_fact_recall(job.scorer, train, job.tokenizer, k=1) == 1.0


def test_answers_that_link_in_almost_no_row_are_warned_about_and_in_none_refused(files, tmp_path):
    rows = [{"text": f"the dog {i}", "answer": "zebra", "split": "train"} for i in range(11)]
    with pytest.raises(FactScorerError, match=r"none of the 11 training rows of .*task\.jsonl'? names one"):
        prepare(_config(files, tmp_path, rows))
    rows[0]["answer"] = "animal"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare(_config(files, tmp_path, rows))
    assert any("only answer entities in 9% of 11 training rows" in str(w.message) for w in caught)
