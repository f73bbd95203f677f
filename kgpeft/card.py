"""Adapter cards: the ``README.md`` that :meth:`~kgpeft.KGPeftModel.save_pretrained` writes.

Following peft's model-card convention (YAML front matter that the Hugging Face Hub reads,
then Markdown), a kgpeft adapter folder says what it is without loading anything: the base
model and its signature, the knowledge graph it reads (name, size and fingerprint), each
adapter's knowledge mode and settings, the task, the training settings, the evaluation
results when they are known, the kgpeft and library versions, and the lines of code that load it.

The card is rendered from ``kgpeft_config.json`` alone (its ``card`` entry holds what the model
does not know of itself: task, training and results, filled in by
:func:`kgpeft.pipeline.run` or by hand through :attr:`KGPeftModel.card`), so
``kgpeft info DIR`` shows the same card for any adapter folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kgpeft.checkpoint import CONFIG_NAME, SCORER_NAME, STAGED_SCORER_NAME, read_adapter_config

CARD_NAME = "README.md"
# The card's own keys, with what they hold (KGPeftModel.card); other keys are shown as they are.
CARD_KEYS = {
    "base_model": "the base model's name or path (from its config)",
    "kg_name": "the knowledge graph's name (KnowledgeGraph.info['name'])",
    "kg_triples": "the knowledge graph's number of triples",
    "task": "the task the adapter was trained for",
    "training": "training settings, e.g. steps, batch size, learning rate, seed",
    "results": "evaluation results: {control: {metric: value}}",
}
# Adapter settings worth a line in the card (the rest is in kgpeft_config.json).
_DATASETS = ("nations", "kinships", "umls", "wordnet")  # kgpeft.datasets.DATASETS, without importing it
_ADAPTER_KEYS = ("knowledge_mode", "r", "lora_alpha", "node_features", "graph_channels", "num_graph_layers")


def adapter_info(path: str | Path) -> dict[str, Any]:
    """What the card shows, as a JSON-ready dict, read from ``path / kgpeft_config.json`` (checked)."""
    folder = Path(path)
    meta = read_adapter_config(folder)
    card = dict(meta.get("card") or {})
    size = meta["kg_size"]
    return {
        "path": str(folder),
        "kgpeft_version": meta["kgpeft_version"],
        "format_version": meta["format_version"],
        "versions": meta["versions"],
        "base_model": {"name": card.pop("base_model", None), "signature": meta["base_model"]},
        "knowledge_graph": {
            "name": card.pop("kg_name", None),
            "num_entities": size.get("num_entities"),
            "num_relations": size.get("num_relations"),
            "num_triples": card.pop("kg_triples", None),
            "fingerprint": meta["kg_fingerprint"],
        },
        "active_adapter": meta["active_adapter"] or next(iter(meta["adapters"])),
        "adapters": {
            name: {
                **{k: values.get(k) for k in _ADAPTER_KEYS if k in values},
                "target_modules": meta["target_modules"][name],
            }
            for name, values in meta["adapters"].items()
        },
        "task": card.pop("task", None),
        "answering": meta["answering"].to_dict() if meta["answering"] is not None else None,
        "fact_scorers": {
            role: name
            for role, name in (("joint", SCORER_NAME), ("staged", STAGED_SCORER_NAME))
            if name in meta["sha256"]
        },
        "training": card.pop("training", {}),
        "results": card.pop("results", {}),
        **({"other": card} if card else {}),
    }


def render_card(info: dict[str, Any]) -> str:
    """The Markdown card (with YAML front matter) of an :func:`adapter_info` dict."""
    base, kg = info["base_model"], info["knowledge_graph"]
    base_name = base["name"] or "<base model>"
    signature = base["signature"]
    arch = ", ".join(f"{k} {v}" for k, v in signature.items() if k != "embedding_checksum")
    active = info["active_adapter"]
    mode = info["adapters"][active].get("knowledge_mode", "?")
    front = ["---", "library_name: peft", *([f"base_model: {base['name']}"] if base["name"] else [])]
    front += ["tags:", "- kgpeft", "- lora", "- knowledge-graph", f"- kg-lora-{mode}", "---", ""]
    kg_size = f"{kg['num_entities']:,} entities, {kg['num_relations']:,} relations" if kg["num_entities"] else "?"
    if kg["num_triples"] is not None:
        kg_size += f", {kg['num_triples']:,} triples"
    lines = [
        *front,
        f"# KG-LoRA adapter ({mode} mode) for {base_name}",
        "",
        f"A [kgpeft](https://github.com/kgpeft/kgpeft) adapter: LoRA on {base_name}'s attention, "
        f"reading the knowledge graph {kg['name'] or '(unnamed)'} through its `{mode}` knowledge path.",
        "",
        "| | |",
        "|---|---|",
        f"| base model | {base_name} ({arch}; embedding checksum `{signature.get('embedding_checksum', '?')}`) |",
        f"| knowledge graph | {kg['name'] or '(unnamed)'}: {kg_size} |",
        f"| KG fingerprint | `{kg['fingerprint']}` |",
        f"| task | {info['task'] or '(not recorded)'} |",
        f"| kgpeft | {info['kgpeft_version']} (checkpoint format {info['format_version']}) |",
        f"| libraries | {_versions(info['versions'])} |",
        "",
        "## Adapters",
        "",
        "| adapter | " + " | ".join(_ADAPTER_KEYS) + " | target modules |",
        "|---|" + "---|" * (len(_ADAPTER_KEYS) + 1),
    ]
    for name, values in info["adapters"].items():
        targets = values["target_modules"]
        targets = ", ".join(targets) if isinstance(targets, list) else targets
        cells = [str(values.get(k, "-")) for k in _ADAPTER_KEYS]
        lines.append(f"| {name}{' (active)' if name == active else ''} | " + " | ".join(cells) + f" | {targets} |")
    lines += _answering_lines(info)
    lines += ["", "## Training", ""]
    lines += [f"- {k}: {v}" for k, v in info["training"].items()] or ["Not recorded."]
    lines += ["", "## Evaluation", ""]
    results = info["results"]
    if results:
        metrics = list(dict.fromkeys(m for values in results.values() for m in values))
        lines += ["| control | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for control, values in results.items():
            lines.append(f"| {control} | " + " | ".join(_cell(values.get(m)) for m in metrics) + " |")
        lines += ["", "Controls: the question's own subgraph (`correct`), another question's (`shuffled`), none."]
    else:
        lines.append("Not recorded.")
    if "other" in info:
        lines += ["", "## Notes", "", *(f"- {k}: {v}" for k, v in info["other"].items())]
    if kg["name"] in _DATASETS:
        kg_line = f"kg = datasets.load({kg['name']!r})"
    else:
        kg_line = 'kg = KnowledgeGraph.load("path/to/kg")  # the saved KG (KnowledgeGraph.save)'
    loader = "AutoModelForSeq2SeqLM" if signature.get("model_type") in ("t5", "bart", "mt5") else "AutoModelForCausalLM"
    lines += [
        "",
        "## Load it",
        "",
        f"The knowledge graph must be the one with fingerprint `{kg['fingerprint'][:16]}...`; loading refuses another.",
        "",
        "```python",
        f"from transformers import {loader}, AutoTokenizer; from kgpeft import KGPeftModel, KnowledgeGraph, datasets",
        kg_line,
        f"model = KGPeftModel.from_pretrained({loader}.from_pretrained({base_name!r}), {info['path']!r}, kg, "
        f"AutoTokenizer.from_pretrained({base_name!r}))",
        "```",
        "",
    ]
    return "\n".join(lines)


def _answering_lines(info: dict[str, Any]) -> list[str]:
    """The card's section on how the adapter builds a question's knowledge: its fact scorers and settings."""
    lines = ["", "## Knowledge of a question", ""]
    scorers = {
        "joint": "picks the memory facts of each batch (trained with the adapter)",
        "staged": "ranks each question's facts before the adapter reads them (trained before it)",
    }
    lines += [f"- fact scorer `{name}`: {scorers[role]}" for role, name in info.get("fact_scorers", {}).items()]
    answering = info.get("answering")
    if answering is None:
        return [*lines, "Settings not recorded (saved outside a job): give `kgpeft predict` the job's `--config`."]
    settings = {**answering["retrieval"], **{k: v for k, v in answering.items() if k != "retrieval"}}
    lines += [f"- {k}: {v}" for k, v in settings.items()]
    return [*lines, "", f'Answer with `kgpeft predict --adapter {info["path"]} --kg KG "question"` (no job config).']


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {v}" for name, v in versions.items() if name != "kgpeft") or "(not recorded)"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)


def write_card(folder: Path, location: str | Path | None = None) -> None:
    """Write ``folder / README.md`` from ``folder / kgpeft_config.json`` (replacing peft's generic card).

    ``location`` is the folder the load lines name (default: ``folder``), for a card written
    into a temporary folder that is renamed into place.
    """
    info = adapter_info(folder)
    if location is not None:
        info["path"] = str(location)
    (folder / CARD_NAME).write_text(render_card(info), encoding="utf-8")


def info_json(path: str | Path) -> str:
    return json.dumps(adapter_info(path), indent=2)


__all__ = ["CARD_KEYS", "CARD_NAME", "CONFIG_NAME", "adapter_info", "info_json", "render_card", "write_card"]
