"""The pipeline directly: a job's variants and controls on a tiny model, KG and task written by the test."""

import dataclasses
import json
import shutil
import sys
import warnings

import pytest
import torch
from peft import PeftModel
from tiny_models import ARCHITECTURES, build_model, tiny_tokenizer
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from kgpeft import KGLoraConfig, KGPeftModel, get_kg_peft_model
from kgpeft.card import adapter_info
from kgpeft.checkpoint import STAGED_SCORER_NAME, CheckpointError, library_versions
from kgpeft.data import DataError
from kgpeft.datasets import load_kg
from kgpeft.errors import KGFileNotFoundError, OutputPathError
from kgpeft.pipeline import JobConfig, JobConfigError, Variant, evaluate_variant, prepare, run, train_variant
from kgpeft.pipeline.answer import predict
from kgpeft.pipeline.run import VariantResult
from kgpeft.pipeline.train import build_model as build_variant_model
from kgpeft.retrieval import format_fact, frame_fact
from kgpeft.training.checkpoints import LOCK_NAME

KG = "dog\tis_a\tanimal\ncat\tis_a\tanimal\ndog\tis_a\tpet\nbank\tholds\tmoney\nbank\tnear\triver\ntree\tnear\triver\n"
ROWS = [
    {"text": "the dog", "answer": "animal", "answer_entities": ["animal"], "split": "train"},
    {"text": "the cat", "answer": "animal", "answer_entities": ["animal"], "split": "train"},
    {"text": "the bank", "answer": "money", "answer_entities": ["money"], "split": "train"},
    {"text": "a tree", "answer": "river", "answer_entities": ["river"], "split": "train"},
    {"text": "the dog", "answer": "pet", "answer_entities": ["pet"], "split": "test"},
    {"text": "a bank", "answer": "money", "answer_entities": ["money"], "split": "test"},
    {"text": "the tree", "answer": "river", "answer_entities": ["river"], "split": "test"},
]


@pytest.fixture(scope="module")
def files(tmp_path_factory, seed):
    folder = tmp_path_factory.mktemp("job")
    _, config, auto = ARCHITECTURES[1]  # llama: has q/k/v/o projections, so memory mode works
    build_model(config, auto, seed).save_pretrained(folder / "model")
    tiny_tokenizer().save_pretrained(folder / "model")
    (folder / "kg.tsv").write_text(KG)
    (folder / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return folder


def _config(files, tmp_path, seed=0, **changes) -> JobConfig:
    values = {
        "seed": seed,
        "model": str(files / "model"),
        "kg": str(files / "kg.tsv"),
        "task": str(files / "task.jsonl"),
        "max_new_tokens": 2,
        "adapter": {"r": 4, "graph_channels": 16, "knowledge_mode": "memory"},
        "retrieval": {"num_neighbors": [-1, -1], "num_facts": 2, "memory_facts": 2},
        "selection": {"hidden_channels": 16, "max_steps": 30, "batch_size": 4, "learning_rate": 0.01, "seed": seed},
        "training": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "per_device_train_batch_size": 2,
            "progress_bar": False,
            "log_with": [],
        },
        "variants": [
            {"name": "base", "adapter": "none"},
            {"name": "lora", "adapter": "lora"},
            {"name": "lora+facts", "adapter": "lora", "facts": "prior"},
            {"name": "graph+facts", "adapter": "lora", "facts": "selected", "num_facts": 1},
            {"name": "memory", "adapter": "kg-lora"},
            {"name": "token", "adapter": "kg-lora", "knowledge": {"knowledge_mode": "token"}},
        ],
        "controls": ["correct", "shuffled", "none"],
    }
    return JobConfig.from_dict({**values, **changes})


def test_run_trains_every_variant_and_evaluates_its_controls(files, tmp_path):
    config = _config(files, tmp_path)
    results = run(config, plot=False)
    by_name = {v.name: v for v in results.variants}
    assert list(by_name) == ["base", "lora", "lora+facts", "graph+facts", "memory", "token"]
    assert list(by_name["base"].metrics) == list(by_name["lora"].metrics) == ["correct"], "no KG: one control"
    for name in ("lora+facts", "graph+facts", "memory", "token"):
        assert list(by_name[name].metrics) == ["correct", "shuffled", "none"]
        assert all(len(m["predictions"]) == 3 for m in by_name[name].metrics.values())
    assert by_name["base"].trainable == 0 and by_name["lora"].steps == 2
    assert abs(by_name["lora"].trainable - by_name["memory"].trainable) < by_name["memory"].trainable * 0.2
    facts = by_name["lora+facts"].metrics
    assert (
        facts["correct"]["prompt_tokens"]
        > facts["none"]["prompt_tokens"]
        == by_name["lora"].metrics["correct"]["prompt_tokens"]
    ), "facts lengthen the prompt; with no knowledge the prompt is the question alone"
    assert by_name["graph+facts"].metrics["correct"]["prompt_tokens"] < facts["correct"]["prompt_tokens"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [v["name"] for v in saved["variants"]] == list(by_name)
    assert (saved["task"], saved["seed"]) == (config.task, config.seed), "a results file says what it measured"
    assert saved["versions"] == library_versions(), "and with which libraries"
    assert (tmp_path / "run" / "memory" / "adapter" / "kgpeft_config.json").is_file()
    assert (tmp_path / "run" / "fact_scorer.safetensors").is_file()
    assert "reliance" in results.table() and "shuffled" in results.table()
    assert results.table().split()[:2] == ["variant", "control"], "one word for the knowledge given at evaluation"


def test_controls_give_other_or_no_knowledge(files, tmp_path):
    job = prepare(_config(files, tmp_path))
    variant = Variant("facts", adapter="lora", facts="prior")
    correct = job.dataset("test", variant, with_target=False)
    shuffled = job.dataset("test", variant, with_target=False, control="shuffled")
    none = job.dataset("test", variant, with_target=False, control="none")
    n = len(correct.examples)
    own = [correct.graphs[i].n_id.tolist() for i in range(n)]
    other = [shuffled.graphs[i].n_id.tolist() for i in range(n)]
    assert sorted(map(tuple, own)) == sorted(map(tuple, other)) and all(own[i] != other[i] for i in range(n))
    assert [m.surface for ms in shuffled.mentions for m in ms] == [m.surface for ms in correct.mentions for m in ms]
    assert [correct.facts(i) for i in range(n)] != [shuffled.facts(i) for i in range(n)]
    assert all(g.n_id.numel() == 0 for g in none.graphs) and not any(none.mentions)
    assert (
        none.features[0]["input_ids"]
        == job.dataset("test", Variant("lora", adapter="lora"), with_target=False).features[0]["input_ids"]
    )


def test_knowledge_dropout_empties_a_share_of_the_training_examples_only(files, tmp_path):
    job = prepare(_config(files, tmp_path))
    variant = Variant("g", adapter="kg-lora", facts="selected", num_facts=1, knowledge_dropout=0.5)
    kept = job.dataset("train", Variant("g", adapter="kg-lora", facts="selected", num_facts=1), with_target=True)
    train = job.dataset("train", variant, with_target=True)
    n = len(train.examples)
    dropped = [i for i in range(n) if train.graphs[i].n_id.numel() == 0]
    assert len(dropped) == n // 2 and all(kept.graphs[i].n_id.numel() for i in range(n))
    for i in range(n):
        if i in dropped:
            assert not train.mentions[i] and train.facts(i) == [] and "fact_ids" in train.features[i]
            assert train.features[i]["fact_ids"] == [] and set(train.features[i]["token_entity"]) == {-1}
        else:  # the others keep their graph, links, selected facts and memory slots
            assert train.features[i] == kept.features[i] and train.facts(i) == kept.facts(i)
    assert dropped == [i for i in range(n) if job.dataset("train", variant, with_target=True).graphs[i].num_nodes == 0]
    test = job.dataset("test", variant, with_target=False)
    assert all(g.n_id.numel() for g in test.graphs), "evaluation keeps its knowledge"
    assert kept.with_knowledge_dropout(0.0) is kept
    with pytest.raises(DataError, match=r"`rate` should be a number in \[0, 1\), got True"):
        kept.with_knowledge_dropout(True)
    with pytest.raises(JobConfigError, match=r"`knowledge_dropout` should be in \[0, 1\), got 1\.0"):
        Variant("g", adapter="kg-lora", knowledge_dropout=1.0)
    with pytest.raises(JobConfigError, match="variant 'lora' reads none"):
        Variant("lora", adapter="lora", knowledge_dropout=0.2)


def test_selected_facts_reach_the_answer(files, tmp_path, seed):
    from kgpeft.selection import answer_fact_recall

    job = prepare(_config(files, tmp_path, seed))
    train = job._base_dataset("train", with_target=True)
    assert answer_fact_recall(job.scorer, train, job.tokenizer, k=1) == 1.0
    data = job.dataset("test", Variant("g", adapter="lora", facts="selected", num_facts=1), with_target=False)
    first = [data.facts(i, 1)[0] for i in range(len(data.examples))]
    assert first[1] in ("bank holds money", "money holds bank") or "money" in first[1]


def test_variant_settings_are_checked(files, tmp_path):
    with pytest.raises(JobConfigError, match="`facts` should be one of"):
        _config(files, tmp_path, variants=[{"name": "x", "adapter": "lora", "facts": "some"}])
    with pytest.raises(JobConfigError, match="distinct names"):
        _config(files, tmp_path, variants=[{"name": "x"}, {"name": "x"}])
    with pytest.raises(JobConfigError, match=r"set `retrieval\.memory_facts` > 0"):
        _config(files, tmp_path, retrieval={"num_facts": 1})
    with pytest.raises(JobConfigError, match="add a `selection:` section"):
        _config(files, tmp_path, selection=None)
    with pytest.raises(JobConfigError, match="unknown key 'knowledge_mod'"):
        _config(files, tmp_path, variants=[{"name": "x", "knowledge": {"knowledge_mod": "cross"}}])
    with pytest.raises(JobConfigError, match="`controls` should be"):
        _config(files, tmp_path, controls=["wrong"])


def test_train_and_evaluate_one_variant(files, tmp_path):
    job = prepare(
        _config(files, tmp_path, selection=None, variants=[{"name": "token", "knowledge": {"knowledge_mode": "token"}}])
    )
    variant = job.config.variants[0]
    trained = train_variant(job, variant)
    assert trained.steps == 2 and (trained.output_dir / "final").is_dir()
    metrics = evaluate_variant(job, variant, trained.model, "none")
    assert {"exact_match", "token_f1", "prompt_tokens", "predictions"} <= set(metrics)
    result = VariantResult(
        "token", trained.trainable, 10.0, 2, {"correct": {"exact_match": 0.5}, "shuffled": {"exact_match": 0.25}}
    )
    assert result.reliance("exact_match") == 0.25 and result.seconds_per_step == 5.0
    assert torch.equal(next(job.base.parameters()), next(prepare(job.config).base.parameters())), "the base stays"


def test_the_lora_baseline_is_built_without_a_futurewarning(files, tmp_path):
    # peft asks transformers 5 for its deprecated `is_gradient_checkpointing`; pyproject's filter hides that in tests
    job = prepare(_config(files, tmp_path, selection=None, variants=[{"name": "lora", "adapter": "lora"}]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert build_variant_model(job, job.config.variants[0]).peft_config


def test_lora_rank_for_budget_by_hand():
    from kgpeft.pipeline.variants import lora_rank_for_budget

    _, config, auto = ARCHITECTURES[1]  # llama: 2 layers, width 32, 4 heads of 8, 2 key/value heads
    base = build_model(config, auto)
    per_rank = 2 * ((32 + 32) + (32 + 16) + (32 + 16) + (32 + 32))  # q, k, v, o per layer: 448
    assert lora_rank_for_budget(base, ["q_proj", "k_proj", "v_proj", "o_proj"], 3 * per_rank) == 3
    assert lora_rank_for_budget(base, r".*\.(q|k|v|o)_proj", 3 * per_rank + 100) == 3
    assert lora_rank_for_budget(base, ["q_proj"], 10) == 1, "never below rank 1"


def test_unwritable_output_dir_fails_before_the_job_is_prepared(files, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    config = _config(files, tmp_path)
    config.training.output_dir = str(tmp_path / "file" / "run")

    def prepare(*args, **kwargs):
        raise AssertionError("the KG and the model were loaded before the output folder was checked")

    monkeypatch.setattr(sys.modules["kgpeft.pipeline.run"], "prepare", prepare)
    with pytest.raises(OutputPathError, match=r"`training\.output_dir` .*file/run cannot be written: Not a directory"):
        run(config, plot=False)


@pytest.mark.parametrize("variant", ["base", "other"])
def test_a_second_job_in_the_same_output_dir_stops_at_once_naming_the_lock(files, tmp_path, monkeypatch, variant):
    from filelock import FileLock

    folder = tmp_path / "run"
    folder.mkdir()
    other = FileLock(folder / LOCK_NAME, timeout=0)
    other.acquire()  # a job running there, in another process, with variant "base"
    message = rf"`training\.output_dir` {folder} is in use by another job \(it holds {folder / LOCK_NAME}\)"
    config = _config(files, tmp_path, variants=[{"name": variant, "adapter": "none"}])
    try:
        with monkeypatch.context() as m:

            def no_prepare(*args, **kwargs):
                raise AssertionError("the job was prepared in a folder another job holds")

            m.setattr(sys.modules["kgpeft.pipeline.run"], "prepare", no_prepare)
            with pytest.raises(OutputPathError, match=message):
                run(config, plot=False)
        with pytest.raises(OutputPathError, match=message):
            prepare(config)  # on its own, it would write the fact scorer the other job reads
    finally:
        other.release()
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME], "nothing written"


@pytest.mark.parametrize("folder", ["final", "best", "adapter"])
def test_a_users_folder_where_a_variant_saves_is_refused_before_the_job_starts(files, tmp_path, monkeypatch, folder):
    mine = tmp_path / "run" / "token" / folder
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")

    def no_prepare(*args, **kwargs):
        raise AssertionError("the job started")

    monkeypatch.setattr(sys.modules["kgpeft.pipeline.run"], "prepare", no_prepare)
    with pytest.raises(OutputPathError, match=rf"{mine} holds files that are not a saved adapter's \(notes\.txt\)"):
        run(_config(files, tmp_path), plot=False)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_results_json_keeps_the_variants_of_earlier_runs_of_the_job(files, tmp_path):
    def job(*names, **changes):
        variants = [{"name": n, "adapter": "none"} for n in names]
        return _config(files, tmp_path, variants=variants, selection=None, controls=["correct"], **changes)

    path = tmp_path / "run" / "results.json"
    run(job("a"), plot=False)
    run(job("b"), plot=False)
    assert [v["name"] for v in json.loads(path.read_text())["variants"]] == ["a", "b"], "a's results kept"
    run(job("a", max_eval_examples=2), plot=False)  # a again: its entry is replaced, in its place
    report = json.loads(path.read_text())
    assert [(v["name"], len(v["predictions"]["correct"])) for v in report["variants"]] == [("a", 2), ("b", 3)]
    with pytest.warns(UserWarning, match=r"Replacing .*results\.json, which held the results of another job"):
        run(job("c", seed=1), plot=False)
    assert [v["name"] for v in json.loads(path.read_text())["variants"]] == ["c"]


def test_quantization_is_checked_and_needs_bitsandbytes_and_a_gpu(files, tmp_path, monkeypatch):
    import importlib.util

    from kgpeft.pipeline.base_model import load_base_model

    with pytest.raises(JobConfigError, match="`quantization` should be one of"):
        _config(files, tmp_path, quantization="3bit")
    config = _config(files, tmp_path, quantization="4bit")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "bitsandbytes" else real(name))
    with pytest.raises(JobConfigError, match="needs bitsandbytes: `pip install bitsandbytes`"):
        load_base_model(config)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "bitsandbytes" else real(name))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(JobConfigError, match="needs a CUDA GPU"):
        load_base_model(config)


def test_joint_variants_train_their_scorer_and_evaluate_with_it(files, tmp_path):
    from kgpeft.pipeline.job import SCORER_FILE
    from kgpeft.selection import answer_fact_recall

    variants = [
        {"name": "joint", "adapter": "kg-lora", "scorer_training": "joint"},
        {"name": "from-staged", "adapter": "kg-lora", "scorer_training": "joint-from-staged"},
    ]
    config = _config(files, tmp_path, variants=variants, controls=["correct", "none"])
    job = prepare(config)
    results = run(config, job=job, plot=False)
    test = job._base_dataset("test", with_target=False)
    staged = answer_fact_recall(job.scorer, test, job.tokenizer, 2)
    for result, variant in zip(results.variants, config.variants, strict=True):
        assert set(result.scorer_recall) == {"before", "after"}
        folder = tmp_path / "run" / variant.name / "adapter"
        assert (folder / "fact_scorer.safetensors").is_file(), "the scorer is saved with the adapter"
        loaded = variant.kind.load(job, folder)
        assert loaded.fact_scorer is not None
        for control in ("correct", "none"):
            again = evaluate_variant(job, variant, loaded, control)
            assert again["predictions"] == result.metrics[control]["predictions"], "a saved joint adapter reproduces"
        data = job.dataset("train", variant, with_target=True)
        assert data.fact_candidates, "its memory facts are picked by its own scorer, per batch"
    assert results.variants[1].scorer_recall["before"] == staged, "joint-from-staged starts from the staged scorer"
    assert results.to_dict()["variants"][0]["scorer_recall"] == results.variants[0].scorer_recall

    only_joint = _config(files, tmp_path / "j", variants=variants[:1], controls=["correct"])
    assert not only_joint.needs_staged_scorer() and config.needs_staged_scorer()
    assert prepare(only_joint).scorer is None and not (tmp_path / "j" / "run" / SCORER_FILE).exists()
    assert _config(files, tmp_path).scorer_training(Variant("m", adapter="kg-lora")) == "staged", "the default"


def test_scorer_training_is_checked(files, tmp_path):
    with pytest.raises(JobConfigError, match="`scorer_training` should be one of"):
        Variant("m", adapter="kg-lora", scorer_training="together")
    with pytest.raises(JobConfigError, match="reads no memory"):
        _config(files, tmp_path, variants=[{"name": "l", "adapter": "lora", "scorer_training": "joint"}])
    with pytest.raises(JobConfigError, match="needs a `selection:` section"):
        _config(files, tmp_path, selection=None, variants=[{"name": "m", "scorer_training": "joint"}])


def test_a_joint_scorer_writes_its_picks_as_the_facts_block(files, tmp_path):
    """`memory_framing: block` with a joint scorer (refused before): each candidate is tokenised as each place's
    piece of the block, and the job trains and evaluates."""
    config = _config(
        files,
        tmp_path,
        retrieval={"memory_facts": 2, "memory_framing": "block"},
        variants=[{"name": "m", "adapter": "kg-lora", "scorer_training": "joint"}],
        controls=["correct"],
    )
    job = prepare(config)
    data = job.dataset("train", config.variants[0], with_target=True)
    rows = [data[i] for i in range(len(data))]
    assert {len(r["candidate_ids"]) for r in rows} == {min(2, len(r["candidate_triples"])) for r in rows} >= {2}
    for row in rows:
        count = len(row["candidate_ids"])
        for place, ids in enumerate(row["candidate_ids"]):
            texts = [frame_fact(format_fact(job.kg, t), place, count) for t in row["candidate_triples"]]
            want = job.tokenizer(texts, add_special_tokens=False)["input_ids"]
            assert ids == [w[: data.retrieval.max_fact_tokens] for w in want]
    results = run(config, job=job, plot=False)
    assert set(results.variants[0].scorer_recall) == {"before", "after"}


@pytest.fixture(scope="module")
def shared(files, tmp_path_factory):
    """A job's KG-LoRA variants (facts ranked by the staged scorer; picked by a joint one), run, and only their
    adapter folders copied elsewhere."""
    tmp = tmp_path_factory.mktemp("shared")
    variants = [{"name": "staged", "adapter": "kg-lora"}, {"name": "joint", "scorer_training": "joint"}]
    config = _config(files, tmp, variants=variants, controls=["correct"])
    job = prepare(config)
    results = run(config, job=job, plot=False)
    for variant in config.variants:
        shutil.copytree(tmp / "run" / variant.name / "adapter", tmp / "elsewhere" / variant.name)
    shutil.rmtree(tmp / "run")
    return job, results, tmp / "elsewhere"


def _load_alone(files, folder):
    """The adapter in ``folder`` on a freshly loaded base model and KG: nothing of the job's."""
    tokenizer = AutoTokenizer.from_pretrained(files / "model")
    base = AutoModelForCausalLM.from_pretrained(files / "model")
    return KGPeftModel.from_pretrained(base, folder, load_kg(str(files / "kg.tsv")), tokenizer=tokenizer), tokenizer


def test_an_adapter_folder_alone_gives_the_jobs_predictions(files, shared):
    job, results, elsewhere = shared
    texts = [e.text for e in job.splits["test"]]
    for variant, result in zip(job.config.variants, results.variants, strict=True):
        model, tokenizer = _load_alone(files, elsewhere / variant.name)
        assert model.answering.fact_ranking == ("staged" if variant.name == "staged" else "retrieval")
        assert (model.staged_scorer is not None) == (variant.name == "staged") != (model.fact_scorer is not None)
        data, predictions = predict(model, texts, tokenizer)
        assert predictions == result.metrics["correct"]["predictions"], variant.name
        expected = job.dataset("test", variant, with_target=False)
        assert data.features == expected.features, "the same knowledge"
        assert data.fact_ranking == expected.fact_ranking, "ranked by the same staged scorer (none: as retrieved)"
        plain = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(files / "model"), elsewhere / variant.name
        )
        lora = {k: v for k, v in plain.state_dict().items() if "lora_" in k}
        assert lora and all(torch.equal(v, model.peft_model.state_dict()[k]) for k, v in lora.items()), "plain peft"
    info = adapter_info(elsewhere / "staged")
    assert info["answering"]["retrieval"]["memory_facts"] == 2 and info["answering"]["fact_ranking"] == "staged"
    card = (elsewhere / "staged" / "README.md").read_text()
    assert "staged_fact_scorer.safetensors" in card and "memory_facts: 2" in card, "the card lists both"


def test_predict_refuses_a_model_without_settings_and_a_multiple_choice_task(files, shared, kg, tokenizer):
    model = get_kg_peft_model(build_model(*ARCHITECTURES[1][1:]), KGLoraConfig(r=4, graph_channels=8), kg, tokenizer)
    with pytest.raises(CheckpointError, match=r"holds no answering settings .* saved outside a job"):
        predict(model, ["the dog"], tokenizer)
    model, tokenizer = _load_alone(files, shared[2] / "staged")
    model.answering = dataclasses.replace(model.answering, task_type="multiple_choice")
    with pytest.raises(CheckpointError, match="'multiple_choice' chooses among options"):
        predict(model, ["the dog"], tokenizer)


def test_a_changed_scorer_or_answering_setting_is_refused_by_name(files, shared, tmp_path):
    _, _, elsewhere = shared
    folder = shutil.copytree(elsewhere / "staged", tmp_path / "a")
    scorer = folder / STAGED_SCORER_NAME
    scorer.write_bytes(scorer.read_bytes()[:-1] + b" ")
    with pytest.raises(CheckpointError, match=f"{scorer}.*changed after saving"):
        _load_alone(files, folder)
    scorer.unlink()
    with pytest.raises(KGFileNotFoundError, match=str(scorer)):
        _load_alone(files, folder)
    config_file = shutil.copytree(elsewhere / "staged", tmp_path / "b") / "kgpeft_config.json"
    meta = json.loads(config_file.read_text())
    for change, key in [
        ({"max_node": 3}, "max_node"),
        ({"max_nodes": "3"}, "max_nodes"),
        ({"num_neighbors": [0]}, "num_neighbors"),
    ]:
        answering = {**meta["answering"], "retrieval": {**meta["answering"]["retrieval"], **change}}
        config_file.write_text(json.dumps({**meta, "answering": answering}))
        with pytest.raises(CheckpointError, match=f"{config_file}.*{key}"):
            _load_alone(files, config_file.parent)
    config_file.write_text(json.dumps({**meta, "answering": {**meta["answering"], "fact_ranking": "best"}}))
    with pytest.raises(CheckpointError, match=f"{config_file}.*`fact_ranking` should be one of"):
        _load_alone(files, config_file.parent)


def test_a_classification_adapter_alone_gives_the_jobs_classes(files, tmp_path, seed):
    _, config, auto = next(a for a in ARCHITECTURES if a[0] == "bert")
    build_model(config, auto, seed).save_pretrained(tmp_path / "bert")
    tiny_tokenizer().save_pretrained(tmp_path / "bert")
    rows = [{**r, "label": int(r["answer"] in ("animal", "pet"))} for r in ROWS]
    (tmp_path / "rows.jsonl").write_text(
        "".join(json.dumps({k: r[k] for k in ("text", "label", "split", "answer_entities")}) + "\n" for r in rows)
    )
    variants = [{"name": "memory", "adapter": "kg-lora"}]
    values = {"model": str(tmp_path / "bert"), "task": str(tmp_path / "rows.jsonl"), "task_type": "classification"}
    config = _config(files, tmp_path, variants=variants, controls=["correct"], num_labels=2, **values)
    results = run(config, plot=False)
    folder = shutil.copytree(tmp_path / "run" / "memory" / "adapter", tmp_path / "shared")
    shutil.rmtree(tmp_path / "run")
    base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "bert", num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "bert")
    model = KGPeftModel.from_pretrained(base, folder, load_kg(str(files / "kg.tsv")), tokenizer=tokenizer)
    assert (model.answering.task_type, model.answering.fact_ranking) == ("classification", "staged")
    _, classes = predict(model, [r["text"] for r in rows if r["split"] == "test"], tokenizer)
    assert classes == results.variants[0].metrics["correct"]["predictions"]
