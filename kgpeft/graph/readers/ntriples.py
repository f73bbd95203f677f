"""N-Triples files: IRI and blank-node objects give triples, name and description literals the entities' names."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from kgpeft.errors import KGFormatError
from kgpeft.graph.knowledge_graph import KnowledgeGraph
from kgpeft.graph.readers.building import Vocab, finish
from kgpeft.graph.readers.lines import PathLike, text_lines

_IRI = r"<([^<>\"{}|^`\\\x00-\x20]*)>"
_BNODE = r"(_:[A-Za-z0-9_][A-Za-z0-9_.\-]*)"
_LITERAL = r"\"((?:[^\"\\\n\r]|\\.)*)\"(?:@([A-Za-z]+(?:-[A-Za-z0-9]+)*)|\^\^<([^>]*)>)?"
_NT_LINE = re.compile(rf"^\s*(?:{_IRI}|{_BNODE})\s+{_IRI}\s+(?:{_IRI}|{_BNODE}|{_LITERAL})\s*\.\s*(?:#.*)?$")
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))")
_SIMPLE_ESCAPES = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}

RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
LABEL_PREDICATES = (RDFS + "label", SKOS + "prefLabel", "http://schema.org/name")
ALIAS_PREDICATES = (SKOS + "altLabel", "http://schema.org/alternateName")
DESCRIPTION_PREDICATES = (RDFS + "comment", SKOS + "definition", "http://schema.org/description")


def _unescape(text: str, path: Path, lineno: int) -> str:
    def sub(m: re.Match) -> str:
        if m.group(3) is not None:
            if m.group(3) not in _SIMPLE_ESCAPES:
                raise KGFormatError(f"unknown escape '\\{m.group(3)}' in literal", path, lineno)
            return _SIMPLE_ESCAPES[m.group(3)]
        code = int(m.group(1) or m.group(2), 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise KGFormatError(f"escape '{m.group(0)}' is not a Unicode character", path, lineno)
        return chr(code)

    return _ESCAPE.sub(sub, text) if "\\" in text else text


def local_name(iri: str) -> str:
    """The last segment of ``iri`` after a ``/``, ``#`` or ``:`` (the IRI itself if that is empty)."""
    return re.split(r"[/#:]", iri.rstrip("/#"))[-1] or iri


def in_language(tag: str, language: str) -> bool:
    """Whether the BCP-47 ``tag`` falls under ``language`` (lowercase): equal to it or extending it."""
    tag = tag.lower()
    return tag == language or tag.startswith(language + "-")


def read_ntriples(path: PathLike, *, language: str | None = "en") -> KnowledgeGraph:
    """Read an N-Triples file.

    IRI and blank-node objects give triples. Literal objects describe their subject:
    ``rdfs:label``/``skos:prefLabel``/``schema:name`` give the label (further ones become
    aliases), ``skos:altLabel``/``schema:alternateName`` aliases, and
    ``rdfs:comment``/``skos:definition``/``schema:description`` the description. Other
    literals (numbers, dates) are not graph edges; they are counted in
    ``kg.info["literals_skipped"]`` and reported with a warning. Entities without a
    label get their IRI's local name.

    Args:
        path: the ``.nt`` file.
        language: keep only language-tagged names in this language, a BCP-47 prefix
            compared case-insensitively (``"en"`` keeps ``@en``, ``@EN`` and ``@en-GB``;
            untagged names are always kept); ``None`` keeps all. (default: ``"en"``)
    """
    path = Path(path)
    language = language.lower() if language else None
    entities, relations = Vocab(), Vocab()
    ids: list[tuple[int, int, int]] = []
    label_forms: dict[str, list[str]] = {}
    alias_forms: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    skipped = other_language = 0
    for lineno, line in text_lines(path):
        if line.lstrip().startswith("#"):
            continue
        m = _NT_LINE.match(line)
        if m is None:
            raise KGFormatError("not a valid N-Triples statement '<s> <p> <o> .'", path, lineno)
        subject = m.group(1) if m.group(1) is not None else m.group(2)
        predicate = m.group(3)
        obj = m.group(4) if m.group(4) is not None else m.group(5)
        if obj is not None:
            ids.append((entities.add(subject), relations.add(predicate), entities.add(obj)))
            continue
        value, lang = _unescape(m.group(6), path, lineno), m.group(7)
        is_name = predicate in LABEL_PREDICATES or predicate in ALIAS_PREDICATES
        if (is_name or predicate in DESCRIPTION_PREDICATES) and language and lang and not in_language(lang, language):
            other_language += 1
            continue
        entities.add(subject)
        if predicate in LABEL_PREDICATES:
            label_forms.setdefault(subject, []).append(value)
        elif predicate in ALIAS_PREDICATES:
            alias_forms.setdefault(subject, []).append(value)
        elif predicate in DESCRIPTION_PREDICATES:
            descriptions.setdefault(subject, value)
        else:
            skipped += 1
    if not ids:
        raise KGFormatError("contains no triples between resources", path)
    if skipped:
        warnings.warn(f"{path}: {skipped} literal-valued triples are not graph edges and were skipped.", stacklevel=2)
    labels = {}
    for key in entities.keys:
        forms = list(dict.fromkeys([*label_forms.get(key, ()), *alias_forms.get(key, ())]))
        label = forms[0] if forms else local_name(key)
        labels[key] = (label, tuple(forms[1:]), descriptions.get(key, ""))
    info = {
        "source": str(path),
        "reader": "read_ntriples",
        "literals_skipped": skipped,
        "names_in_other_languages": other_language,
    }
    return finish(entities, relations, {"train": ids}, info, labels)
