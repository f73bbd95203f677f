"""How :class:`~kgpeft.linking.EntityLinker` folds names and text before matching them.

Both are NFKC-normalised and casefolded (:func:`normalize`); the automaton then searches a
copy of the text with every non-word character turned into a space (:func:`fold`), and a
map from that copy back to the original offsets is kept wherever folding changed a length.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import accumulate


def _is_word_char(c: str) -> bool:
    # Combining marks count as word characters, so that "e" does not match inside a
    # decomposed "é" (e + U+0301), nor "i" inside "İ".casefold() == "i̇".
    return c.isalnum() or unicodedata.category(c)[0] == "M"


class _FoldTable(dict):
    """A :meth:`str.translate` table that casefolds and turns whitespace and ``_`` into ``" "``.

    It is filled on first use of each character, so that all of Unicode works without
    building a table for all of it. Casefolding (rather than :meth:`str.lower`) has no
    context rules (``lower`` turns a final ``Σ`` into ``ς``), so a span folds the same
    alone as inside its text, and it is Unicode's recommended caseless match.
    """

    def __missing__(self, o: int) -> str:
        c = chr(o)
        self[o] = folded = " " if c.isspace() or c == "_" else c.casefold()
        return folded


class _BoundaryTable(dict):
    """A :meth:`str.translate` table that keeps word characters and turns every other character into ``" "``."""

    def __missing__(self, o: int) -> str:
        c = chr(o)
        self[o] = kept = c if _is_word_char(c) else " "
        return kept


_FOLD = _FoldTable()
_BOUNDARY = _BoundaryTable()
# The same two tables as bytes, for ASCII text: bytes.translate is several times faster than
# str.translate, which looks every character up in a dict.
_ASCII_FOLD = bytes(ord(_FOLD[o]) for o in range(128)) + bytes(range(128, 256))
_ASCII_BOUNDARY = bytes(ord(_BOUNDARY[ord(_FOLD[o])]) for o in range(128)) + bytes(range(128, 256))
_SPACE_RUN = re.compile(r"[\s_]{2,}")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
#: The Unicode normal form in which names and text are compared.
NORMAL_FORM = "NFKC"


def normalize(text: str) -> str:
    """The form in which :class:`EntityLinker` compares names and text.

    Unicode NFKC-normalised (``"e"`` + U+0301 is ``"é"``, ``"ﬁ"`` is ``"fi"``, a no-break space
    is a space), casefolded (a stronger :meth:`str.lower`), ``_`` read as a space, runs of
    whitespace collapsed to one space, leading and trailing whitespace removed. Punctuation is kept.

    Example:
        >>> normalize("  New_York\\n  Cafe\\u0301 ")
        'new york café'
    """
    if text.isascii():  # ASCII is NFKC-normalised already, and bytes.translate is faster
        return " ".join(text.encode().translate(_ASCII_FOLD).decode().split())
    return " ".join(unicodedata.normalize(NORMAL_FORM, text).translate(_FOLD).split())


def alias_pattern(alias: str) -> str:
    """The normalised ``alias`` with every non-word character turned into a space (``alias`` itself if none)."""
    # A normalised alias is folded already, so the ASCII table (fold, then boundary) keeps it as is.
    pattern = alias.encode().translate(_ASCII_BOUNDARY).decode() if alias.isascii() else alias.translate(_BOUNDARY)
    return alias if pattern == alias else pattern


def _normalized_pieces(text: str) -> list[str]:
    """Per character of ``text``, the folded NFKC form of the piece of ``text`` it ends, or ``""``.

    ``text`` is cut before each character that is not a combining mark and does not compose with
    the piece before it (as Hangul jamo do), so each piece normalises alone as it does in context;
    a piece's form is kept at its last character so that both of its ends map back to ``text``.
    """
    pieces = [""] * len(text)
    start, form = 0, ""
    for i, c in enumerate(text):
        if i > start:
            if not c.isascii():  # an ASCII character neither combines nor composes
                joined = unicodedata.normalize(NORMAL_FORM, text[start : i + 1])
                if unicodedata.combining(c) or joined != form + unicodedata.normalize(NORMAL_FORM, c):
                    form = joined
                    continue
            pieces[i - 1] = form.translate(_FOLD)
            start = i
        form = unicodedata.normalize(NORMAL_FORM, c)
    if text:
        pieces[-1] = form.translate(_FOLD)
    return pieces


def fold(text: str) -> tuple[str, str, list[int] | None]:
    """``text`` in the two forms that :meth:`EntityLinker.link` searches, and the map back to its offsets.

    Returns the text as :func:`normalize` has it but not stripped; that text with every
    non-word character turned into a space and a space added at both ends; and ``cum``,
    where ``cum[i]`` is the position in the first form at which the piece holding original
    character ``i`` starts (every character of a piece but the last folds to ``""``), or
    ``None`` when the two align one to one.
    """
    if text.isascii():  # ASCII is NFKC-normalised already
        raw = text.encode()
        folded = raw.translate(_ASCII_FOLD).decode()
        if "  " not in folded:
            return (folded, f" {raw.translate(_ASCII_BOUNDARY).decode()} ", None)
        pieces = list(folded)
    elif unicodedata.is_normalized(NORMAL_FORM, text):
        folded = text.translate(_FOLD)
        if len(folded) == len(text) and "  " not in folded:
            return (folded, f" {folded.translate(_BOUNDARY)} ", None)
        pieces = list(map(_FOLD.__getitem__, map(ord, text)))
    else:
        # Normalise only around non-ASCII runs: an ASCII character always starts a piece, but
        # may be the base of a mark that follows it.
        pieces = list(map(_FOLD.__getitem__, map(ord, text)))
        for run in _NON_ASCII_RUN.finditer(text):
            lo, hi = max(run.start() - 1, 0), run.end()
            if not unicodedata.is_normalized(NORMAL_FORM, text[lo:hi]):
                pieces[lo:hi] = _normalized_pieces(text[lo:hi])
    # Only when normalising or casefolding changed the length ("e" + U+0301 -> "é", "ß" -> "ss",
    # "İ" -> "i̇") or whitespace needs collapsing: keep one piece per original character (a run
    # of whitespace keeps its last), so offsets map back.
    for run in _SPACE_RUN.finditer(text):
        pieces[run.start() : run.end() - 1] = [""] * (run.end() - run.start() - 1)
    folded = "".join(pieces)
    return (folded, f" {folded.translate(_BOUNDARY)} ", [0, *accumulate(map(len, pieces))])


def fold_batch(texts: list[str]) -> tuple[str, str, list[tuple[str, list[int] | None, int, int]]]:
    """``texts`` one after the other, in the forms that :meth:`EntityLinker.link` searches, and the maps back.

    Returns the padded forms of :func:`fold` in one string, which one pass of the automaton
    searches; the normalised forms, each character at its position in the first string (so
    the pads are spaces there too); and per text ``(text, cum, base, limit)``: the text, the
    ``cum`` of :func:`fold`, the position of its first character in both strings, and that
    of the pad after its last one, so that a match whose ``pad`` is past ``limit`` is in a
    later text. A match that starts before the first character of the text it ends in spans
    two texts (through the pads between them), and is dropped.
    """
    joined = "\0".join(texts)
    if joined.isascii():  # fold's fast path, for all the texts at once
        raw = joined.encode()
        folded = raw.translate(_ASCII_FOLD).decode()
        # "\0" is neither a word character nor whitespace: it becomes the one pad between two
        # texts, and neither makes nor hides a run of whitespace.
        if "  " not in folded:
            segments, base = [], 1
            for text in texts:
                segments.append((text, None, base, base + len(text)))
                base += len(text) + 1
            return (f" {raw.translate(_ASCII_BOUNDARY).decode()} ", f" {folded} ", segments)
    segments, paddeds, normals, base = [], [], [], 1
    for text in texts:
        normal, padded, cum = fold(text)
        segments.append((text, cum, base, base + len(normal)))
        paddeds.append(padded)
        normals.append(normal)
        base += len(padded)  # each text has both its pads here
    return ("".join(paddeds), f" {'  '.join(normals)} ", segments)
