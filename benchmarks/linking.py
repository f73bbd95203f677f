"""Throughput of :class:`kgpeft.linking.EntityLinker` on WordNet, next to two naive linkers.

Links WordNet's example sentences against all of WordNet's lemmas, and measures, in the
same run and against the same aliases, two naive linkers that a first version might use:

* ``per-alias find``: for every alias, ``str.find`` over the lowercased text, with the
  same word-boundary check.
* ``regex alternation``: one compiled ``re`` pattern ``(?<!\\w)(?:alias1|alias2|...)(?!\\w)``,
  longest alias first. Its compile time is reported apart.

Both are far slower, so they link an evenly spaced subset of the sentences (their rate
is per sentence, so it needs no scaling). Neither resolves overlaps nor builds mentions,
which only flatters them. Linking is single-threaded Python, so every number is for one
core. Each timing is the median of ``--repeats`` runs. The linker gets the texts in
batches of ``--batch-size``, as in a training step, and its results are dropped after
each batch. Nothing is asserted.

Usage::

    python benchmarks/linking.py [--num-sentences 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable, Sequence

from kgpeft.datasets.wordnet import load_wordnet
from kgpeft.linking import EntityLinker, normalize


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def spread(items: Sequence[str], n: int) -> list[str]:
    """``n`` evenly spaced items."""
    return list(items[:: max(1, len(items) // n)][:n])


def per_alias_find(aliases: Sequence[str], texts: Sequence[str]) -> int:
    """Count boundary-respecting occurrences of every alias in every text, one ``str.find`` scan per alias."""
    found = 0
    for text in texts:
        text = text.lower()
        for alias in aliases:
            i = text.find(alias)
            while i >= 0:
                j = i + len(alias)
                if (i == 0 or not text[i - 1].isalnum()) and (j == len(text) or not text[j].isalnum()):
                    found += 1
                i = text.find(alias, i + 1)
    return found


def regex_alternation(aliases: Sequence[str]) -> re.Pattern[str]:
    alternation = "|".join(re.escape(a) for a in sorted(aliases, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-sentences", type=int, default=10_000, help="WordNet example sentences to link")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per link_batch call")
    parser.add_argument("--repeats", type=int, default=5, help="timings per measurement; the median is reported")
    parser.add_argument("--find-sentences", type=int, default=20, help="sentences for the per-alias find")
    parser.add_argument("--regex-sentences", type=int, default=200, help="sentences for the regex alternation")
    args = parser.parse_args()

    start = time.perf_counter()
    kg = load_wordnet()
    load_s = time.perf_counter() - start
    sentences = [s for examples in kg.extras["examples"] for s in examples][: args.num_sentences]
    chars = sum(map(len, sentences)) / len(sentences)
    print(f"{kg.info['name']}: {kg.num_entities:,} synsets, loaded in {load_s:.1f} s")
    print(f"texts: {len(sentences):,} example sentences, {chars:.1f} characters on average")

    start = time.perf_counter()
    linker = EntityLinker(kg)
    build_s = time.perf_counter() - start
    print(f"{linker!r}, built in {build_s:.1f} s")

    batches = [sentences[i : i + args.batch_size] for i in range(0, len(sentences), args.batch_size)]
    mentions = sum(len(m) for batch in batches for m in linker.link_batch(batch))

    def link_all() -> None:
        for batch in batches:
            linker.link_batch(batch)

    linker_s = median_seconds(link_all, args.repeats)
    linker_rate = len(sentences) / linker_s
    print(
        f"\nEntityLinker: {linker_rate:,.0f} sentences/s ({linker_s / len(sentences) * 1e6:.1f} us per sentence, "
        f"{mentions / len(sentences):.2f} mentions per sentence), median of {args.repeats}"
    )

    # The naive linkers search the same aliases: WordNet's lemmas, normalised, without the
    # ones that EntityLinker skips (stopwords, shorter than its min_alias_length, no letter or digit).
    aliases = sorted(
        {
            a
            for e in range(kg.num_entities)
            for a in map(normalize, kg.names(e))
            if len(a) >= linker.min_alias_length and a not in linker.stopwords and any(map(str.isalnum, a))
        }
    )
    print(f"naive linkers over the same {len(aliases):,} aliases, on a subset of the sentences:")

    texts = spread(sentences, args.find_sentences)
    find_s = median_seconds(lambda: per_alias_find(aliases, texts), args.repeats)
    find_rate = len(texts) / find_s
    print(f"  per-alias find:    {find_rate:,.1f} sentences/s (on {len(texts)} sentences)")

    start = time.perf_counter()
    pattern = regex_alternation(aliases)
    compile_s = time.perf_counter() - start
    texts = [s.lower() for s in spread(sentences, args.regex_sentences)]
    regex_s = median_seconds(lambda: [pattern.findall(t) for t in texts], args.repeats)
    regex_rate = len(texts) / regex_s
    print(
        f"  regex alternation: {regex_rate:,.1f} sentences/s (on {len(texts)} sentences; compiled in {compile_s:.1f} s)"
    )

    print(
        f"\nEntityLinker is {linker_rate / find_rate:,.0f}x the per-alias find and {linker_rate / regex_rate:,.0f}x "
        f"the regex alternation"
    )


if __name__ == "__main__":
    main()
