"""``kgpeft task build``: a QA task from any KG with labels, written as a task file a job's ``task:`` reads.

``kgpeft task build --kg go --relations is_a part_of --template "What is {head} a part of?" --out go-task``
asks one question per subject and relation (:func:`~kgpeft.tasks.graph_qa.graph_qa`): every tail of
that subject and relation is a gold answer, the split is by subject, and each row has its gold
span. A template names the subject as ``{head}`` (its label) or ``{a}`` (after an article) and may
use ``{relation}`` (``part_of`` → *part of*); ``--template RELATION=TEXT`` gives one relation its own.
``DIR/task.jsonl`` holds the rows of every split (each with its ``split``), written whole or not at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections import Counter
from pathlib import Path

from kgpeft.configuration import ConfigError
from kgpeft.datasets import load_kg
from kgpeft.errors import KGPeftError, OutputPathError
from kgpeft.tasks.base import SPLITS, TaskExample
from kgpeft.tasks.graph_qa import RelationQuestion, TaskTemplateError, graph_qa, template_fields
from kgpeft.utils import atomic_folder, check_name, ensure_writable, foreign_entries_or_refuse, writing

#: The file ``kgpeft task build`` writes in its output folder, the one entry it owns there.
TASK_FILE = "task.jsonl"


def questions_of(relations: list[str], templates: list[str]) -> list[RelationQuestion]:
    """One question per relation: its own ``RELATION=TEXT`` template, else the one plain template.

    A template is a relation's own when what comes before its first ``=`` holds no space and no brace.

    Raises:
        TaskTemplateError: a relation with no template, a relation given two, or a template that cannot be asked.
    """
    own: dict[str, str] = {}
    plain: list[str] = []
    for template in templates:
        relation, sep, text = template.partition("=")
        if sep and relation and not any(c.isspace() or c in "{}" for c in relation):  # a question has spaces
            if relation not in relations:
                raise TaskTemplateError(
                    f"--template {template!r} is for {relation!r}, which --relations does not list."
                )
            if relation in own:
                raise TaskTemplateError(f"--template: {relation!r} is given two templates; keep one.")
            own[relation] = text
        else:
            plain.append(template)
    if len(plain) > 1:
        raise TaskTemplateError(f"--template: {len(plain)} templates for every relation ({plain!r}); keep one.")
    missing = [r for r in relations if r not in own and not plain]
    if missing:
        raise TaskTemplateError(f"--template: no template for {missing}; give one for all, or RELATION=TEXT each.")
    for text in [*own.values(), *plain]:
        template_fields(text)
    return [RelationQuestion(r, (r,), own[r] if r in own else plain[0]) for r in dict.fromkeys(relations)]


def row(example: TaskExample) -> dict:
    """``example`` as a task file row: the fields it sets (``None`` and empty ones left out)."""
    return {k: v for k, v in dataclasses.asdict(example).items() if v is not None and v != () and v != ""}


def check_out(out: Path, overwrite: bool) -> None:
    """``--out`` can take the task: a new folder, or with ``overwrite`` one holding only a task this command wrote.

    Raises:
        OutputPathError: a bad folder name, a file, an existing folder without ``overwrite`` or one holding
            other files, or a parent that cannot be written; nothing is created but missing parent folders.
    """
    check_name(Path(os.path.abspath(out)).name, "--out", OutputPathError)
    ensure_writable(Path(os.path.abspath(out)).parent, "--out's folder")
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"--out {out} is a file; the task is written as a folder. Choose another path.")
    if out.exists():
        if not overwrite:
            raise OutputPathError(f"--out {out} exists; pass --overwrite to replace the task written there.")
        foreign_entries_or_refuse(
            out,
            lambda folder: sorted(p.name for p in folder.iterdir() if p.name != TASK_FILE),
            False,
            writer="kgpeft task build",
            owner=f"a task kgpeft wrote ({TASK_FILE})",
            thing="the task",
            remedy="choose an empty or new folder",
        )


def cmd_task_build(args: argparse.Namespace) -> None:
    out: Path = args.out
    check_out(out, args.overwrite)
    questions = questions_of(args.relations, args.template)
    kg = load_kg(args.kg)
    try:
        parts = graph_qa(
            kg,
            questions,
            task=args.name,
            seed=args.seed,
            split_fractions=args.split_fractions,
            max_examples=args.max_examples,
            max_per_question=args.max_per_relation,
        )
    except ValueError as e:
        if isinstance(e, KGPeftError):
            raise
        raise ConfigError(str(e).replace("`split_fractions`", "--split-fractions")) from None
    examples = [e for split in SPLITS for e in parts[split]]
    if not examples:
        raise TaskTemplateError(
            f"--relations {' '.join(args.relations)}: no question to ask in {args.kg} (no subject with an outgoing "
            "edge of these relations, or every subject's label is among its answers)."
        )
    with (
        atomic_folder(out) as tmp,
        writing(out / TASK_FILE, tmp),
        open(tmp / TASK_FILE, "w", encoding="utf-8") as f,
    ):
        for example in examples:
            f.write(json.dumps(row(example), ensure_ascii=False) + "\n")
    per_relation = Counter(e.relations[0] for e in examples)
    print(
        f"{out / TASK_FILE}: {len(examples)} questions ({', '.join(f'{len(parts[s])} {s}' for s in SPLITS)}) about "
        f"{len({e.entity for e in examples})} subjects; "
        + ", ".join(f"{r}: {per_relation[r]}" for r in dict.fromkeys(args.relations))
        + f". A job reads it as `task: {out / TASK_FILE}`."
    )
