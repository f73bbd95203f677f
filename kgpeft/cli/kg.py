"""``kgpeft kg import``: triples and labels files read into a saved KG folder, its card printed
(:func:`cmd_kg_import`); ``kgpeft kg edit``: an edited copy of a KG
(:meth:`KnowledgeGraph.edit <kgpeft.graph.KnowledgeGraph.edit>`), written as a saved KG folder, the form
``--kg`` and a job's ``kg:`` load.

``kgpeft kg edit --kg wordnet --edits edits.tsv --output kg-edited`` reads one edit a line, fields
separated by tabs (blank lines and lines starting with ``#`` are skipped)::

    remove	n02084071	@	n01317541      (op, head key, relation key, tail key)
    add	n02084071	@	n02083346
    entity	x:robodog	robodog                (op, new entity key, its label)

or the same as JSON Lines (``.jsonl`` or ``.json``: one object a line, ``{"op": "add", "head": ...,
"relation": ..., "tail": ...}`` or ``{"op": "entity", "key": ..., "label": ...}``). New entities come
first, then the removals, then the additions; an error names the file and the line. A KG that states a link
both ways (WordNet: ``hypernym`` and ``hyponym``, :attr:`KnowledgeGraph.inverse_relations
<kgpeft.graph.KnowledgeGraph.inverse_relations>`) is edited both ways unless ``--no-inverses``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgpeft.configuration import ConfigError, read_yaml
from kgpeft.datasets import KGSource, load_kg
from kgpeft.datasets.source import MIN_NAMED_SHARE, as_kg_source, named_entities, names_hint
from kgpeft.errors import KGFileNotFoundError, KGFormatError, OutputPathError
from kgpeft.graph import KGEditError, KnowledgeGraph
from kgpeft.retrieval import RetrievalConfig
from kgpeft.utils import ensure_writable

#: Labels linked on the card of ``kgpeft kg import``, spread over the named entities.
CARD_SAMPLE = 5

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
        edited = kg.edit(add=edits.add, remove=edits.remove, entities=edits.entities, inverses=not args.no_inverses)
    except KGEditError as e:
        if e.index is None:
            raise
        raise KGFormatError(e.reason, edits.path, edits.lines[e.what][e.index]) from None
    edited.save(output, overwrite=args.overwrite)
    inverses = " and their inverse triples" if kg.inverse_relations and not args.no_inverses else ""
    print(
        f"{output}: {edited.num_triples} triples ({len(edits.remove)} removed, {len(edits.add)} added{inverses}), "
        f"{edited.num_entities} entities ({len(edits.entities)} new)"
    )


def import_source(args: argparse.Namespace) -> KGSource:
    """The :class:`KGSource` of ``kgpeft kg import``: ``--config``'s keys (a ``kg:`` mapping's, at the top or under
    ``kg:``, as in a job config), with the sources and options given over them."""
    values: dict[str, Any] = dict(read_yaml(args.config)) if args.config is not None else {}
    if isinstance(values.get("kg"), dict):
        values = dict(values["kg"])
    if args.src:
        values["triples"] = args.src[0] if len(args.src) == 1 else list(args.src)
    if args.columns is not None:
        values["columns"] = dict(zip(("head", "relation", "tail"), map(_column, args.columns), strict=True))
    for key in ("labels", "format", "name", "delimiter", "header"):
        if getattr(args, key) is not None:
            values[key] = {"true": True, "false": False}.get(getattr(args, key), getattr(args, key))
    for pair in args.inverse or []:
        relation, sep, inverse = pair.partition("=")
        if not (sep and relation and inverse):
            raise ConfigError(f"--inverse {pair!r} should be REL=INV, two relation keys.")
        values["inverses"] = {**values.get("inverses", {}), relation: inverse}
    # A key KGSource does not know (`triple:`) is left to as_kg_source, which names it and the key it may mean.
    if "triples" not in values and set(values) <= {f.name for f in dataclasses.fields(KGSource)}:
        raise ConfigError(
            "give the triples: SRC (a file, a folder, or train valid test files), or a `triples:` key in --config."
        )
    try:
        source = as_kg_source(values)
    except ConfigError as e:
        raise ConfigError(f"{args.config}: {e}" if args.config is not None else str(e)) from None
    assert isinstance(source, KGSource)  # a mapping always gives one
    return source


def _column(text: str) -> str | int:
    """A ``--columns`` value: a 0-based column number, or a header column's name."""
    return int(text) if text.isdigit() else text


def cmd_kg_import(args: argparse.Namespace) -> None:
    out: Path = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise OutputPathError(f"--out {out} exists and is not empty; pass --overwrite to replace a saved KG there.")
    ensure_writable(out if out.exists() else out.parent, "--out")
    source = import_source(args)
    kg = load_kg(source)
    # Written to a temporary sibling and renamed into place; a folder holding other files is refused.
    kg.save(out, overwrite=True)
    print(kg_card(kg, out))


def kg_card(kg: KnowledgeGraph, folder: Path) -> str:
    """What ``kgpeft kg import`` prints: sizes, how many entities are named, aliases, and a few labels linked."""
    n = kg.num_entities
    splits = f" (splits: {', '.join(f'{k} {v.size(1)}' for k, v in kg.splits.items())})" if kg.splits else ""
    named = named_entities(kg)
    labelled = [i for i, (key, label) in enumerate(zip(kg.entity_keys, kg.labels, strict=True)) if label != key]
    aliases = [len(a) for a in kg.aliases]
    name = kg.info.get("name")
    lines = [
        f"{folder}: a saved KG" + (f" ({name})" if name else ""),
        f"  entities: {n}, relations: {kg.num_relations}, triples: {kg.num_triples}{splits}",
        f"  labels: {len(labelled)} of {n} entities ({100 * len(labelled) / max(n, 1):.1f}%) have a label other than "
        "their id; "
        f"{named} have a name (not an id such as Q30 or GO:0000001)",
        f"  aliases: {sum(aliases) / max(n, 1):.2f} per entity ({sum(1 for a in aliases if a)} entities have some)",
    ]
    if named < MIN_NAMED_SHARE * n:
        lines.append(f"  warning: almost no entity has a name, so no text will link to this KG; {names_hint()}.")
    sample = _spread(labelled or list(range(n)))
    if sample:
        linker = RetrievalConfig().build_linker(kg)
        lines.append("  links of a few labels (label -> top candidate [key] score):")
        for entity in sample:
            label = kg.labels[entity]
            found = linker.link(label)
            best = max(found, key=lambda m: m.end - m.start) if found else None
            if best is None:
                lines.append(f"    {label!r} -> nothing linked")
                continue
            top, score = best.candidates[0], best.scores[0]
            mark = "" if top == entity else f"  (not {kg.entity_keys[entity]})"
            lines.append(f"    {label!r} -> {kg.labels[top]} [{kg.entity_keys[top]}] {score:.2f}{mark}")
    return "\n".join(lines)


def _spread(entities: list[int]) -> list[int]:
    """Up to :data:`CARD_SAMPLE` of ``entities``, spread evenly over them."""
    return entities[:: max(1, len(entities) // CARD_SAMPLE)][:CARD_SAMPLE]
