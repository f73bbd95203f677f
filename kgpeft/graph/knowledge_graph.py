"""The :class:`KnowledgeGraph` data model: vocabularies, triples, splits and adjacency."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from kgpeft.errors import KGFileNotFoundError, KGFormatError
from kgpeft.graph.strings import RaggedStrings, StringTable, ragged_strings, string_table
from kgpeft.utils import atomic_folder, foreign_entries_or_refuse, paused_gc

FORMAT_NAME = "kgpeft.knowledge_graph"
# Version 2 keeps the vocabularies, labels, aliases and descriptions as UTF-8 string tables
# (``strings.<column>.data.npy`` and ``.offsets.npy``) instead of JSON lists, so that a
# memory-mapped load reads none of them until they are used. Version 1 still loads.
FORMAT_VERSION = 2
# The string columns version 2 writes as tables, besides ``aliases`` (a table plus row pointers).
_STRING_COLUMNS = ("entity_keys", "relation_keys", "labels", "descriptions")
META_FILE = "kg.json"


class CSRAdjacency(NamedTuple):
    """Both-direction adjacency in compressed sparse row form.

    Row ``v`` holds the edges leaving ``v``: ``col[rowptr[v]:rowptr[v + 1]]`` are their
    targets, ``edge_type`` their relation ids (a triple ``(h, r, t)`` gives the edge
    ``h -> t`` of type ``r`` and the edge ``t -> h`` of type ``r + num_relations``), and
    ``edge_id`` the column of the triple in :attr:`KnowledgeGraph.triples`.
    Within a row, edges are sorted by target, then type.

    Shapes: ``rowptr (|V| + 1,)``, ``col``, ``edge_type``, ``edge_id`` ``(2 |E|,)``.
    """

    rowptr: torch.Tensor
    col: torch.Tensor
    edge_type: torch.Tensor
    edge_id: torch.Tensor


def _as_triples(triples: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(triples)
    if t.dim() != 2 or t.size(0) != 3:
        raise ValueError(f"`{name}` should have shape (3, E) (head, relation, tail), got {tuple(t.shape)}.")
    if t.dtype != torch.long:
        t = t.long()
    return t.contiguous()


class KnowledgeGraph:
    r"""A knowledge graph: an entity vocabulary, a relation vocabulary and triples.

    Entities have a unique ``key`` (e.g. an IRI or ``"n02084071"``), a ``label``, extra
    ``aliases`` (other surface forms, used by :class:`~kgpeft.linking.EntityLinker`) and an
    optional ``description``. Triples are a long tensor of shape ``(3, E)`` holding
    ``(head, relation, tail)`` ids. When the KG comes with train/valid/test ``splits``,
    :attr:`triples` is the graph that retrieval and encoders see, normally the training
    split, so that held-out facts cannot leak into the model's input.

    The adjacency (:meth:`csr`) covers both directions: each relation ``r`` has an
    inverse with id ``r + num_relations``, so encoders see ``2 * num_relations`` edge
    types.

    String columns (keys, labels, descriptions, aliases) may be lists or, for large KGs,
    :class:`~kgpeft.graph.strings.StringTable` and :class:`~kgpeft.graph.strings.RaggedStrings`
    (one byte array and offsets each, no Python object per string); :meth:`load` gives the
    latter. The key-to-id index is built on the first :meth:`entity_id` call; keys given as a
    :class:`StringTable` are checked for uniqueness then.

    Args:
        entity_keys (Sequence[str]): unique entity keys; the position is the entity id.
        relation_keys (Sequence[str]): unique relation keys; the position is the relation id.
        triples (Tensor): ``(3, E)`` triples ``(head, relation, tail)``.
        labels (Sequence[str], optional): one label per entity. (default: the keys)
        aliases (Sequence[Sequence[str]], optional): extra surface forms per entity.
            (default: none)
        descriptions (Sequence[str], optional): one description per entity. (default: none)
        entity_prior (Tensor, optional): a non-negative popularity score per entity
            (e.g. WordNet sense frequency), used to rank ambiguous link candidates.
            (default: none, meaning callers fall back to the degree)
        name_priors (Sequence[Sequence[float]], optional): a non-negative score per name of
            each entity: how likely that name refers to that entity (e.g. the frequency of
            one WordNet sense, *cat* in the synset *guy, cat, hombre, bozo*). Entry ``i`` is
            parallel to ``(labels[i], *aliases[i])``: ``name_priors[i][0]`` is the prior of
            the label and ``name_priors[i][j]`` that of ``aliases[i][j - 1]``. Used before
            ``entity_prior`` to rank link candidates. (default: none)
        splits (Mapping[str, Tensor], optional): named ``(3, E_s)`` triple sets such as
            ``"train"``, ``"valid"``, ``"test"``. (default: none)
        extras (Mapping[str, Sequence], optional): further JSON-serialisable per-entity
            columns, e.g. WordNet's ``"examples"`` or ``"lexname"``. (default: none)
        info (Mapping[str, Any], optional): JSON-serialisable provenance (source files,
            how many duplicates a reader dropped, ...). (default: none)
    """

    def __init__(
        self,
        entity_keys: Sequence[str],
        relation_keys: Sequence[str],
        triples: torch.Tensor | np.ndarray,
        *,
        labels: Sequence[str] | None = None,
        aliases: Sequence[Sequence[str]] | None = None,
        descriptions: Sequence[str] | None = None,
        entity_prior: torch.Tensor | np.ndarray | None = None,
        name_priors: Sequence[Sequence[float]] | None = None,
        splits: Mapping[str, torch.Tensor | np.ndarray] | None = None,
        extras: Mapping[str, Sequence[Any]] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.entity_keys: Sequence[str] = _column(entity_keys)
        self.relation_keys: Sequence[str] = _column(relation_keys)
        n = len(self.entity_keys)
        self._entity_index_: dict[str, int] | None = None
        self._relation_index = _index(self.relation_keys, "relation_keys")
        if not isinstance(self.entity_keys, StringTable):
            self._entity_index_ = _index(self.entity_keys, "entity_keys")

        self.labels: Sequence[str] = self.entity_keys if labels is None else _column(labels)
        self.aliases: Sequence[tuple[str, ...]]
        if aliases is None:
            self.aliases = RaggedStrings(StringTable.from_strings(()), np.zeros(n + 1, dtype=np.int64))
        elif isinstance(aliases, RaggedStrings):
            self.aliases = aliases
        else:
            self.aliases = [tuple(a) for a in aliases]
        self.descriptions: Sequence[str] | None = None if descriptions is None else _column(descriptions)
        self.extras: dict[str, list[Any]] = {k: list(v) for k, v in (extras or {}).items()}
        for name, column in [("labels", self.labels), ("aliases", self.aliases), ("descriptions", self.descriptions)]:
            if column is not None and len(column) != n:
                raise ValueError(f"`{name}` should have one entry per entity ({n}), got {len(column)}.")
        for name, column in self.extras.items():
            if len(column) != n:
                raise ValueError(f"`extras[{name!r}]` should have one entry per entity ({n}), got {len(column)}.")

        self.entity_prior: torch.Tensor | None = None
        if entity_prior is not None:
            self.entity_prior = torch.as_tensor(entity_prior, dtype=torch.float32)
            if self.entity_prior.shape != (n,):
                raise ValueError(f"`entity_prior` should have shape ({n},), got {tuple(self.entity_prior.shape)}.")
        # Kept flat, entity after entity, as saved: :meth:`load` then needs no Python object per
        # name, and :attr:`name_priors` splits them into tuples on first use.
        self._name_prior_values: np.ndarray | None = None
        self._name_priors: list[tuple[float, ...]] | None = None
        if name_priors is not None:
            self._name_priors = [tuple(map(float, p)) for p in name_priors]
            if len(self._name_priors) != n:
                raise ValueError(f"`name_priors` should have one entry per entity ({n}), got {len(self._name_priors)}.")
            for i, (p, a) in enumerate(zip(self._name_priors, self.aliases, strict=True)):
                if len(p) != 1 + len(a):
                    raise ValueError(
                        f"`name_priors[{i}]` should have one prior per name of entity {self.entity_keys[i]!r} "
                        f"({1 + len(a)}: its label and {len(a)} aliases), got {len(p)}."
                    )
            self._name_prior_values = np.fromiter(
                (v for p in self._name_priors for v in p), dtype=np.float64, count=n + _num_aliases(self.aliases)
            )
            if not (self._name_prior_values >= 0).all():  # also catches NaN
                i = next(i for i, p in enumerate(self._name_priors) if not all(v >= 0 for v in p))
                raise ValueError(
                    f"`name_priors[{i}]` should be non-negative, got {self._name_priors[i]} "
                    f"for entity {self.entity_keys[i]!r}."
                )

        self.triples = _as_triples(triples, "triples")
        self.splits: dict[str, torch.Tensor] = {k: _as_triples(v, f"splits[{k!r}]") for k, v in (splits or {}).items()}
        for name, t in [("triples", self.triples), *((f"splits[{k!r}]", v) for k, v in self.splits.items())]:
            self._check_ids(t, name)
        self.info: dict[str, Any] = dict(info or {})
        self._csr: CSRAdjacency | None = None
        self._fingerprint: str | None = None

    def _check_ids(self, t: torch.Tensor, name: str) -> None:
        if t.numel() == 0:
            return
        for row, what, bound in [
            (0, "head", self.num_entities),
            (1, "relation", self.num_relations),
            (2, "tail", self.num_entities),
        ]:
            lo, hi = int(t[row].min()), int(t[row].max())
            if lo < 0 or hi >= bound:
                raise ValueError(f"`{name}` has {what} ids in [{lo}, {hi}], but there are only {bound} {what}s.")

    @property
    def _entity_index(self) -> dict[str, int]:
        if self._entity_index_ is None:
            self._entity_index_ = _index(self.entity_keys, "entity_keys")
        return self._entity_index_

    # ------------------------------------------------------------------ sizes
    @property
    def num_entities(self) -> int:
        return len(self.entity_keys)

    @property
    def num_relations(self) -> int:
        """The number of relations, not counting inverses."""
        return len(self.relation_keys)

    @property
    def num_triples(self) -> int:
        return self.triples.size(1)

    # ------------------------------------------------------------ vocabularies
    def entity_id(self, key: str) -> int:
        """The id of the entity with this key; ``KeyError`` names the key if unknown."""
        try:
            return self._entity_index[key]
        except KeyError:
            raise KeyError(f"Unknown entity key {key!r}.") from None

    def relation_id(self, key: str) -> int:
        """The id of the relation with this key; ``KeyError`` names the key if unknown."""
        try:
            return self._relation_index[key]
        except KeyError:
            raise KeyError(f"Unknown relation key {key!r}.") from None

    def names(self, entity: int) -> tuple[str, ...]:
        """The entity's label followed by its aliases, without repeats."""
        return tuple(dict.fromkeys((self.labels[entity], *self.aliases[entity])))

    @property
    def name_priors(self) -> list[tuple[float, ...]] | None:
        """The prior of each name of each entity, parallel to ``(labels[i], *aliases[i])``, or ``None``."""
        if self._name_priors is None and self._name_prior_values is not None:
            values = self._name_prior_values.tolist()
            if isinstance(self.aliases, RaggedStrings):
                bounds = (self.aliases.rowptr + np.arange(self.num_entities + 1)).tolist()
            else:
                bounds = accumulate((1 + len(a) for a in self.aliases), initial=0)
            self._name_priors = [tuple(values[start:end]) for start, end in pairwise(bounds)]
        return self._name_priors

    @property
    def fingerprint(self) -> str:
        """A stable SHA-256 of the entity and relation vocabularies (keys, in id order).

        Two KGs with the same fingerprint give every entity and relation the same id, so
        anything indexed by id (embeddings, checkpoints) fits both.
        """
        if self._fingerprint is None:
            self._fingerprint = _fingerprint(self.entity_keys, self.relation_keys)
        return self._fingerprint

    # --------------------------------------------------------------- adjacency
    def csr(self) -> CSRAdjacency:
        """The both-direction adjacency (see :class:`CSRAdjacency`), built once and cached."""
        if self._csr is None:
            self._csr = _build_csr(self.triples, self.num_entities, self.num_relations)
        return self._csr

    @property
    def degree(self) -> torch.Tensor:
        """Number of triples each entity takes part in, as head or tail. Shape ``(|V|,)``."""
        return self.csr().rowptr.diff()

    @property
    def out_degree(self) -> torch.Tensor:
        return torch.bincount(self.triples[0], minlength=self.num_entities)

    @property
    def in_degree(self) -> torch.Tensor:
        return torch.bincount(self.triples[2], minlength=self.num_entities)

    def to_pyg(self, add_inverse: bool = False):
        """The graph as a PyG :class:`~torch_geometric.data.Data`.

        With ``add_inverse=True`` every triple also gives its reverse edge, typed
        ``r + num_relations``, exactly the edges of :meth:`csr`.
        """
        from torch_geometric.data import Data

        if add_inverse:
            csr = self.csr()
            src = torch.repeat_interleave(torch.arange(self.num_entities), csr.rowptr.diff())
            edge_index, edge_type = torch.stack([src, csr.col]), csr.edge_type
            num_edge_types = 2 * self.num_relations
        else:
            edge_index, edge_type = self.triples[[0, 2]], self.triples[1]
            num_edge_types = self.num_relations
        return Data(
            edge_index=edge_index,
            edge_type=edge_type,
            num_nodes=self.num_entities,
            num_relations=num_edge_types,
        )

    def __repr__(self) -> str:
        splits = f", splits={{{', '.join(f'{k}: {v.size(1)}' for k, v in self.splits.items())}}}" if self.splits else ""
        return (
            f"{type(self).__name__}(num_entities={self.num_entities}, num_relations={self.num_relations}, "
            f"num_triples={self.num_triples}{splits})"
        )

    # -------------------------------------------------------------- save/load
    def save(self, path: str | os.PathLike, overwrite: bool = False, force: bool = False) -> None:
        """Write the KG to the folder ``path`` as JSON (vocabularies) and ``.npy`` arrays.

        The folder is written to a temporary sibling and renamed into place, so an
        interrupted save never leaves a half-written KG. The adjacency is saved too,
        so :meth:`load` need not rebuild it.

        Args:
            path (str or PathLike): the folder to write; the current directory (``"."``) works.
            overwrite (bool): replace an empty folder or a saved KG already there. (default: ``False``)
            force (bool): also write into a folder holding other files: the KG's files
                replace those of the same names, the others are kept. (default: ``False``)

        Raises:
            OutputPathError: ``path`` is a file, or a folder holding files that are not a saved
                KG's (without ``force``); the message names up to 5 of them.
            FileExistsError: ``path`` exists and ``overwrite`` is ``False``.
        """
        target = Path(path)
        others = foreign_entries_or_refuse(
            target,
            _foreign_entries,
            force,
            writer="KnowledgeGraph.save",
            owner="a saved knowledge graph's",
            thing="the KG",
        )
        with atomic_folder(target, overwrite, keep=others) as tmp:
            arrays = {"triples": self.triples, **{f"split.{k}": v for k, v in self.splits.items()}}
            arrays.update({f"csr.{k}": v for k, v in self.csr()._asdict().items()})
            if self.entity_prior is not None:
                arrays["entity_prior"] = self.entity_prior
            if self._name_prior_values is not None:
                arrays["name_priors"] = torch.from_numpy(self._name_prior_values)
            for name, tensor in arrays.items():
                np.save(tmp / f"{name}.npy", tensor.numpy(), allow_pickle=False)
            columns: dict[str, StringTable] = {
                "entity_keys": string_table(self.entity_keys),
                "relation_keys": string_table(self.relation_keys),
            }
            if self.labels is not self.entity_keys and self.labels != self.entity_keys:
                columns["labels"] = string_table(self.labels)
            if self.descriptions is not None:
                columns["descriptions"] = string_table(self.descriptions)
            aliases = ragged_strings(self.aliases)
            if aliases.num_strings:
                columns["aliases"] = aliases.strings
                np.save(tmp / "aliases.rowptr.npy", aliases.rowptr, allow_pickle=False)
            for name, table in columns.items():
                np.save(tmp / f"strings.{name}.data.npy", table.data, allow_pickle=False)
                np.save(tmp / f"strings.{name}.offsets.npy", table.offsets, allow_pickle=False)
            meta = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "fingerprint": self.fingerprint,
                "num_entities": self.num_entities,
                "num_relations": self.num_relations,
                # Checked on load instead of recomputing the fingerprint from every key.
                "strings": {name: table.digest() for name, table in columns.items()},
                "extras": self.extras,
                "splits": list(self.splits),
                "has_entity_prior": self.entity_prior is not None,
                "has_name_priors": self._name_prior_values is not None,
                "info": self.info,
            }
            with open(tmp / META_FILE, "w", encoding="utf-8") as f:
                json.dump(meta, f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = False) -> KnowledgeGraph:
        """Read a KG written by :meth:`save`.

        With ``mmap=True`` the arrays, string tables included, are memory-mapped read-only
        instead of read into memory: the KG opens in time independent of its size but for
        checking the key tables' digests, and uses memory only for the pages it touches, so a
        KG larger than memory can still be retrieved from. Version 1 folders (JSON
        vocabularies) still load.
        """
        path = Path(path)
        meta_path = path / META_FILE
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

        def np_array(name: str) -> np.ndarray:
            file = path / f"{name}.npy"
            try:
                return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
            except FileNotFoundError:
                raise KGFileNotFoundError(f"Saved knowledge graph {path} is missing {file.name}.") from None
            except ValueError as e:
                raise KGFormatError(f"unreadable array ({e})", file) from None

        def array(name: str) -> torch.Tensor:
            a = np_array(name)
            with warnings.catch_warnings():
                # torch warns that a read-only map is not writable; kgpeft never writes KG arrays.
                warnings.simplefilter("ignore", UserWarning)
                return torch.from_numpy(a)

        if meta.get("version", 1) >= 2:
            columns = {}
            for name, digest in meta["strings"].items():
                table = StringTable(np_array(f"strings.{name}.data"), np_array(f"strings.{name}.offsets"))
                if table.digest() != digest:
                    raise KGFormatError(
                        f"the {name} do not match their stored digest (file corrupted?)",
                        path / f"strings.{name}.data.npy",
                    )
                columns[name] = table
            if "aliases" in columns:
                columns["aliases"] = RaggedStrings(columns["aliases"], np_array("aliases.rowptr"))
            if len(columns["entity_keys"]) != meta["num_entities"]:
                raise KGFormatError("entity keys do not match the entity count (file corrupted?)", meta_path)
            strings = {"labels": None, "aliases": None, "descriptions": None, **columns}
        else:
            strings = {k: meta[k] for k in ("entity_keys", "relation_keys", "labels", "aliases", "descriptions")}
        kg = cls(
            strings.pop("entity_keys"),
            strings.pop("relation_keys"),
            array("triples"),
            entity_prior=array("entity_prior") if meta["has_entity_prior"] else None,
            splits={k: array(f"split.{k}") for k in meta["splits"]},
            extras=meta["extras"],
            info=meta["info"],
            **strings,
        )
        if meta.get("version", 1) >= 2:
            # The key tables match their digests, taken when the fingerprint was computed.
            kg._fingerprint = meta["fingerprint"]
        elif kg.fingerprint != meta["fingerprint"]:
            raise KGFormatError("vocabulary does not match the stored fingerprint (file corrupted?)", meta_path)
        if meta.get("has_name_priors", False):  # absent from KGs saved before name priors existed
            kg._name_prior_values = array("name_priors").numpy()
            if kg._name_prior_values.shape != (kg.num_entities + _num_aliases(kg.aliases),):
                raise KGFormatError("name priors do not match the names (file corrupted?)", path / "name_priors.npy")
        kg._csr = CSRAdjacency(**{k: array(f"csr.{k}") for k in CSRAdjacency._fields})
        if kg._csr.rowptr.numel() != kg.num_entities + 1 or kg._csr.col.numel() != 2 * kg.num_triples:
            raise KGFormatError("adjacency does not match the triples (file corrupted?)", path)
        return kg


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


def _is_saved_kg_file(name: str) -> bool:
    """Whether :meth:`KnowledgeGraph.save` writes a file of this name."""
    stem = name.removesuffix(".npy")
    return name == META_FILE or (name.endswith(".npy") and (stem in _ARRAY_NAMES or stem.startswith("split.")))


def _column(strings: Sequence[str]) -> Sequence[str]:
    """A string column as kept: a :class:`StringTable` as given, anything else as a list."""
    return strings if isinstance(strings, StringTable) else list(strings)


def _index(keys: Sequence[str], name: str) -> dict[str, int]:
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != len(keys):
        raise ValueError(f"`{name}` should be unique, got {len(keys) - len(index)} duplicates.")
    return index


def _num_aliases(aliases: Sequence[Sequence[str]]) -> int:
    return aliases.num_strings if isinstance(aliases, RaggedStrings) else sum(map(len, aliases))


def _fingerprint(entity_keys: Sequence[str], relation_keys: Sequence[str]) -> str:
    """SHA-256 of ``json.dumps([FORMAT_NAME, entity_keys, relation_keys], ensure_ascii=False)``,
    encoded in chunks so that no JSON string of all keys is ever held."""
    h = hashlib.sha256()
    h.update(f"[{json.dumps(FORMAT_NAME)}, ".encode())
    for i, keys in enumerate((entity_keys, relation_keys)):
        h.update(b"[" if i == 0 else b", [")
        first = True
        for start in range(0, len(keys), 1 << 16):
            chunk = keys[start : start + (1 << 16)]
            if not first:
                h.update(b", ")
            h.update(json.dumps(list(chunk), ensure_ascii=False)[1:-1].encode("utf-8"))
            first = False
        h.update(b"]")
    h.update(b"]")
    return h.hexdigest()


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


def _build_csr(triples: torch.Tensor, num_entities: int, num_relations: int) -> CSRAdjacency:
    h, r, t = triples.numpy()
    e = h.size
    src = np.concatenate([h, t])
    dst = np.concatenate([t, h])
    typ = np.concatenate([r, r + num_relations])
    eid = np.concatenate([np.arange(e), np.arange(e)])
    order = np.lexsort((typ, dst, src))  # by src, then dst, then type
    rowptr = np.zeros(num_entities + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=num_entities), out=rowptr[1:])
    return CSRAdjacency(
        rowptr=torch.from_numpy(rowptr),
        col=torch.from_numpy(dst[order]),
        edge_type=torch.from_numpy(typ[order]),
        edge_id=torch.from_numpy(eid[order]),
    )
