"""The :class:`KnowledgeGraph` data model: vocabularies, names, triples and splits.

Its saved folder is :mod:`kgpeft.graph.storage`'s, and its adjacency and PyG views are
:mod:`kgpeft.graph.adjacency`'s.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kgpeft.errors import KGFormatError
from kgpeft.graph.adjacency import CSRAdjacency, build_csr, pyg_data
from kgpeft.graph.edits import (
    KGEditError,
    TripleSpec,
    checked_inverses,
    edited_triples,
    triple_ids,
    with_inverse_triples,
)
from kgpeft.graph.storage import FORMAT_NAME, SavedFolder, write_files, writing_folder
from kgpeft.graph.strings import RaggedStrings, StringTable, ragged_strings, string_table


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
        inverse_relations (Mapping[str, str], optional): relation key to the key of the relation
            that states the same link reversed, each pair both ways (WordNet: ``hypernym`` and
            ``hyponym``; a symmetric relation maps to itself), for a KG that states such links
            twice; :meth:`edit` then edits both triples. (default: none)
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
        inverse_relations: Mapping[str, str] | None = None,
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
            self._set_name_priors(name_priors)

        self.triples = _as_triples(triples, "triples")
        self.splits: dict[str, torch.Tensor] = {k: _as_triples(v, f"splits[{k!r}]") for k, v in (splits or {}).items()}
        for name, t in [("triples", self.triples), *((f"splits[{k!r}]", v) for k, v in self.splits.items())]:
            self._check_ids(t, name)
        self.info: dict[str, Any] = dict(info or {})
        self.inverse_relations: dict[str, str] = checked_inverses(inverse_relations or {}, self._relation_index)
        self._csr: CSRAdjacency | None = None
        self._fingerprint: str | None = None

    def _set_name_priors(self, name_priors: Sequence[Sequence[float]]) -> None:
        """Keep ``name_priors`` as tuples and flat, checked against the names."""
        n = self.num_entities
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
            self._csr = build_csr(self.triples, self.num_entities, self.num_relations)
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
        csr = self.csr() if add_inverse else None
        return pyg_data(self.triples, csr, self.num_entities, self.num_relations)

    # ------------------------------------------------------------------- edits
    def edit(
        self,
        *,
        add: TripleSpec | None = None,
        remove: TripleSpec | None = None,
        entities: Mapping[str, str] | None = None,
        inverses: bool = True,
    ) -> KnowledgeGraph:
        """A copy of the KG with triples removed and added, and new entities; the KG itself is unchanged.

        Every other column (labels, aliases, descriptions, priors, extras, splits, info) is kept as
        it is. New entities come after the old ones (no old id moves) with their label and no
        aliases, an empty description, ``None`` in each extra column and a prior of 0; the
        fingerprint then changes, so adapters trained on this KG refuse the copy. The kept triples
        keep their order and the added ones follow, each only once; :attr:`splits` are not edited
        (they are evaluation sets, not what retrieval reads). A KG that states a link both ways
        (:attr:`inverse_relations`) is edited both ways: removing ``(h, r, t)`` also removes
        ``(t, r', h)``, adding it adds ``(t, r', h)`` (where absent), so that no inverse triple
        keeps stating a removed link (``inverses=False``: only the triples given).

        Example:
            >>> kg2 = kg.edit(remove=[("n02084071", "hypernym", "n01317541")],
            ...               add=[("n02084071", "hypernym", "n02083346")])  # doctest: +SKIP

        Args:
            add (Tensor or Sequence, optional): triples to add, a ``(3, E)`` id tensor or array, or
                ``(head, relation, tail)`` rows of ids or keys (keys of ``entities`` included).
            remove (Tensor or Sequence, optional): triples to remove (every copy), in the same forms;
                removals come before additions.
            entities (Mapping[str, str], optional): new entities, key to label.
            inverses (bool): edit the inverse triples of :attr:`inverse_relations` too. (default: ``True``)

        Raises:
            KGEditError: an unknown key or id, a triple removed that is not in the graph or added that
                already is, a triple given twice, or a new entity key that is taken; the message names it.
        """
        kg = copy.copy(self)
        kg.extras = {k: list(v) for k, v in self.extras.items()}
        kg.splits, kg.info = dict(self.splits), copy.deepcopy(self.info)
        if entities:
            kg._add_entities(entities)
        ids = {
            what: triple_ids(spec, what, kg.entity_id, kg.relation_id, kg.num_entities, kg.num_relations)
            for what, spec in (("add", add), ("remove", remove))
        }
        if inverses and kg.inverse_relations:
            ids["add"], ids["remove"] = with_inverse_triples(kg, ids["add"], ids["remove"])
        if ids["add"].size or ids["remove"].size:
            kg.triples = edited_triples(
                self.triples, ids["add"], ids["remove"], kg.num_entities, kg.num_relations, kg._describe
            )
            kg._csr = None
        elif entities:
            kg._csr = None  # one row more per new entity
        return kg

    def _add_entities(self, entities: Mapping[str, str]) -> None:
        """Append ``entities`` (key to label) to every per-entity column of this (copied) KG."""
        for i, key in enumerate(entities):
            if key in self._entity_index:
                raise KGEditError(f"Cannot add entity {key!r}: the KG has an entity of that key.", "entities", i)
        k = len(entities)
        self.entity_keys = self.entity_keys + list(entities)
        self.labels = list(self.labels) + list(entities.values())
        self.aliases = [*map(tuple, self.aliases), *[()] * k]
        if self.descriptions is not None:
            self.descriptions = list(self.descriptions) + [""] * k
        self.extras = {name: column + [None] * k for name, column in self.extras.items()}
        if self.entity_prior is not None:
            self.entity_prior = torch.cat([self.entity_prior, torch.zeros(k)])
        if self._name_prior_values is not None:
            self._name_prior_values = np.concatenate([self._name_prior_values, np.zeros(k)])
            self._name_priors = None
        self._entity_index_ = None
        self._fingerprint = None

    def _describe(self, triple: np.ndarray) -> str:
        """A triple of ids as its keys, e.g. ``('dog', 'hypernym', 'canine')``."""
        h, r, t = (int(x) for x in triple)
        return repr((self.entity_keys[h], self.relation_keys[r], self.entity_keys[t]))

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
        with writing_folder(Path(path), overwrite, force) as tmp:
            arrays = {"triples": self.triples, **{f"split.{k}": v for k, v in self.splits.items()}}
            arrays.update({f"csr.{k}": v for k, v in self.csr()._asdict().items()})
            if self.entity_prior is not None:
                arrays["entity_prior"] = self.entity_prior
            if self._name_prior_values is not None:
                arrays["name_priors"] = torch.from_numpy(self._name_prior_values)
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
            write_files(
                tmp,
                arrays,
                columns,
                aliases.rowptr if aliases.num_strings else None,
                fingerprint=self.fingerprint,
                num_entities=self.num_entities,
                num_relations=self.num_relations,
                extras=self.extras,
                splits=list(self.splits),
                has_entity_prior=self.entity_prior is not None,
                has_name_priors=self._name_prior_values is not None,
                info=self.info,
                inverse_relations=self.inverse_relations,
            )

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = False) -> KnowledgeGraph:
        """Read a KG written by :meth:`save`.

        With ``mmap=True`` the arrays, string tables included, are memory-mapped read-only
        instead of read into memory: the KG opens in time independent of its size but for
        checking the key tables' digests, and uses memory only for the pages it touches, so a
        KG larger than memory can still be retrieved from. Version 1 folders (JSON
        vocabularies) still load.
        """
        folder = SavedFolder(Path(path), mmap)
        meta, array = folder.meta, folder.array
        strings = folder.string_columns()
        kg = cls(
            strings.pop("entity_keys"),
            strings.pop("relation_keys"),
            array("triples"),
            entity_prior=array("entity_prior") if meta["has_entity_prior"] else None,
            splits={k: array(f"split.{k}") for k in meta["splits"]},
            extras=meta["extras"],
            info=meta["info"],
            inverse_relations=meta.get("inverse_relations"),  # absent from KGs saved before it existed
            **strings,
        )
        if folder.version >= 2:
            # The key tables match their digests, taken when the fingerprint was computed.
            kg._fingerprint = meta["fingerprint"]
        elif kg.fingerprint != meta["fingerprint"]:
            raise KGFormatError("vocabulary does not match the stored fingerprint (file corrupted?)", folder.meta_path)
        if meta.get("has_name_priors", False):  # absent from KGs saved before name priors existed
            kg._name_prior_values = array("name_priors").numpy()
            if kg._name_prior_values.shape != (kg.num_entities + _num_aliases(kg.aliases),):
                raise KGFormatError(
                    "name priors do not match the names (file corrupted?)", folder.path / "name_priors.npy"
                )
        kg._csr = CSRAdjacency(**{k: array(f"csr.{k}") for k in CSRAdjacency._fields})
        if kg._csr.rowptr.numel() != kg.num_entities + 1 or kg._csr.col.numel() != 2 * kg.num_triples:
            raise KGFormatError("adjacency does not match the triples (file corrupted?)", folder.path)
        return kg


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
