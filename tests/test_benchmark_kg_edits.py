"""benchmarks.kg_edits on a tiny job trained here: the edits it plans, and one run of it end to end."""

import dataclasses
import json

import pytest
import yaml
from tiny_models import ARCHITECTURES, build_model, tiny_tokenizer

from benchmarks import kg_edits
from kgpeft.pipeline import JobConfig, prepare, run

ANSWERS = {"dog": "canine", "cat": "feline", "oak": "tree", "rose": "flower", "trout": "fish", "eagle": "bird"}
KG = (
    "".join(f"{s}\tis_a\t{a}\n" for s, a in ANSWERS.items())
    + "dog\tlikes\tbone\ncat\tlikes\ttrout\neagle\tlikes\ttrout\n"
)
SPLITS = {"oak": "train", "rose": "train", "trout": "valid", "eagle": "valid", "dog": "test", "cat": "test"}


def _row(subject: str) -> dict:
    text = f"What kind of thing is a {subject}?"
    start = text.index(subject)
    return {
        "text": text,
        "answer": ANSWERS[subject],
        "entity": subject,
        "target_start": start,
        "target_end": start + len(subject),
        "relations": ["is_a"],
        "answer_entities": [ANSWERS[subject]],
        "accepted_answers": [ANSWERS[subject]],
        "split": SPLITS[subject],
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny job's config file and its trained output (fact scorer, lora, lora+facts and kg-lora adapters)."""
    folder = tmp_path_factory.mktemp("kg_edits")
    _, config, auto = ARCHITECTURES[1]  # llama: q/k/v/o projections, so memory mode works
    build_model(config, auto, 0).save_pretrained(folder / "model")
    tiny_tokenizer().save_pretrained(folder / "model")
    (folder / "kg.tsv").write_text(KG)
    (folder / "task.jsonl").write_text("".join(json.dumps(_row(s)) + "\n" for s in SPLITS))
    values = {
        "model": str(folder / "model"),
        "kg": str(folder / "kg.tsv"),
        "task": str(folder / "task.jsonl"),
        "max_new_tokens": 2,
        "adapter": {"r": 4, "graph_channels": 16, "knowledge_mode": "memory"},
        "retrieval": {"num_neighbors": [-1, -1], "num_facts": 2, "memory_facts": 2},
        "selection": {"hidden_channels": 16, "max_steps": 5, "batch_size": 2, "learning_rate": 0.01},
        "training": {
            "output_dir": str(folder / "run"),
            "max_steps": 1,
            "per_device_train_batch_size": 2,
            "progress_bar": False,
            "log_with": [],
        },
        "variants": [
            {"name": "lora", "adapter": "lora"},
            {"name": "lora+facts", "adapter": "lora", "facts": "prior"},
            {"name": "kg-lora", "adapter": "kg-lora"},
        ],
        "controls": ["correct"],
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(values))
    run(JobConfig.from_dict(values), plot=False)
    return folder


def test_the_planned_edits_replace_add_and_remove_the_answer_facts(trained):
    config = JobConfig.from_yaml(trained / "job.yaml")
    job = prepare(config, train_scorer=False)
    kg, examples = job.kg, job.splits["test"]
    assert [e.entity for e in examples] == ["dog", "cat"]
    counterfactual, add, remove = kg_edits.plan_edits(kg, examples, seed=0)
    key, is_a = kg.entity_id, kg.relation_id("is_a")
    answers = [[key("dog"), key("cat")], [is_a, is_a], [key("canine"), key("feline")]]
    assert remove.remove.tolist() == counterfactual.remove.tolist() == answers and remove.add.size == 0
    # each subject's new answer is the other question's; `add` adds it beside the subject's own
    swapped = [answers[0], answers[1], answers[2][::-1]]
    assert counterfactual.add.tolist() == add.add.tolist() == swapped and add.remove.size == 0
    assert counterfactual.targets == [["feline"], ["canine"]] and add.targets == [
        ["canine", "feline"],
        ["feline", "canine"],
    ]
    assert remove.targets == [["canine"], ["feline"]]
    h, r, t = kg.edit(remove=counterfactual.remove, add=counterfactual.add).triples.numpy()
    assert t[(h == key("cat")) & (r == is_a)].tolist() == [key("canine")]


def test_a_run_writes_a_row_per_variant_control_and_edit(trained, tmp_path, capsys):
    output = tmp_path / "kg_edits.json"
    argv = ["--config", str(trained / "job.yaml"), "--demo-output", str(trained / "run"), "--questions", "2"]
    kg_edits.main(
        [*argv, "--locality", "2", "--controls", "correct", "shuffled", "--diagnose", "--output", str(output)]
    )
    rows = json.loads(output.read_text())["rows"]
    edits = [(r["variant"], r["control"], r["edit"]) for r in rows if r["table"] == "edits"]
    knowledge = [(v, c) for v in ("kg-lora", "lora+facts", "lora+facts:selected") for c in ("correct", "shuffled")]
    assert sorted(edits) == sorted((v, c, k) for v, c in [*knowledge, ("lora", "correct")] for k in kg_edits.KINDS)
    for r in rows:
        if r["table"] == "edits":
            assert r["edited"] == 2 and r["locality_questions"] == 2
            assert 0 <= r["success"] <= 100 and (r["new"] is None) == (r["edit"] != "add")
            # trout's subgraph holds cat -is_a-> feline, which every edit changes; eagle's (eagle, bird, trout,
            # fish, cat) holds cat but none of its edited triples, so it is the one local question. Shuffled,
            # locality counts by the subgraph read (seed 0's donors: trout reads dog's, eagle trout's), both edited.
            assert r["local"] == (1 if r["control"] == "correct" else 0)
            # --diagnose: under `correct`, one cause per edit that did not reach its answer
            if r["control"] == "correct" and r["variant"] != "lora":
                assert sum(r["causes"].values()) == round(2 * (100 - r["success"]) / 100)
                assert set(r["causes"]) <= set(kg_edits.CAUSES)
                assert sum(r["answers"].values()) == sum(r["causes"].values())
            else:
                assert "causes" not in r and "answers" not in r
    assert "edited and 2 locality questions" in capsys.readouterr().out


def test_diagnose_names_why_an_edit_did_not_reach_the_answer(trained):
    config = JobConfig.from_yaml(trained / "job.yaml")
    job = prepare(config, train_scorer=False)
    examples = job.splits["test"]  # dog (canine), cat (feline)
    counterfactual, add, remove = kg_edits.plan_edits(job.kg, examples, seed=0)
    variant = next(v for v in config.variants if v.name == "lora+facts")

    def read_all(plan, num_facts=10):  # every fact of the edited KG's subgraphs read as text
        edited = dataclasses.replace(job, kg=job.kg.edit(remove=plan.remove, add=plan.add), _datasets={})
        data = edited.dataset("test", variant, with_target=False)
        return data.with_retrieval(dataclasses.replace(data.retrieval, num_facts=num_facts))

    # removed, the old answers are nowhere in the subgraphs: an old answer given comes from the model
    causes = [f["cause"] for f in kg_edits.diagnose(remove, read_all(remove), examples, ["canine", "feline"])]
    assert causes == ["prior", "prior"]
    assert kg_edits.diagnose(remove, read_all(remove), examples, ["bone", "trout"]) == []
    # a KG that keeps the old facts beside the new ones (as one that still states them the other way)
    kept = kg_edits.diagnose(counterfactual, read_all(add), examples, ["canine", "x"])
    assert [(f["subject"], f["cause"]) for f in kept] == [("dog", "old fact read"), ("cat", "old fact read")]
    # counterfactual: dog's new fact dog -is_a-> feline is read, yet the answer is neither
    (dog,) = [
        f
        for f in kg_edits.diagnose(counterfactual, read_all(counterfactual), examples, ["bone", "canine"])
        if f["subject"] == "dog"
    ]
    assert dog["cause"] == "misread" and "dog is a feline" in dog["read"] and dog["answer"] == "bone"
    unread = kg_edits.diagnose(counterfactual, read_all(counterfactual, num_facts=0), examples, ["bone", "trout"])
    assert [f["cause"] for f in unread] == ["not read", "not read"]  # retrieved (every neighbour), not read
    # add: dog reads canine's fact and feline's, and answers neither
    (both,) = [f for f in kg_edits.diagnose(add, read_all(add), examples, ["bone", "feline"]) if f["subject"] == "dog"]
    assert both["cause"] == "two answers read" and both["answer_kind"] == "other"


def test_answer_kind_tells_a_cut_name_from_another_answer():
    assert kg_edits.answer_kind("The canine!", ["canine"], ["feline"]) == "old answer"
    assert kg_edits.answer_kind("bird", ["canine"], ["bird family"]) == "part of a name"
    assert kg_edits.answer_kind("family", ["bird family"], ["x"]) == "part of a name"
    assert kg_edits.answer_kind("bird fam", ["canine"], ["bird family"]) == "other"  # words, not characters
    assert kg_edits.answer_kind("", ["canine"], ["bird family"]) == "other"
