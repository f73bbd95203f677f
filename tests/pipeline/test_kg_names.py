"""A job never silently reads nothing from its KG: a KG without names is refused, and how many questions
linked is reported per split (a warning where most did not)."""

import json

import pytest
from tiny_models import ARCHITECTURES, build_model, tiny_tokenizer

from kgpeft.pipeline import JobConfig, prepare
from kgpeft.pipeline.config import JobConfigError

ROWS = [
    {"text": "the dog", "answer": "animal", "split": "train"},
    {"text": "the cat", "answer": "animal", "split": "train"},
    {"text": "the bank", "answer": "money", "split": "train"},
    {"text": "the zebra", "answer": "animal", "split": "test"},
    {"text": "a dog", "answer": "pet", "split": "test"},
    {"text": "an okapi", "answer": "animal", "split": "test"},
]


@pytest.fixture(scope="module")
def files(tmp_path_factory, seed):
    folder = tmp_path_factory.mktemp("names")
    _, config, auto = ARCHITECTURES[1]
    build_model(config, auto, seed).save_pretrained(folder / "model")
    tiny_tokenizer().save_pretrained(folder / "model")
    (folder / "ids.tsv").write_text("Q1\tP1\tQ2\nQ3\tP1\tQ2\nQ1\tP1\tQ4\nQ5\tP2\tQ6\n")
    (folder / "labels.tsv").write_text("Q1\tdog\nQ2\tanimal\nQ3\tcat\nQ4\tpet\nQ5\tbank\nQ6\tmoney\n")
    (folder / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return folder


def _config(files, tmp_path, kg, variants) -> JobConfig:
    values = {
        "model": str(files / "model"),
        "kg": kg,
        "task": str(files / "task.jsonl"),
        "max_new_tokens": 2,
        "adapter": {"r": 4, "graph_channels": 16, "knowledge_mode": "cross"},
        "training": {"output_dir": str(tmp_path / "run"), "max_steps": 1, "progress_bar": False, "log_with": []},
        "variants": variants,
    }
    return JobConfig.from_dict(values)


KG_LORA = [{"name": "kg-lora", "adapter": "kg-lora"}]


def test_a_kg_without_names_is_refused_for_a_job_that_links_text(files, tmp_path):
    config = _config(files, tmp_path, str(files / "ids.tsv"), KG_LORA)
    with pytest.raises(JobConfigError) as err:
        prepare(config)
    message = str(err.value)
    assert message.startswith(
        f"kg: {files / 'ids.tsv'}: 0 of 6 entities have a name other than their id (such as 'Q1')"
    )
    assert "`kg: {triples: FILE, labels: LABELS}`" in message and "`kgpeft kg import FILE --labels LABELS" in message


def test_a_job_that_reads_no_kg_may_use_a_kg_without_names(files, tmp_path, recwarn):
    """Nor does a job whose questions link to nothing fail deriving its budgets (the tokenizer got no facts)."""
    config = _config(files, tmp_path, str(files / "ids.tsv"), [{"name": "lora", "adapter": "lora"}])
    job = prepare(config)
    assert job.kg.num_entities == 6 and job.linking == {"train": (3, 0, 0), "test": (3, 0, 0)}
    assert not [w for w in recwarn if "entity linked" in str(w.message)]  # no variant reads the KG


def test_linking_is_reported_per_split_and_a_split_mostly_unlinked_is_a_warning(files, tmp_path, capsys):
    kg = {"triples": str(files / "ids.tsv"), "labels": str(files / "labels.tsv")}
    with pytest.warns(UserWarning, match=r"only 1 of 3 test questions have an entity linked in the KG") as record:
        job = prepare(_config(files, tmp_path, kg, KG_LORA))
    assert "kg: {triples: FILE, labels: LABELS}" in str(record[0].message)
    assert job.linking == {"train": (3, 3, 3), "test": (3, 1, 1)}
    err = capsys.readouterr().err
    assert (
        "linking: train 3 of 3 questions linked (100%), 3 with a non-empty subgraph; "
        "test 1 of 3 questions linked (33%), 1 with a non-empty subgraph\n"
    ) in err
