"""A job's token budgets: derived from its own KG and examples unless set, recorded, read back, and what they cut
reported."""

import json

import pytest
from tiny_models import ARCHITECTURES, build_model, tiny_tokenizer

from kgpeft.pipeline import JobConfig, Variant, prepare, run
from kgpeft.pipeline.budgets import BUDGETS_FILE, round_up

# Labels of 25 words: a fact has 28 tokens with the tiny tokenizer (one per word), over the old fixed
# `max_fact_tokens` (24); the answer, "animal", is the label's last word.
LONG = "big small river bank tree money " * 4 + "animal"
KG = f"dog\tis_a\t{LONG}\ncat\tis_a\t{LONG}\ncat\tnear\ttree\nbank\tholds\tmoney\n"
ROWS = [
    {"text": "the dog", "answer": "animal", "split": "train"},
    {"text": "the cat", "answer": "animal", "split": "train"},
    {"text": "the bank", "answer": "money", "split": "train"},
    {"text": "a cat", "answer": "animal", "split": "test"},
    {"text": "a bank", "answer": "money", "split": "test"},
]
MEMORY = Variant("memory", adapter="kg-lora")
FACTS = Variant("facts", adapter="lora", facts="prior")


@pytest.fixture(scope="module")
def files(tmp_path_factory, seed):
    folder = tmp_path_factory.mktemp("job")
    _, config, auto = ARCHITECTURES[1]  # llama: q/k/v/o projections, so memory mode works
    build_model(config, auto, seed).save_pretrained(folder / "model")
    tiny_tokenizer().save_pretrained(folder / "model")
    (folder / "kg.tsv").write_text(KG)
    (folder / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return folder


def _config(files, tmp_path, retrieval=None, **changes) -> JobConfig:
    values = {
        "model": str(files / "model"),
        "kg": str(files / "kg.tsv"),
        "task": str(files / "task.jsonl"),
        "max_new_tokens": 2,
        "adapter": {"r": 4, "graph_channels": 16, "knowledge_mode": "memory"},
        "retrieval": {"num_neighbors": [-1, -1], "num_facts": 2, "memory_facts": 2, **(retrieval or {})},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 1,
            "per_device_train_batch_size": 2,
            "progress_bar": False,
            "log_with": [],
        },
        "variants": [{"name": "facts", "adapter": "lora", "facts": "prior"}, {"name": "memory", "adapter": "kg-lora"}],
        "controls": ["correct", "none"],
    }
    return JobConfig.from_dict({**values, **changes})


def test_unset_budgets_are_derived_so_that_no_long_label_is_cut(files, tmp_path, capsys):
    job = prepare(_config(files, tmp_path))
    budgets = job.budgets
    # The longest fact has 28 tokens; the longest training row is a question (2 tokens) with the two 28-token
    # facts of its 2-hop subgraph in a facts block (2 + 2 * 28 + 2 tokens) and its answer: 63 tokens.
    assert (budgets.max_fact_tokens, budgets.max_length) == (32, 64)
    assert (
        set(budgets.derived) == {"max_length", "max_fact_tokens"}
        and "has 28 tokens" in budgets.derived["max_fact_tokens"]
    )
    assert (
        "budgets: max_length 64 (derived: the longest of 5 rows (training rows with answers) with its 2 longest facts"
        in capsys.readouterr().err
    )
    for split, with_target in (("train", True), ("test", False)):
        for variant in (MEMORY, FACTS):
            data = job.dataset(split, variant, with_target=with_target)
            truncation = data.truncation()
            assert (truncation.prompts, truncation.facts) == (0, 0), (split, variant.name)
            assert data.max_length == 64 and data.retrieval.max_fact_tokens == 32
    memory = job.dataset("train", MEMORY, with_target=True)
    assert max(len(ids) for f in memory.features for ids in f["fact_ids"]) == 28
    saved = json.loads((tmp_path / "run" / BUDGETS_FILE).read_text())
    assert (saved["max_length"], saved["max_fact_tokens"]) == (64, 32)
    assert (round_up(61, None), round_up(0, None), round_up(61, 50)) == (64, 8, 50)


def test_set_budgets_are_kept_and_what_they_cut_is_reported_and_recorded(files, tmp_path):
    config = _config(files, tmp_path, retrieval={"max_fact_tokens": 5}, max_length=12)
    with pytest.warns(UserWarning) as caught:
        results = run(config, plot=False)
    warned = [str(w.message).split(" (")[0] for w in caught]
    assert warned == [
        "memory, train: token limits cut knowledge from 3 rows or facts",
        "memory, test, correct: token limits cut knowledge from 1 rows or facts",
    ], "the facts variant's cuts keep its answers and questions: printed, no warning"
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["budgets"] == {"max_length": 12, "max_fact_tokens": 5, "derived": {}}
    assert not (tmp_path / "run" / BUDGETS_FILE).exists(), "nothing derived, nothing to read back"
    by_name = {v["name"]: v for v in saved["variants"]}
    memory = by_name["memory"]["truncation"]
    assert list(memory) == ["train", "correct", "none"]
    # The dog's two facts are the two 28-token ones (its own, and the cat's through their shared label), the cat's
    # are its own and "cat near tree", the bank's "bank holds money": 3 of 5 cut, each losing "animal".
    assert (memory["train"]["facts"], memory["train"]["fact_answers"], memory["train"]["memory_facts"]) == (3, 3, 5)
    assert memory["none"]["memory_facts"] == 0
    facts = by_name["facts"]["truncation"]["train"]
    # The facts blocks of the dog and the cat lose their start; "animal" ends them, next to the question, and stays.
    assert (facts["prompts"], facts["prompt_answers"], facts["questions"]) == (2, 0, 0)
    assert all("truncation" not in m for v in saved["variants"] for m in v["metrics"].values())
    card = json.loads((tmp_path / "run" / "memory" / "adapter" / "kgpeft_config.json").read_text())["card"]
    assert (card["training"]["max_length"], card["training"]["max_fact_tokens"]) == (12, 5)
    assert results.variants[1].truncation["train"]["facts"] == 3


def test_evaluating_a_saved_job_reads_the_budgets_it_trained_with(files, tmp_path, capsys):
    config = _config(files, tmp_path)
    prepare(config)
    path = tmp_path / "run" / BUDGETS_FILE
    path.write_text(json.dumps({"max_length": 40, "max_fact_tokens": 16}))  # as if the KG had changed since
    job = prepare(config, train_scorer=False)
    assert (job.budgets.max_length, job.budgets.max_fact_tokens) == (40, 16)
    assert f"max_length 40 (read from {path})" in capsys.readouterr().err
    assert job.dataset("test", MEMORY, with_target=False).retrieval.max_fact_tokens == 16
    given = _config(files, tmp_path, max_length=24)
    assert prepare(given, train_scorer=False).budgets.max_length == 24, "a set budget is kept as given"
    path.write_text("{not json")
    with pytest.warns(UserWarning, match="cannot be read"):
        assert prepare(config, train_scorer=False).budgets.max_length == 64, "derived again"
