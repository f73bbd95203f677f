"""`KGSource`: a KG given as files, the mapping form of a job config's ``kg:`` (and of ``--kg``).

A job config's ``kg`` is a string (a dataset name, a saved KG folder, a PyKEEN split folder or a
file) or a mapping that says what the files are::

    kg:
      triples: go/triples.tsv.gz            # a file, [train, valid, test] files, or a split folder
      labels: go/labels.tsv                 # id, name, synonyms (|-separated), definition
      columns: {head: subject, relation: predicate, tail: object}   # a header row's names
      name: go

:func:`load_source` reads it; :func:`kgpeft.datasets.load_kg` takes either form.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kgpeft.configuration import ConfigError, check_field_types, dataclass_from_dict, is_int
from kgpeft.errors import KGFileNotFoundError
from kgpeft.graph import KnowledgeGraph
from kgpeft.graph.edits import checked_inverses
from kgpeft.graph.readers import (
    FORMATS,
    TABULAR,
    guess_format,
    read_pykeen_folder,
    read_split_files,
    reader_for,
)
from kgpeft.graph.readers.lines import TRIPLE_COLUMNS

#: A job whose questions are linked to the KG refuses a KG where fewer entities than this share have a name
#: (:func:`named_entities`): the linker would find nothing, and every knowledge variant read nothing.
MIN_NAMED_SHARE = 0.01
#: What makes a label read as an identifier (``Q30``, ``GO:0000001``, ``http://...``) rather than a name.
_CODE = re.compile(r"[\d:/#]")
#: The keys only a tabular file (tsv, csv) takes.
TABULAR_KEYS = ("labels", "columns", "header", "delimiter")


class KGSourceError(ConfigError):
    """A ``kg:`` mapping holds an unknown key, a wrong type or a value that cannot be read; the message names it."""


@dataclass
class KGSource:
    """A KG given as files: triples, optional labels, and how to read them."""

    triples: str | list[str] = field(
        metadata={
            "help": "The triples: a file (TSV, CSV, N-Triples, ...; .gz/.bz2/.xz read as they stream), a list of "
            "[train, valid, test] files, or a folder (a saved KG, or a PyKEEN folder of train/valid/test.txt with "
            "an optional entities.tsv)."
        }
    )
    labels: str | None = field(
        default=None,
        metadata={
            "help": "An entity labels file, one entity a row: id, name[, synonyms separated by |[, definition]] "
            "(TSV, or CSV for .csv; a header row of such names is skipped)."
        },
    )
    format: str = field(
        default="auto",
        metadata={"help": f"One of {('auto', *FORMATS)}; auto: from the file's suffix, compression suffix stripped."},
    )
    name: str | None = field(default=None, metadata={"help": "The KG's name (on adapter cards); default: none."})
    columns: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "Where head, relation and tail are in a TSV/CSV row: {head: NAME, relation: NAME, tail: NAME} "
            "with a header row's names, or 0-based column numbers; default: three columns in that order."
        },
    )
    header: bool | Literal["auto"] = field(
        default="auto",
        metadata={
            "help": "Whether a TSV/CSV triples file starts with a header row: true, false, or auto (yes when "
            "`columns` names columns or the first row holds only names like head, relation, tail)."
        },
    )
    delimiter: str | None = field(
        default=None, metadata={"help": "A TSV/CSV file's column separator (default: tab, comma for csv)."}
    )
    options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Keyword arguments for the format's reader (e.g. language for N-Triples and RDF)."},
    )
    inverses: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "Relations that state the same link reversed, {relation: its inverse} (each pair once, either "
            "way; a symmetric relation maps to itself): `kgpeft kg edit` and KnowledgeGraph.edit then edit both "
            "triples of a link."
        },
    )

    def __post_init__(self) -> None:
        check_field_types(self, KGSourceError)
        files = [self.triples] if isinstance(self.triples, str) else list(self.triples)
        if (not isinstance(self.triples, str) and len(files) != 3) or not all(files):
            raise KGSourceError(
                f"`triples` should be a file or folder, or a list of three files [train, valid, test], "
                f"got {self.triples!r}."
            )
        if self.format != "auto" and self.format not in FORMATS:
            close = difflib.get_close_matches(self.format, FORMATS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "."
            raise KGSourceError(f"`format` should be one of {('auto', *FORMATS)}, got {self.format!r}{hint}")
        if self.header not in (True, False, "auto"):
            raise KGSourceError(f"`header` should be true, false or 'auto', got {self.header!r}.")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise KGSourceError(f"`delimiter` should be one character, got {self.delimiter!r}.")
        if self.columns is not None:
            self._check_columns(self.columns)
        if self.format not in ("auto", *TABULAR):
            self.check_tabular_keys(f"a {self.format!r} file, which names its own entities")

    def __str__(self) -> str:
        triples = self.triples if isinstance(self.triples, str) else ", ".join(self.triples)
        return triples + (f" (labels: {self.labels})" if self.labels is not None else "")

    def to_dict(self) -> dict[str, Any]:
        """The settings given, as a ``kg:`` mapping holds them (JSON-ready; unset ones left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, "auto", {})}

    def _check_columns(self, columns: dict[str, Any]) -> None:
        if set(columns) != set(TRIPLE_COLUMNS):
            raise KGSourceError(f"`columns` should map exactly {', '.join(TRIPLE_COLUMNS)}, got {list(columns)}.")
        for key, value in columns.items():
            if not (isinstance(value, str) and value) and not (is_int(value) and value >= 0):
                raise KGSourceError(
                    f"`columns.{key}` should be a header column's name or a 0-based column number, got {value!r}."
                )
        if self.header is False and any(isinstance(v, str) for v in columns.values()):
            raise KGSourceError("`columns` names header columns but `header` is false; set `header: true` or 'auto'.")

    def check_tabular_keys(self, what: str, keys: tuple[str, ...] = TABULAR_KEYS) -> None:
        """Refuse the ``keys`` given for ``what``, which does not take them (default: those only TSV/CSV files take)."""
        given = [k for k in keys if getattr(self, k) not in (None, "auto", False, {})]
        if given:
            role = "a file's reader" if given[0] == "options" else "TSV/CSV triples files"
            raise KGSourceError(f"`{given[0]}` is for {role}, not {what}; leave it out.")


def as_kg_source(value: str | Mapping[str, Any] | KGSource) -> str | KGSource:
    """``value`` as :func:`~kgpeft.datasets.load_kg` takes it: a string stays a string (a name or a path),
    a mapping becomes a :class:`KGSource` (as does a string holding a YAML mapping, ``{triples: t.tsv}``,
    the form of ``--kg`` on the command line)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        import yaml  # only a mapping given on the command line needs it

        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise KGSourceError(f"kg: {value!r} is not a YAML mapping ({' '.join(str(e).split())}).") from None
    if isinstance(value, (str, KGSource)):
        return value
    if not isinstance(value, Mapping):
        raise KGSourceError(f"kg should be a name, a path or a mapping with `triples`, got {value!r}.")
    try:
        return dataclass_from_dict(KGSource, value, "kg", KGSourceError)
    except KGSourceError as e:  # a key's or type's error names `kg`; a value's, from __post_init__, does not
        raise KGSourceError(str(e) if " in kg" in str(e) else f"kg: {e}") from None


def load_source(source: KGSource) -> KnowledgeGraph:
    """The KG ``source`` names, its name set (``kg.info["name"]``).

    Raises:
        KGFileNotFoundError: a file or folder is missing.
        KGFormatError: a file is malformed (naming it and the line), or its format has no reader.
        KGSourceError: a key does not apply to the file it reads (``columns`` for an N-Triples file).
    """
    if isinstance(source.triples, str):
        kg = _load_path(source, Path(source.triples))
    else:
        files = dict(zip(("train", "valid", "test"), map(Path, source.triples), strict=True))
        for split, file in files.items():
            if not file.is_file():
                raise KGFileNotFoundError(f"kg: triples: the {split} file {file} is not a file.")
        kg = read_split_files(files, **_tabular_kwargs(source, _file_format(source, files["train"])[0]))
    if source.name is not None:
        kg.info["name"] = source.name
    if source.inverses:
        pairs = {**{inverse: key for key, inverse in source.inverses.items()}, **source.inverses}
        try:
            kg.inverse_relations = checked_inverses(pairs, {key: i for i, key in enumerate(kg.relation_keys)})
        except ValueError as e:
            raise KGSourceError(f"kg: inverses: {e}") from None
    return kg


def _load_path(source: KGSource, path: Path) -> KnowledgeGraph:
    if (path / "kg.json").is_file():
        source.check_tabular_keys(f"{path}, a saved KG folder (with its labels)", (*TABULAR_KEYS, "options"))
        return KnowledgeGraph.load(path)
    if path.is_dir():
        source.check_tabular_keys(f"{path}, a PyKEEN split folder", ("columns", "header", "delimiter", "options"))
        return read_pykeen_folder(path, labels=source.labels)
    if not path.is_file():
        raise KGFileNotFoundError(f"kg: triples: {path} is neither a file nor a folder.")
    format, guessed = _file_format(source, path)
    reader = reader_for(format, path, guessed)
    fixed = _tabular_kwargs(source, format) if format in TABULAR else {}
    if not fixed:
        source.check_tabular_keys(f"{path}, a {format!r} file, which names its own entities")
    return reader(path, **fixed, **_reader_options(reader, format, source.options, fixed))


def _reader_options(reader: Callable[..., Any], format: str, options: dict[str, Any], fixed: dict) -> dict[str, Any]:
    """``options``, each checked to be a keyword of ``reader`` that the other keys do not set."""
    takes = [
        name
        for name, p in list(inspect.signature(reader).parameters.items())[1:]
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in fixed
    ]
    for key in options:
        if key not in takes:
            raise KGSourceError(
                f"`options.{key}` is not a setting of the {format!r} reader; it takes: {', '.join(takes) or 'none'}."
            )
    return options


def _file_format(source: KGSource, path: Path) -> tuple[str, bool]:
    """The format of ``path`` and whether it was guessed from its suffix."""
    return (guess_format(path), True) if source.format == "auto" else (source.format, False)


def _tabular_kwargs(source: KGSource, format: str) -> dict[str, Any]:
    """The settings of a TSV/CSV reader (``format`` tsv or csv) from ``source``."""
    if format not in TABULAR:
        raise KGSourceError(f"kg: a list of [train, valid, test] files should be TSV or CSV triples, not {format!r}.")
    if source.labels is not None and not Path(source.labels).is_file():
        raise KGFileNotFoundError(f"kg: labels: {source.labels} is not a file.")
    return {
        "delimiter": source.delimiter or TABULAR[format],
        "header": source.header,
        "columns": source.columns,
        "labels": source.labels,
    }


def named_entities(kg: KnowledgeGraph) -> int:
    """How many of ``kg``'s entities have a name a linker can find in text.

    An entity is named when its label holds no digit, ``:``, ``/`` or ``#`` (``dog``, ``New York``), or when it
    came from somewhere other than the entity's key (``Alzheimer's disease type 2`` for ``DOID:10652``). A label
    that is the key, or the key's tail (``GO_0000001``, the local name of an IRI), and reads as an identifier
    is no name.
    """
    return sum(
        1
        for key, label in zip(kg.entity_keys, kg.labels, strict=True)
        if not _CODE.search(label) or not key.endswith(label)
    )


def names_hint() -> str:
    """How to give a KG's entities names, for an error or a warning."""
    return (
        "give the KG a labels file (id, name, synonyms separated by |, definition; one entity a row): "
        "`kg: {triples: FILE, labels: LABELS}` in the job config, or a KG folder written by "
        "`kgpeft kg import FILE --labels LABELS --out DIR`"
    )
