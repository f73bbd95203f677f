"""WordNet 3.0 as a :class:`~kgpeft.graph.knowledge_graph.KnowledgeGraph`, read from the system database.

The database is the one Debian ships in ``wordnet-base`` and ``wordnet-sense-index``
(``/usr/share/wordnet``); its file formats are described in ``wndb(5WN)``,
``wninput(5WN)`` and ``senseidx(5WN)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kgpeft.errors import KGFileNotFoundError, KGFormatError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.graph.readers.building import dedupe_triples
from kgpeft.utils import paused_gc

DEFAULT_DIR = "/usr/share/wordnet"
ENV_VAR = "KGPEFT_WORDNET_DIR"
# Entities are numbered in this file order, then in file (offset) order.
DATA_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
SENSE_INDEX = "index.sense"
WORDNET_FILES = (*DATA_FILES.values(), SENSE_INDEX)

# lexnames(5WN): the lexicographer files, numbered 00..44 by ``lex_filenum``. Debian does not
# ship the ``lexnames`` file, and the list has not changed since WordNet 2.0.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)  # fmt: skip

# wninput(5WN) pointer symbols, named after the relation from the source synset to the target.
POINTERS = {
    "!": "antonym",
    "@": "hypernym",
    "@i": "instance_hypernym",
    "~": "hyponym",
    "~i": "instance_hyponym",
    "#m": "member_holonym",
    "#s": "substance_holonym",
    "#p": "part_holonym",
    "%m": "member_meronym",
    "%s": "substance_meronym",
    "%p": "part_meronym",
    "=": "attribute",
    "+": "derivationally_related_form",
    ";c": "domain_topic",
    "-c": "member_of_domain_topic",
    ";r": "domain_region",
    "-r": "member_of_domain_region",
    ";u": "domain_usage",
    "-u": "member_of_domain_usage",
    "*": "entailment",
    ">": "cause",
    "^": "also_see",
    "$": "verb_group",
    "&": "similar_to",
    "<": "participle_of_verb",
    "\\": "pertainym",
}
# ``\`` is the one symbol whose meaning depends on the source POS: adverbs are derived from adjectives.
ADVERB_POINTERS = {**POINTERS, "\\": "derived_from_adjective"}
RELATION_KEYS = (*POINTERS.values(), "derived_from_adjective")
# wninput(5WN): "reflexive" pointers, which WordNet states both ways (on WordNet 3.0 all but 29 of 63,649
# derivationally_related_form triples have their inverse); an edit of the KG edits both (`KnowledgeGraph.edit`).
_RECIPROCAL = {
    "hypernym": "hyponym",
    "instance_hypernym": "instance_hyponym",
    "member_holonym": "member_meronym",
    "substance_holonym": "substance_meronym",
    "part_holonym": "part_meronym",
    "domain_topic": "member_of_domain_topic",
    "domain_region": "member_of_domain_region",
    "domain_usage": "member_of_domain_usage",
}
INVERSE_RELATIONS = {
    **_RECIPROCAL,
    **{v: k for k, v in _RECIPROCAL.items()},
    **{r: r for r in ("antonym", "similar_to", "attribute", "verb_group", "derivationally_related_form")},
}

# A pointer's target POS and a synset's ss_type, as the POS of its key: satellites live in data.adj.
_KEY_POS = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}
# senseidx(5WN): the ss_type digit of a sense key.
_SENSE_KEY_POS = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}
_ADJECTIVE_MARKER = re.compile(r"\((?:a|p|ip)\)$")
_QUOTED = re.compile(r'"([^"]*)"')
_VERSION = re.compile(r"WordNet (\d+(?:\.\d+)*) Copyright")


def wordnet_dir(path: str | os.PathLike | None = None) -> Path:
    """The WordNet database folder: ``path``, else ``$KGPEFT_WORDNET_DIR``, else ``/usr/share/wordnet``."""
    return Path(path if path is not None else os.environ.get(ENV_VAR) or DEFAULT_DIR)


def load_wordnet(path: str | os.PathLike | None = None) -> KnowledgeGraph:
    r"""Read WordNet as a knowledge graph of synsets and their pointer relations.

    Each synset is an entity keyed ``"{offset:08d}-{pos}"`` (e.g. ``"02084071-n"`` for *dog*;
    ``pos`` is one of ``n``, ``v``, ``a``, ``r``, with adjective satellites under ``a``). Its
    label is the first lemma and its aliases the other lemmas, with underscores read as spaces
    and the adjective markers ``(a)``, ``(p)``, ``(ip)`` removed; its description is the gloss
    up to the first example. Per-entity ``extras`` hold ``"examples"`` (the quoted example
    sentences of the gloss), ``"lexname"`` (the lexicographer file, e.g. ``"noun.animal"``) and
    ``"pos"`` (the ``ss_type``: ``n``, ``v``, ``a``, ``s`` or ``r``). ``name_priors`` holds, for
    each lemma of the synset, one plus the tag count of that sense (lemma and synset) in
    ``index.sense``, so the frequent senses of an ambiguous word rank first: *cat* the feline
    before *cat* the guy, although *guy* makes its synset frequent. ``entity_prior`` is one
    plus the tag counts of all the synset's senses.

    Every pointer becomes a triple between its two synsets, named as in :data:`RELATION_KEYS`.
    Lexical pointers, which relate two words, are included as a relation between their
    synsets. WordNet stores both directions of reciprocal relations (``hypernym`` and
    ``hyponym``, ...), and both are kept as written; ``inverse_relations`` pairs them
    (:data:`INVERSE_RELATIONS`), so that an edit of one triple edits both. A triple repeated by several word pairs
    is kept once, and the few lexical pointers between two words of the same synset are
    dropped; ``info`` counts both.

    Args:
        path (str or PathLike, optional): the folder holding ``data.noun``, ``data.verb``,
            ``data.adj``, ``data.adv`` and ``index.sense``. (default: the environment variable
            ``KGPEFT_WORDNET_DIR``, else ``/usr/share/wordnet``)

    Raises:
        KGFileNotFoundError: if one of those files is missing.
        KGFormatError: if a line is malformed or a pointer targets an unknown synset; the
            message names the file and line.

    Example:
        >>> kg = load_wordnet()
        >>> kg.labels[kg.entity_id("02084071-n")], kg.aliases[kg.entity_id("02084071-n")]
        ('dog', ('domestic dog', 'Canis familiaris'))
    """
    root = wordnet_dir(path)
    missing = [name for name in WORDNET_FILES if not (root / name).is_file()]
    if missing:
        raise KGFileNotFoundError(
            f"WordNet database not found: {root} lacks {', '.join(missing)}. On Debian or Ubuntu, install it with "
            f"`apt-get install wordnet-base wordnet-sense-index`, or point {ENV_VAR} (or `path`) to a folder "
            f"holding the WordNet 3.0 database files."
        )
    with paused_gc():
        return _read_wordnet(root)


@dataclass
class _Synsets:
    """What the data files say, synset by synset (its entity id is its position) and pointer by pointer."""

    index: dict[str, int] = field(default_factory=dict)  # key -> entity id
    where: list[tuple[Path, int]] = field(default_factory=list)  # the file and line of each, to report bad pointers
    labels: list[str] = field(default_factory=list)
    aliases: list[tuple[str, ...]] = field(default_factory=list)
    lowered: list[tuple[str, ...]] = field(default_factory=list)  # the names in lower case, as sense keys have them
    descriptions: list[str] = field(default_factory=list)
    examples: list[list[str]] = field(default_factory=list)
    lexnames: list[str] = field(default_factory=list)
    ss_types: list[str] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)  # the source synset of each pointer
    pointer_fields: list[str] = field(
        default_factory=list
    )  # 4 per pointer: symbol, target offset and pos, source/target
    rels: list[int] = field(default_factory=list)
    version: str | None = None


def _read_wordnet(root: Path) -> KnowledgeGraph:
    synsets = _Synsets()
    for pos, name in DATA_FILES.items():
        _read_data_file(root / name, pos, synsets)
    triples, pointer_info = _pointer_triples(synsets)
    counts, name_counts = _sense_counts(root / SENSE_INDEX, synsets)
    return KnowledgeGraph(
        list(synsets.index),
        RELATION_KEYS,
        triples,
        labels=synsets.labels,
        aliases=synsets.aliases,
        descriptions=synsets.descriptions,
        entity_prior=torch.tensor(counts, dtype=torch.float32),
        name_priors=name_counts,
        extras={"examples": synsets.examples, "lexname": synsets.lexnames, "pos": synsets.ss_types},
        inverse_relations=INVERSE_RELATIONS,
        info={
            "name": "WordNet" if synsets.version is None else f"WordNet {synsets.version}",
            "source": str(root),
            "num_synsets": len(synsets.where),
            **pointer_info,
        },
    )


def _read_data_file(file: Path, pos: str, synsets: _Synsets) -> None:
    """Add the synsets of one data file (``pos`` is its part of speech) and their pointers to ``synsets``."""
    s = synsets
    text = _read_text(file)
    if s.version is None and (match := _VERSION.search(text, 0, 4096)):
        s.version = match.group(1)
    relation_id = {name: i for i, name in enumerate(RELATION_KEYS)}
    symbols = {sym: relation_id[r] for sym, r in (ADVERB_POINTERS if pos == "r" else POINTERS).items()}
    first_pointer = len(s.heads)
    for lineno, line in _numbered_lines(text):
        try:
            offset, lex_filenum, ss_type, words, pointers, gloss = _parse_synset(line, pos)
        except (ValueError, IndexError) as e:
            raise KGFormatError(f"malformed synset line ({e})", file, lineno) from None
        key = f"{offset}-{pos}"
        entity = len(s.where)
        if s.index.setdefault(key, entity) != entity:
            first = s.where[s.index[key]][1]
            raise KGFormatError(f"synset {key} appears twice (first on line {first})", file, lineno)
        s.where.append((file, lineno))

        names = list(dict.fromkeys(_lemma(w) for w in words))
        s.labels.append(names[0])
        s.aliases.append(tuple(names[1:]))
        s.lowered.append(tuple(map(str.lower, names)))
        definition, sep, rest = gloss.partition('; "')
        s.descriptions.append(definition.strip())
        s.examples.append(_QUOTED.findall('"' + rest) if sep else [])
        s.lexnames.append(LEXNAMES[lex_filenum])
        s.ss_types.append(ss_type)

        s.heads.extend([entity] * (len(pointers) // 4))
        s.pointer_fields.extend(pointers)

    file_symbols = s.pointer_fields[4 * first_pointer :: 4]
    try:
        s.rels.extend([symbols[sym] for sym in file_symbols])
    except KeyError as e:
        i = first_pointer + file_symbols.index(e.args[0])
        raise KGFormatError(f"unknown pointer symbol {e.args[0]!r}", *s.where[s.heads[i]]) from None


def _pointer_triples(synsets: _Synsets) -> tuple[torch.Tensor, dict[str, int]]:
    """The ``(3, E)`` triples of the pointers, in file order, self-loops and repeats dropped, and their counts."""
    s = synsets
    tail_keys = [f"{o}-{_KEY_POS[p]}" for o, p in zip(s.pointer_fields[1::4], s.pointer_fields[2::4], strict=True)]
    tails = [s.index.get(k, -1) for k in tail_keys]
    if -1 in tails:
        i = tails.index(-1)
        raise KGFormatError(f"pointer to synset {tail_keys[i]}, which is in no data file", *s.where[s.heads[i]])
    num_lexical = len(s.heads) - s.pointer_fields[3::4].count("0000")
    h, r, t = np.array(s.heads, dtype=np.int64), np.array(s.rels, dtype=np.int64), np.array(tails, dtype=np.int64)
    not_loop = h != t
    h, r, t = h[not_loop], r[not_loop], t[not_loop]
    kept, duplicates = dedupe_triples(np.stack([h, r, t]), len(s.where), len(RELATION_KEYS))  # in file order
    triples = torch.from_numpy(kept)  # (3, E)
    info = {
        "num_pointers": len(s.heads),
        "num_semantic_pointers": len(s.heads) - num_lexical,
        "num_lexical_pointers": num_lexical,
        "self_loops_dropped": len(s.heads) - len(h),
        "duplicates_dropped": duplicates,
        "num_triples": kept.shape[1],
    }
    return triples, info


def _sense_counts(sense_file: Path, synsets: _Synsets) -> tuple[list[int], list[list[int]]]:
    """One plus the tag counts in ``index.sense``: of each synset, and of each of its names."""
    counts = [1] * len(synsets.where)
    name_counts = [[1] * (1 + len(a)) for a in synsets.aliases]
    for lineno, line in _numbered_lines(_read_text(sense_file)):
        fields = line.split()
        lemma, _, lex_sense = fields[0].partition("%")
        pos = _SENSE_KEY_POS.get(lex_sense[:1])
        if len(fields) != 4 or pos is None or not fields[3].isdigit():
            raise KGFormatError(
                "malformed sense line (expected 'sense_key offset sense_number tag_cnt')", sense_file, lineno
            )
        entity = synsets.index.get(f"{fields[1]}-{pos}")
        if entity is None:
            raise KGFormatError(f"sense of synset {fields[1]}-{pos}, which is in no data file", sense_file, lineno)
        count = int(fields[3])
        counts[entity] += count
        lemma, names = lemma.replace("_", " "), synsets.lowered[entity]
        matches = names.count(lemma)
        if matches == 1:
            name_counts[entity][names.index(lemma)] += count
        elif matches == 0:
            raise KGFormatError(
                f"sense of {lemma!r}, which is not a word of synset {fields[1]}-{pos}", sense_file, lineno
            )
        else:  # one sense key for a lemma spelt in several cases ("Earth", "earth")
            for j, name in enumerate(names):
                if name == lemma:
                    name_counts[entity][j] += count
    return counts, name_counts


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise KGFormatError(f"not UTF-8 text ({e.reason} at byte {e.start})", path, line) from None


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines with their 1-based numbers, skipping the license header.

    Header lines start with two spaces (wndb(5WN)); no data line does.
    """
    for lineno, line in enumerate(text.split("\n"), 1):
        if line and not line.isspace() and not line.startswith("  "):
            yield lineno, line


def _parse_synset(line: str, pos: str) -> tuple[str, int, str, list[str], list[str], str]:
    """Split a data line into offset, lex_filenum, ss_type, words, flat pointer fields and gloss.

    Raises ``ValueError`` or ``IndexError`` on a malformed line.
    """
    head, bar, gloss = line.partition(" |")
    if not bar:
        raise ValueError("no ' | ' before the gloss")
    fields = head.split()
    offset, lex_filenum, ss_type = fields[0], int(fields[1]), fields[2]
    if len(offset) != 8 or not offset.isdigit():
        raise ValueError(f"synset offset {offset!r} is not 8 digits")
    if not 0 <= lex_filenum < len(LEXNAMES):
        raise ValueError(f"lex_filenum {lex_filenum} is not in 0..{len(LEXNAMES) - 1}")
    if _KEY_POS.get(ss_type) != pos:
        raise ValueError(f"ss_type {ss_type!r} does not belong in this file")
    end = 4 + 2 * int(fields[3], 16)
    words = fields[4:end:2]
    if not words or len(fields) <= end:
        raise ValueError("fewer words than w_cnt")
    num_pointers = int(fields[end])
    pointers = fields[end + 1 : end + 1 + 4 * num_pointers]
    rest = fields[end + 1 + 4 * num_pointers :]
    if len(pointers) != 4 * num_pointers:
        raise ValueError(f"fewer pointers than p_cnt={num_pointers}")
    if any(p not in _KEY_POS for p in pointers[2::4]):
        raise ValueError("a pointer target has an unknown pos")
    # Only verbs have fields after the pointers: ``f_cnt`` then ``+ f_num w_num`` per frame.
    if rest and (pos != "v" or len(rest) != 1 + 3 * int(rest[0])):
        raise ValueError(f"{len(rest)} unexpected fields after the pointers")
    return offset, lex_filenum, ss_type, words, pointers, gloss.strip()


def _lemma(word: str) -> str:
    if word.endswith(")"):
        word = _ADJECTIVE_MARKER.sub("", word)
    return word.replace("_", " ")
