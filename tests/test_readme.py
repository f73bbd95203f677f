"""The README's Python examples, and the commands of its section "Your own knowledge graph", run as written."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from tiny_models import ARCHITECTURES, build_model, tiny_tokenizer

from kgpeft.cli import main
from kgpeft.datasets import load_kg
from kgpeft.datasets.source import as_kg_source
from kgpeft.graph import KnowledgeGraph

README = Path(__file__).parents[1] / "README.md"


@pytest.mark.slow
def test_readme_examples_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    # The first two (the quick start) run end to end; the later ones are excerpts that need a
    # trained job around them (explanations), so they are only compiled.
    assert len(blocks) >= 2
    for block in blocks[2:]:
        compile(block, str(README), "exec")
    blocks = blocks[:2]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert "trainable params" in capsys.readouterr().out
    assert namespace["out"].last_hidden_state.shape[:2] == namespace["index"].shape
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


# The files the section "Your own knowledge graph" names, small: a Turtle ontology of instruments, an OBO
# anatomy, and a CSV of drugs with a labels file.
FAMILIES = {
    "bowed_string": ("bowed string instrument", ["violin", "viola", "cello", "double bass", "viol", "erhu", "rebec"]),
    "plucked_string": ("plucked string instrument", ["guitar", "lute", "harp", "banjo", "mandolin", "sitar", "oud"]),
    "brass": ("brass instrument", ["trumpet", "trombone", "tuba", "french horn", "cornet", "bugle", "euphonium"]),
    "woodwind": ("woodwind instrument", ["flute", "oboe", "clarinet", "bassoon", "recorder", "piccolo", "saxophone"]),
    "percussion": ("percussion instrument", ["drum", "xylophone", "cymbal", "triangle", "tambourine", "gong"]),
}


def _turtle() -> str:
    lines = [
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
        "@prefix skos: <http://www.w3.org/2004/02/skos/core#> .",
        "@prefix : <http://example.org/instruments#> .",
        ':instrument rdfs:label "musical instrument"@en .',
    ]
    for family, (label, members) in FAMILIES.items():
        lines.append(f':{family} rdfs:label "{label}"@en ; rdfs:subClassOf :instrument .')
        for name in members:
            key = name.replace(" ", "_")
            lines.append(f':{key} rdfs:label "{name}"@en , "{name} (fr)"@fr ; rdfs:subClassOf :{family} .')
    lines.append(':violin skos:altLabel "fiddle"@en ; rdfs:comment "a literal, not an entity" .')
    return "\n".join(lines) + "\n"


# The anatomy's terms: name, an exact synonym, the term it is_a, the term it is part_of (A:0 is the body).
ANATOMY = [
    ("organ", "", 0, 0),
    ("limb", "extremity", 1, 0),
    ("arm", "", 2, 0),
    ("leg", "", 2, 0),
    ("hand", "manus", 1, 3),
    ("foot", "pes", 1, 4),
    ("finger", "digit of hand", 1, 5),
    ("toe", "digit of foot", 1, 6),
    ("heart", "", 1, 0),
    ("lung", "", 1, 0),
    ("liver", "", 1, 0),
    ("kidney", "", 1, 0),
]


def _obo() -> str:
    frames = ["format-version: 1.2\nontology: anatomy\n", "[Term]\nid: A:0\nname: body\n"]
    for i, (name, synonym, kind, whole) in enumerate(ANATOMY, start=1):
        lines = [f"[Term]\nid: A:{i}\nname: {name}"]
        if synonym:
            lines.append(f'synonym: "{synonym}" EXACT []')
        lines += [f"is_a: A:{kind} ! kind", f"relationship: part_of A:{whole} ! whole"]
        frames.append("\n".join(lines) + "\n")
    frames.append("[Typedef]\nid: part_of\nname: part_of\n")
    return "\n".join(frames)


DRUGS = "subject,predicate,object\nD1,treats,C1\nD2,treats,C1\nD3,treats,C2\nD1,interacts_with,D3\n"
DRUG_NAMES = (
    "id,name,synonyms,definition\nD1,aspirin,acetylsalicylic acid|ASA,an analgesic\nD2,ibuprofen,,\n"
    "D3,warfarin,coumadin,an anticoagulant\nC1,headache,cephalalgia,\nC2,thrombosis,,\n"
)


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    return text[start : text.index("\n## ", start + 1)]


def test_your_own_kg_section_runs(tmp_path, monkeypatch, capsys):
    """Every command of "Your own knowledge graph" runs as written on files of each format it names; the job
    config is the section's own, on a tiny model with a few steps."""
    section = _section("Your own knowledge graph")
    monkeypatch.chdir(tmp_path)
    Path("instruments.ttl").write_text(_turtle(), encoding="utf-8")
    Path("anatomy.obo").write_text(_obo(), encoding="utf-8")
    Path("drugs.csv").write_text(DRUGS, encoding="utf-8")
    Path("drug-names.csv").write_text(DRUG_NAMES, encoding="utf-8")
    _, config, auto = ARCHITECTURES[1]  # llama
    build_model(config, auto).save_pretrained("tiny")
    tiny_tokenizer().save_pretrained("tiny")

    yamls = {}
    for block in re.findall(r"```yaml\n(.*?)```", section, flags=re.S):
        name = re.match(r"# (\S+\.yaml)", block).group(1)
        yamls[name] = values = yaml.safe_load(block)
        if name == "my-job.yaml":  # the tiny model, a few steps; the variants, controls, kg and task as written
            assert values["model"] == "SmolLM2-135M-Instruct" and values["controls"] == ["correct", "shuffled", "none"]
            values["model"] = "tiny"
            values["selection"]["max_steps"] = 2
            values["training"].update(max_steps=2, per_device_train_batch_size=4, progress_bar=False, log_with=[])
        Path(name).write_text(yaml.safe_dump(values), encoding="utf-8")
    assert set(yamls) == {"my-job.yaml", "drugs.yaml"}

    commands = [
        shlex.split(line, comments=True)
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)
        for line in block.splitlines()
        if line.strip()
    ]
    # the Turtle road (import, task, demo), the OBO one (import, task), the CSV mapping (import)
    assert {c[0] for c in commands} == {"kgpeft"}
    assert [" ".join(c[1:3]) for c in commands] == [
        "kg import",
        "task build",
        "demo --config",
        "kg import",
        "task build",
        "kg import",
    ]
    outputs, logs = [], []
    for argv in commands:
        code = main([*argv[1:], *(["--threads", "1"] if argv[1] == "demo" else [])])
        captured = capsys.readouterr()
        assert code == 0, f"{shlex.join(argv)} failed: {captured.err}"
        outputs.append(captured.out)
        logs.append(captured.err)

    card, task, demo, obo_card, obo_task, csv_card = outputs
    assert "entities: 40, relations: 1, triples: 39" in card and "40 of 40 entities" in card
    assert "my-task/task.jsonl: 39 questions" in task and "subClassOf: 39" in task
    instruments = KnowledgeGraph.load("my-kg")
    assert instruments.aliases[instruments.entity_keys.index("http://example.org/instruments#violin")] == ("fiddle",)
    table = {tuple(line.split()[:2]) for line in demo.splitlines() if line[:1].isalpha()}
    assert "test 5 of 5 questions linked (100%)" in logs[2]
    for variant in ("lora+facts", "kg-lora"):
        assert {(variant, c) for c in ("correct", "shuffled", "none")} <= table, demo
    # the job's `kg:` as its comment gives it, the file itself, is the same KG
    inline = re.search(r"^kg: my-kg +# .*(\{triples: .*\})$", section, flags=re.M).group(1)
    assert load_kg(as_kg_source(yaml.safe_load(inline))).fingerprint == instruments.fingerprint
    results = json.loads(Path("my-run/results.json").read_text())
    assert [v["name"] for v in results["variants"]] == ["base", "lora", "lora+facts", "kg-lora"]
    assert Path("my-run/kg-lora/adapter/adapter_model.safetensors").is_file()
    assert "entities: 13, relations: 2, triples: 24" in obo_card and "is_a: 12, part_of: 12" in obo_task
    anatomy = KnowledgeGraph.load("anatomy-kg")
    assert anatomy.aliases[anatomy.entity_keys.index("A:7")] == ("digit of hand",)
    drugs = KnowledgeGraph.load("drugs-kg")
    assert "'aspirin' -> aspirin [D1]" in csv_card and drugs.info["name"] == "drugs"
    names = {"D1": "aspirin", "D2": "ibuprofen", "D3": "warfarin", "C1": "headache", "C2": "thrombosis"}
    assert list(drugs.labels) == [names[k] for k in drugs.entity_keys]
    assert drugs.aliases[drugs.entity_keys.index("D1")] == ("acetylsalicylic acid", "ASA")
