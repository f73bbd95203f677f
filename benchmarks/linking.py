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
core. The three run in turn within each round (``benchmarks/timing.py``); rates are
medians over rounds and speed-ups medians of per-round ratios, each with its 95%
bootstrap interval, and rounds go on until the speed-ups' intervals are within +-5%
(or ``--max-rounds``). The linker gets the texts in batches of ``--batch-size``, as in a
training step, and its results are dropped after each batch. Nothing is asserted.

Usage::

    python -m benchmarks.linking [--num-sentences 10000] [--max-rounds 20]
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from benchmarks.harness import Benchmark
from benchmarks.timing import interval, ratio_interval, rounds
from kgpeft.datasets.wordnet import load_wordnet
from kgpeft.linking import EntityLinker, normalize


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


def benchmark() -> Benchmark:
    bench = Benchmark("linking", __doc__, seeds=None)
    parser = bench.parser
    parser.add_argument("--num-sentences", type=int, default=10_000, help="WordNet example sentences to link")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per link_batch call")
    parser.add_argument("--max-rounds", type=int, default=20, help="most timed rounds")
    parser.add_argument("--find-sentences", type=int, default=20, help="sentences for the per-alias find")
    parser.add_argument("--regex-sentences", type=int, default=200, help="sentences for the regex alternation")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)

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
    find_texts = spread(sentences, args.find_sentences)
    start = time.perf_counter()
    pattern = regex_alternation(aliases)
    compile_s = time.perf_counter() - start
    regex_texts = [s.lower() for s in spread(sentences, args.regex_sentences)]

    counts = {"EntityLinker": len(sentences), "per-alias find": len(find_texts), "regex": len(regex_texts)}
    times = rounds(
        {
            "EntityLinker": link_all,
            "per-alias find": lambda: per_alias_find(aliases, find_texts),
            "regex": lambda: [pattern.findall(t) for t in regex_texts],
        },
        most=args.max_rounds,
    )
    per_sentence = {name: [t / counts[name] for t in ts] for name, ts in times.items()}  # seconds per sentence
    rate, rate_ci = interval([1 / t for t in per_sentence["EntityLinker"]])
    print(
        f"\nEntityLinker: {rate:,.0f} +-{rate_ci:,.0f} sentences/s ({1e6 / rate:.1f} us per sentence, "
        f"{mentions / len(sentences):.2f} mentions per sentence), median of {len(times['regex'])} rounds"
    )
    bench.add(
        linker="EntityLinker",
        sentences=len(sentences),
        sentences_per_s=rate,
        sentences_per_s_ci95=rate_ci,
        mentions_per_sentence=mentions / len(sentences),
        rounds=len(times["regex"]),
        build_s=build_s,
    )
    print(f"naive linkers over the same {len(aliases):,} aliases, on a subset of the sentences:")
    for name, texts in (("per-alias find", find_texts), ("regex", regex_texts)):
        naive, naive_ci = interval([1 / t for t in per_sentence[name]])
        speedup, speedup_ci = ratio_interval(per_sentence[name], per_sentence["EntityLinker"])
        compiled = f"; compiled in {compile_s:.1f} s" if name == "regex" else ""
        bench.add(
            linker=name,
            sentences=len(texts),
            sentences_per_s=naive,
            sentences_per_s_ci95=naive_ci,
            rounds=len(times[name]),
            build_s=compile_s if name == "regex" else None,
            entitylinker_speedup=speedup,
            entitylinker_speedup_ci95=speedup_ci,
        )
        print(
            f"  {name + ':':<16} {naive:,.1f} +-{naive_ci:,.1f} sentences/s (on {len(texts)} sentences{compiled}); "
            f"EntityLinker is {speedup:,.0f}x +-{speedup_ci:,.0f} faster"
        )
    bench.write(args, graph=kg.info["name"], aliases=len(aliases), load_s=load_s)


if __name__ == "__main__":
    main()
