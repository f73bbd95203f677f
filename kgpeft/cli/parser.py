"""The ``kgpeft`` options: one per config field where a config dataclass has them (:func:`add_config_options`)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import types
import typing
from collections.abc import Callable
from pathlib import Path

from kgpeft.cli.link import LINK_RETRIEVAL, LinkConfig
from kgpeft.configuration import field_help
from kgpeft.datasets import KGSource
from kgpeft.kge import KGEConfig
from kgpeft.kge.job import KGEJob
from kgpeft.retrieval import RetrievalConfig

DESCRIPTION = (
    "The ``kgpeft`` command line: "
    "``kgpeft train | evaluate | predict | explain | link | demo | info | kge | kg | task``."
)
KG_HELP = "a dataset name, a saved KG folder or a triples file; or a YAML mapping '{triples: FILE, labels: FILE}'"
RESUME_HELP = (
    "continue from the newest checkpoint-* of each variant (training.resume_from_checkpoint: latest); "
    "a variant without one starts over"
)


def _command(module: str, name: str) -> Callable[[argparse.Namespace], None]:
    """The command ``kgpeft.cli.<module>.<name>``, imported when it runs: building the parser (``kgpeft --help``,
    a usage error) need not load the pipeline, the model stack and the explainer behind the job commands."""

    def command(args: argparse.Namespace) -> None:
        getattr(importlib.import_module(f"kgpeft.cli.{module}"), name)(args)

    return command


def add_config_options(
    p: argparse.ArgumentParser, cls: type, prefix: str, title: str, only: tuple[str, ...] | None = None
) -> None:
    """One option per field of the config dataclass ``cls`` (``--hidden-channels``, ``--reciprocal/--no-reciprocal``),
    helped by its ``metadata["help"]`` and stored as ``<prefix><field>`` only when given; ``only``: those fields."""
    hints = typing.get_type_hints(cls)
    helps = field_help(cls)
    group = p.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        hint = hints[f.name]
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(options) == 1:
            hint = options[0]  # `X | None`: None (a default chosen from other settings) is no command-line value
        elif str in options and all(o is str or dataclasses.is_dataclass(o) for o in options):
            hint = str  # `str | Section` (`kg`): the option takes the string, or the section as a YAML mapping
        if typing.get_origin(hint) is typing.Literal and all(isinstance(a, str) for a in typing.get_args(hint)):
            kwargs = {"choices": typing.get_args(hint), "type": str.lower}
        elif typing.get_origin(hint) is typing.Literal:
            kwargs = {"choices": typing.get_args(hint)}
        elif hint is bool:
            kwargs = {"action": argparse.BooleanOptionalAction}
        elif hint in (int, float, str):
            kwargs = {"type": hint, "metavar": hint.__name__.upper()}
        elif typing.get_origin(hint) is list and typing.get_args(hint) in ((int,), (float,), (str,)):
            (item,) = typing.get_args(hint)
            kwargs = {"type": item, "nargs": "+", "metavar": item.__name__.upper()}
        else:
            continue  # a setting with no simple command-line form: config file only
        flag = f"--{f.name.replace('_', '-')}"
        help_ = helps[f.name].replace("%", "%%")
        group.add_argument(flag, dest=f"{prefix}{f.name}", default=argparse.SUPPRESS, help=help_, **kwargs)


def _add_kge_parsers(sub) -> None:
    job_help = field_help(KGEJob)
    kge = sub.add_parser("kge", help="train and evaluate KG embeddings (TransE, DistMult, ComplEx, RotatE)")
    kge_sub = kge.add_subparsers(dest="kge_command", required=True)

    p = kge_sub.add_parser(
        "train",
        help="train KG embeddings and write them with their metrics",
        description="Train KG embeddings as a config says (keys: kg, output, kge), test them when the KG has a "
        "test split, and write OUTPUT.safetensors and OUTPUT.metrics.json. Options override the config.",
    )
    p.add_argument("--config", type=Path, help="YAML with kg, output and a kge: section (see configs/kge/)")
    p.add_argument("--kg", help=job_help["kg"])
    p.add_argument("--output", help=job_help["output"])
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    add_config_options(p, KGEConfig, "kge.", "KGEConfig settings (override the config file's kge: section)")
    p.set_defaults(func=_command("kge", "cmd_kge_train"), command="kge train")

    p = kge_sub.add_parser(
        "evaluate",
        help="filtered rank metrics of saved KG embeddings on a split",
        description="Rank the heads and tails of a split's triples against all entities, filtering known triples.",
    )
    p.add_argument("--embeddings", type=Path, required=True, help="a file written by `kgpeft kge train`")
    p.add_argument("--kg", required=True, help="the KG the embeddings were trained on (its fingerprint is checked)")
    p.add_argument("--split", default="test", help="the split to rank (default: test)")
    p.add_argument("--per-relation", action="store_true", help="also print the metrics of each relation")
    p.add_argument("--batch-size", type=int, help="queries scored at once (default: the training config's)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ... (default: auto)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_command("kge", "cmd_kge_evaluate"), config=None, command="kge evaluate")


def _add_kg_parsers(sub) -> None:
    kg = sub.add_parser("kg", help="work on a knowledge graph: import, edit")
    kg_sub = kg.add_subparsers(dest="kg_command", required=True)
    _add_kg_import_parser(kg_sub)
    p = kg_sub.add_parser(
        "edit",
        help="write an edited copy of a KG: triples added and removed, new entities",
        description="Apply the edits of a TSV or JSON Lines file (one a line: `add|remove HEAD RELATION TAIL` or "
        "`entity KEY LABEL`, keys tab-separated) to a KG and save the result as a KG folder, which --kg and a job's "
        "kg: load. Every other column (labels, aliases, priors, extras, splits) is kept. A KG that states a link "
        "both ways (WordNet: hypernym and hyponym) is edited both ways, unless --no-inverses.",
    )
    p.add_argument("--kg", required=True, help=KG_HELP)
    p.add_argument("--edits", type=Path, required=True, help="the edits: a .tsv, or .jsonl/.json (JSON Lines)")
    p.add_argument("--output", type=Path, required=True, help="the folder to write the edited KG to")
    p.add_argument("--overwrite", action="store_true", help="replace a saved KG already at --output")
    p.add_argument(
        "--no-inverses",
        action="store_true",
        help="edit only the triples given, not their inverse triples (KnowledgeGraph.inverse_relations)",
    )
    p.set_defaults(func=_command("kg", "cmd_kg_edit"), config=None, command="kg edit")


def _add_kg_import_parser(kg_sub) -> None:
    helps = field_help(KGSource)
    p = kg_sub.add_parser(
        "import",
        help="read triples and labels files into a saved KG folder and print its card",
        description="Read a KG's files (triples: a file, three files train valid test, or a PyKEEN folder; an "
        "optional labels file) into a saved KG folder, which --kg and a job's kg: load, and print its card: sizes, "
        "how many entities have a name, aliases, and a few labels linked. --config holds the same keys as a job's "
        "kg: mapping; options override it.",
    )
    p.add_argument("src", nargs="*", help="the triples: a file, a folder, or three files (train valid test)")
    p.add_argument("--config", type=Path, help="YAML with a kg: mapping's keys (triples, labels, format, ...)")
    p.add_argument("--labels", help=helps["labels"])
    p.add_argument("--format", help=helps["format"])
    p.add_argument("--name", help=helps["name"])
    p.add_argument(
        "--columns", nargs=3, metavar=("HEAD", "RELATION", "TAIL"), help="header names or 0-based column numbers"
    )
    p.add_argument("--header", choices=["true", "false", "auto"], help=helps["header"])
    p.add_argument("--delimiter", help=helps["delimiter"])
    p.add_argument(
        "--inverse",
        action="append",
        metavar="REL=INV",
        help="a relation and the relation stating the same link reversed (repeatable; REL=REL: symmetric), so that "
        "`kgpeft kg edit` edits both triples of a link",
    )
    p.add_argument("--out", type=Path, required=True, help="the folder to write the KG to (new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace a saved KG already at --out")
    p.set_defaults(func=_command("kg", "cmd_kg_import"), command="kg import")


def _add_link_parser(sub) -> None:
    p = sub.add_parser(
        "link",
        help="link texts to KG entities and show the retrieved subgraphs",
        description="Link texts to KG entities and show the retrieved subgraphs. A config file holds the same "
        "settings (kg, max_facts, seed, a retrieval: section); options override it.",
    )
    p.add_argument("--config", type=Path, help="YAML with kg, max_facts, seed and a retrieval: section")
    add_config_options(p, LinkConfig, "", "settings")
    add_config_options(p, RetrievalConfig, "retrieval.", "RetrievalConfig settings", only=LINK_RETRIEVAL)
    p.add_argument("text", nargs="*", help="texts to link")
    p.set_defaults(func=_command("link", "cmd_link"))


def _add_task_parsers(sub) -> None:
    task = sub.add_parser("task", help="build a task from a KG: build")
    task_sub = task.add_subparsers(dest="task_command", required=True)
    p = task_sub.add_parser(
        "build",
        help="write a QA task file from a KG with labels: one question per subject and relation",
        description="Ask one question per subject and relation of --relations, every tail of the pair a gold "
        "answer, split by subject, and write the rows to OUT/task.jsonl, which a job's task: reads. A template "
        "names the subject as {head} (its label) or {a} (after an article) and may use {relation} (part_of: "
        "part of); RELATION=TEXT gives one relation its own template.",
    )
    p.add_argument("--kg", required=True, help="a dataset name, a saved KG folder or a triples file")
    p.add_argument("--relations", nargs="+", required=True, metavar="RELATION", help="the relation keys asked about")
    p.add_argument(
        "--template",
        action="append",
        required=True,
        help='the question, e.g. "What is {head} a part of?"; RELATION=TEXT for one relation (repeatable)',
    )
    p.add_argument("--out", type=Path, required=True, help="the folder to write task.jsonl to")
    p.add_argument("--overwrite", action="store_true", help="replace a task this command wrote at --out")
    p.add_argument("--name", default="graph_qa", help="the task's name, in the rows' ids (default: graph_qa)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split by subject and the samples (default: 0)")
    p.add_argument(
        "--split-fractions",
        type=float,
        nargs=3,
        default=(0.8, 0.1, 0.1),
        metavar=("TRAIN", "VALID", "TEST"),
        help="the share of subjects in each split (default: 0.8 0.1 0.1)",
    )
    p.add_argument("--max-per-relation", type=int, help="keep a seeded sample of this many questions per relation")
    p.add_argument("--max-examples", type=int, help="keep a seeded sample of this many questions in all")
    p.set_defaults(func=_command("task", "cmd_task_build"), config=None, command="task build")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line on standard error, exit status 2, as every other kgpeft user error."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kgpeft", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_link_parser(sub)
    _add_task_parsers(sub)

    p = sub.add_parser("demo", help="the main job: KG-LoRA vs LoRA on WordNet hypernym QA with SmolLM2")
    p.add_argument("--config", type=Path, default=Path("configs/demo.yaml"), help="the job config of the main job")
    p.add_argument("--seed", type=int, help="replace the config's seed")
    p.add_argument("--output-dir", type=Path, help="replace the config's training.output_dir")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--resume", action="store_true", help=RESUME_HELP)
    p.set_defaults(func=_command("job", "cmd_demo"))

    for name, func, help_ in [
        ("train", "cmd_train", "train a KG-LoRA adapter as a job config says"),
        ("evaluate", "cmd_evaluate", "evaluate a saved adapter on the job's task"),
        ("predict", "cmd_predict", "show linked entities, retrieved facts and the answer for texts"),
        ("explain", "cmd_explain", "which nodes and facts drove the answer: leave-one-out, gradients, attention"),
    ]:
        p = sub.add_parser(name, help=help_)
        if name == "predict":  # an adapter a job saved answers alone, from the settings saved with it
            p.add_argument("--config", type=Path, help="the job's YAML config (default: the adapter's own settings)")
            p.add_argument("--kg", help=f"without --config: the KG the adapter reads ({KG_HELP})")
            p.add_argument("--model", help="without --config: the base model (default: the one the adapter names)")
        else:
            p.add_argument("--config", type=Path, required=True, help="the job's YAML config (see kgpeft.pipeline)")
        p.add_argument("--seed", type=int, help="replace the config's seed")
        p.add_argument("--output-dir", type=Path, help="replace the config's training.output_dir")
        if name == "train":
            p.add_argument("--resume", action="store_true", help=RESUME_HELP)
        else:
            p.add_argument("--adapter", type=Path, required=True, help="a folder written by save_pretrained")
            p.add_argument("--variant", help="the config's variant the adapter belongs to (default: the first KG-LoRA)")
        if name == "evaluate":
            p.add_argument("--split", choices=["train", "valid", "test"], default="test")
        if name == "predict":
            p.add_argument("--max-facts", type=int, default=6, help="facts shown per text")
        if name == "explain":
            p.add_argument("--answer", nargs="+", help="explain these answers (one per text), not the generated ones")
            p.add_argument("--top", type=int, default=3, help="facts shown per text (default: 3)")
            p.add_argument("--json", action="store_true", help="print the explanations as JSON")
            p.add_argument("--plot", type=Path, help="draw the subgraph coloured by leave-one-out to this PNG")
        if name in ("predict", "explain"):
            p.add_argument("text", nargs="*", help="texts (default: standard input)")
        p.set_defaults(func=_command("job", func))
    p = sub.add_parser(
        "info",
        help="show a saved adapter's card: base model, KG and fingerprint, mode, task, training, results",
        description="Print the adapter card (the README.md save_pretrained writes), rendered from the folder's "
        "kgpeft_config.json; nothing is loaded but that file.",
    )
    p.add_argument("adapter", type=Path, help="a folder written by save_pretrained")
    p.add_argument("--json", action="store_true", help="print the card's contents as JSON")
    p.set_defaults(func=_command("job", "cmd_info"), config=None)
    _add_kge_parsers(sub)
    _add_kg_parsers(sub)
    return parser
