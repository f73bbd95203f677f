"""``kgpeft kg edit``: an edited copy of a KG (:meth:`KnowledgeGraph.edit <kgpeft.graph.KnowledgeGraph.edit>`),
written as a saved KG folder, the form ``--kg`` and a job's ``kg:`` load.

``kgpeft kg edit --kg wordnet --edits edits.tsv --output kg-edited`` reads one edit a line, fields
separated by tabs (blank lines and lines starting with ``#`` are skipped)::

    remove	n02084071	@	n01317541      (op, head key, relation key, tail key)
    add	n02084071	@	n02083346
    entity	x:robodog	robodog                (op, new entity key, its label)

or the same as JSON Lines (``.jsonl`` or ``.json``: one object a line, ``{"op": "add", "head": ...,
"relation": ..., "tail": ...}`` or ``{"op": "entity", "key": ..., "label": ...}``). New entities come
first, then the removals, then the additions; an error names the file and the line.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgpeft.datasets import load_kg
from kgpeft.errors import KGFileNotFoundError, KGFormatError, OutputPathError
from kgpeft.graph import KGEditError
from kgpeft.utils import ensure_writable

# The fields of each op, in the order a TSV line gives them.
EDIT_FIELDS = {"add": ("head", "relation", "tail"), "remove": ("head", "relation", "tail"), "entity": ("key", "label")}


@dataclass
class EditFile:
    """The edits of one file, as :meth:`KnowledgeGraph.edit` takes them, and where each came from."""

    path: Path
    add: list[tuple[str, str, str]] = field(default_factory=list)
    remove: list[tuple[str, str, str]] = field(default_factory=list)
    entities: dict[str, str] = field(default_factory=dict)
    # The line of each item: {"add": [...], "remove": [...], "entities": [...]}.
    lines: dict[str, list[int]] = field(default_factory=lambda: {"add": [], "remove": [], "entities": []})

    def append(self, op: str, values: list[str], line: int) -> None:
        if op == "entity":
            key, label = values
            if key in self.entities:
                first = self.lines["entities"][list(self.entities).index(key)]
                raise KGFormatError(f"entity {key!r} is added twice (first on line {first})", self.path, line)
            self.entities[key] = label
            self.lines["entities"].append(line)
        else:
            getattr(self, op).append(tuple(values))
            self.lines[op].append(line)


def read_edits(path: Path) -> EditFile:
    """The edits in the TSV or JSON Lines (``.jsonl`` or ``.json``) file ``path``.

    Raises:
        KGFileNotFoundError: ``path`` is not a file.
        KGFormatError: a line is malformed; the message names the file and the line.
    """
    if not path.is_file():
        raise KGFileNotFoundError(f"--edits: {path} is not a file.")
    edits = EditFile(path)
    text = path.read_text(encoding="utf-8")
    jsonl = path.suffix.lower() in (".json", ".jsonl")
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if jsonl:
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as e:
                raise KGFormatError(f"not valid JSON ({e.msg}); write one JSON object a line", path, line) from None
            edits.append(*_record_fields(record, path, line), line)
            continue
        op, *values = raw.rstrip("\r\n").split("\t")
        if op not in EDIT_FIELDS:
            raise KGFormatError(f"unknown op {op!r}; use one of {', '.join(EDIT_FIELDS)} (tab-separated)", path, line)
        if len(values) != len(EDIT_FIELDS[op]) or not all(values):
            raise KGFormatError(
                f"`{op}` takes {len(EDIT_FIELDS[op])} tab-separated fields ({', '.join(EDIT_FIELDS[op])}), "
                f"got {len(values)}{'' if all(values) else ' with an empty one'}",
                path,
                line,
            )
        edits.append(op, values, line)
    return edits


def _record_fields(record: Any, path: Path, line: int) -> tuple[str, list[str]]:
    """The op and the field values of one JSON edit, checked."""
    op = record.get("op") if isinstance(record, dict) else None
    if op not in EDIT_FIELDS:
        raise KGFormatError(f"an edit should be an object with an op in {list(EDIT_FIELDS)}", path, line)
    names = EDIT_FIELDS[op]
    if set(record) != {"op", *names} or not all(isinstance(record[n], str) and record[n] for n in names):
        raise KGFormatError(f"`{op}` takes the keys op, {', '.join(names)} (non-empty strings)", path, line)
    return op, [record[n] for n in names]


def cmd_kg_edit(args: argparse.Namespace) -> None:
    output: Path = args.output
    source = Path(args.kg)
    if source.exists() and source.resolve() == output.resolve():
        raise OutputPathError(f"--output {output} is the input KG's folder; write the edited KG to another folder.")
    if output.exists() and not args.overwrite:
        raise OutputPathError(f"--output {output} exists; pass --overwrite to replace the saved KG there.")
    ensure_writable(output if output.exists() else output.parent, "--output")
    edits = read_edits(args.edits)
    kg = load_kg(args.kg)
    try:
        edited = kg.edit(add=edits.add, remove=edits.remove, entities=edits.entities)
    except KGEditError as e:
        if e.index is None:
            raise
        raise KGFormatError(e.reason, edits.path, edits.lines[e.what][e.index]) from None
    edited.save(output, overwrite=args.overwrite)
    print(
        f"{output}: {edited.num_triples} triples ({len(edits.remove)} removed, {len(edits.add)} added), "
        f"{edited.num_entities} entities ({len(edits.entities)} new)"
    )
