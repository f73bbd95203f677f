"""The folder :meth:`KnowledgeGraph.save <kgpeft.graph.KnowledgeGraph.save>` writes and
:meth:`~kgpeft.graph.KnowledgeGraph.load` reads.

``kg.json`` names the format and its version and holds the counts, the fingerprint, the
digests of the string tables, the extras, the split names and the info; every array is a
``.npy`` file (no pickles) and every string column a UTF-8 :class:`StringTable` (a
``strings.<column>.data.npy`` and an ``.offsets.npy``), so that a memory-mapped load reads
none of them until they are used.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kgpeft.errors import KGFileNotFoundError, KGFormatError
from kgpeft.graph.adjacency import CSRAdjacency
from kgpeft.graph.strings import RaggedStrings, StringTable
from kgpeft.utils import atomic_folder, foreign_entries_or_refuse, paused_gc

FORMAT_NAME = "kgpeft.knowledge_graph"
# Version 2 keeps the vocabularies, labels, aliases and descriptions as UTF-8 string tables
# (``strings.<column>.data.npy`` and ``.offsets.npy``) instead of JSON lists, so that a
# memory-mapped load reads none of them until they are used. Version 1 still loads.
FORMAT_VERSION = 2
# The string columns version 2 writes as tables, besides ``aliases`` (a table plus row pointers).
_STRING_COLUMNS = ("entity_keys", "relation_keys", "labels", "descriptions")
META_FILE = "kg.json"
# The arrays KnowledgeGraph.save writes, besides one "split.<name>" per split.
_ARRAY_NAMES = frozenset(
    {
        "triples",
        "entity_prior",
        "name_priors",
        "aliases.rowptr",
        *(f"csr.{k}" for k in CSRAdjacency._fields),
        *(f"strings.{c}.{part}" for c in (*_STRING_COLUMNS, "aliases") for part in ("data", "offsets")),
    }
)


@contextmanager
def writing_folder(target: Path, overwrite: bool, force: bool) -> Iterator[Path]:
    """A temporary folder to write a KG into, published at ``target`` when the block ends (see
    :func:`~kgpeft.utils.atomic_folder`), after refusing a folder that holds other files than a saved KG's."""
    others = foreign_entries_or_refuse(
        target,
        _foreign_entries,
        force,
        writer="KnowledgeGraph.save",
        owner="a saved knowledge graph's",
        thing="the KG",
    )
    with atomic_folder(target, overwrite, keep=others) as tmp:
        yield tmp


def write_files(
    folder: Path,
    arrays: dict[str, torch.Tensor],
    columns: dict[str, StringTable],
    alias_rowptr: np.ndarray | None,
    *,
    fingerprint: str,
    num_entities: int,
    num_relations: int,
    extras: dict[str, list[Any]],
    splits: list[str],
    has_entity_prior: bool,
    has_name_priors: bool,
    info: dict[str, Any],
    inverse_relations: dict[str, str],
) -> None:
    """Write the arrays, the string tables (``alias_rowptr`` with the aliases') and ``kg.json`` into ``folder``."""
    for name, tensor in arrays.items():
        np.save(folder / f"{name}.npy", tensor.numpy(), allow_pickle=False)
    if alias_rowptr is not None:
        np.save(folder / "aliases.rowptr.npy", alias_rowptr, allow_pickle=False)
    for name, table in columns.items():
        np.save(folder / f"strings.{name}.data.npy", table.data, allow_pickle=False)
        np.save(folder / f"strings.{name}.offsets.npy", table.offsets, allow_pickle=False)
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "fingerprint": fingerprint,
        "num_entities": num_entities,
        "num_relations": num_relations,
        # Checked on load instead of recomputing the fingerprint from every key.
        "strings": {name: table.digest() for name, table in columns.items()},
        "extras": extras,
        "splits": splits,
        "has_entity_prior": has_entity_prior,
        "has_name_priors": has_name_priors,
        "info": info,
        "inverse_relations": inverse_relations,
    }
    with open(folder / META_FILE, "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False)


class SavedFolder:
    """A folder :meth:`KnowledgeGraph.save` wrote, its ``kg.json`` read and checked, its arrays read on demand.

    With ``mmap=True`` the arrays, string tables included, are memory-mapped read-only.

    Raises:
        KGFileNotFoundError: ``kg.json`` is missing.
        KGFormatError: ``kg.json`` is not JSON, not of this format, or of a newer version.
    """

    def __init__(self, path: Path, mmap: bool) -> None:
        self.path, self.mmap = path, mmap
        self.meta_path = meta_path = path / META_FILE
        if not meta_path.is_file():
            raise KGFileNotFoundError(f"No saved knowledge graph at {path} (missing {META_FILE}).")
        try:
            with paused_gc(), open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise KGFormatError(f"not valid JSON ({e})", meta_path) from None
        if meta.get("format") != FORMAT_NAME:
            raise KGFormatError(f"not a saved kgpeft knowledge graph (format={meta.get('format')!r})", meta_path)
        if meta.get("version", 0) > FORMAT_VERSION:
            raise KGFormatError(
                f"written by a newer kgpeft (format version {meta['version']}, this one reads <= {FORMAT_VERSION})",
                meta_path,
            )
        self.meta: dict[str, Any] = meta
        self.version: int = meta.get("version", 1)

    def np_array(self, name: str) -> np.ndarray:
        file = self.path / f"{name}.npy"
        try:
            return np.load(file, mmap_mode="r" if self.mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise KGFileNotFoundError(f"Saved knowledge graph {self.path} is missing {file.name}.") from None
        except ValueError as e:
            raise KGFormatError(f"unreadable array ({e})", file) from None

    def array(self, name: str) -> torch.Tensor:
        a = self.np_array(name)
        with warnings.catch_warnings():
            # torch warns that a read-only map is not writable; kgpeft never writes KG arrays.
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(a)

    def string_columns(self) -> dict[str, Any]:
        """``entity_keys``, ``relation_keys``, ``labels``, ``aliases`` and ``descriptions``, as saved.

        Version 2 tables are checked against their digests; version 1 columns are JSON lists.
        """
        meta = self.meta
        if self.version < 2:
            return {k: meta[k] for k in ("entity_keys", "relation_keys", "labels", "aliases", "descriptions")}
        columns: dict[str, Any] = {}
        for name, digest in meta["strings"].items():
            table = StringTable(self.np_array(f"strings.{name}.data"), self.np_array(f"strings.{name}.offsets"))
            if table.digest() != digest:
                raise KGFormatError(
                    f"the {name} do not match their stored digest (file corrupted?)",
                    self.path / f"strings.{name}.data.npy",
                )
            columns[name] = table
        if "aliases" in columns:
            columns["aliases"] = RaggedStrings(columns["aliases"], self.np_array("aliases.rowptr"))
        if len(columns["entity_keys"]) != meta["num_entities"]:
            raise KGFormatError("entity keys do not match the entity count (file corrupted?)", self.meta_path)
        return {"labels": None, "aliases": None, "descriptions": None, **columns}


def _is_saved_kg_file(name: str) -> bool:
    """Whether :meth:`KnowledgeGraph.save` writes a file of this name."""
    stem = name.removesuffix(".npy")
    return name == META_FILE or (name.endswith(".npy") and (stem in _ARRAY_NAMES or stem.startswith("split.")))


def _foreign_entries(folder: Path) -> list[str]:
    """The entries of ``folder`` that no :meth:`KnowledgeGraph.save` wrote, so that saving there would lose them.

    None in a missing or empty folder, nor in a saved KG's folder (a ``kg.json`` of this
    format and the KG's arrays); every entry of any other folder.
    """
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir())
    try:
        with paused_gc(), open(folder / META_FILE, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not (isinstance(meta, dict) and meta.get("format") == FORMAT_NAME):
        return names
    return [name for name in names if not (_is_saved_kg_file(name) and (folder / name).is_file())]
