"""What each stage costs as the knowledge graph grows: 10k to 5M entities on one machine.

For each size, a synthetic KG (:func:`kgpeft.datasets.synthetic`: power-law degrees, about 4
triples and 2 aliases per entity, labels from WordNet lemmas) is written as TSV files once
and then, in a fresh process per size, end to end:

- **read**: ``read_pykeen_folder(..., labels=entities.tsv)``, the streaming reader;
- **save** and **reload**: ``KnowledgeGraph.save``, then ``KnowledgeGraph.load(mmap=True)`` in
  another fresh process: its time, the private memory it adds ("reload MB") and the pages of
  the mapped files it reads ("mapped MB": page cache, shared and reclaimable; the load checks
  the string tables against their digests);
- **linker**: building the :class:`~kgpeft.linking.EntityLinker` (time and the memory it
  adds), loading it back from :meth:`~kgpeft.linking.EntityLinker.save`'s tables, and
  linking throughput on one thread over sentences that name 2-3 entities;
- **retrieval**: :class:`~kgpeft.retrieval.SubgraphRetriever` with the main job's caps
  (``max_nodes=32``), per batch of 32 linked sentences, median of rounds;
- **step**: a training step (forward, backward, AdamW) of KG-LoRA in the main job's design
  (memory mode, 2 facts), in token mode (R-GCN over text node features) and of plain peft
  LoRA on SmolLM2-135M-Instruct, same batch, interleaved rounds, median; and the one-off
  tokenising of every entity's label that token mode's node features need, first into the
  on-disk cache and then from it (:func:`kgpeft.nn.label_tokens.label_token_ids`);
- **peak RSS** of the whole process.

``--sizes wordnet`` adds the real WordNet (117,659 entities) as the reference row that
retrieval and step times are compared with. Printed as a table, written to ``--output`` (a row
per size, rewritten after each) and plotted log-log beside it (``benchmarks/results/scale.png``);
the KGs and linkers it writes go under ``--data-dir``. Nothing is asserted (timings on a shared
machine are noisy: compare within one run).

    python -m benchmarks.scale                                   # wordnet, 10k, 100k, 1M, 5M
    python -m benchmarks.scale --sizes wordnet 10000 100000 --threads 2
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Benchmark, run_module

DEFAULT_SIZES = ["wordnet", "10000", "100000", "1000000", "5000000"]
MODEL = "SmolLM2-135M-Instruct"
TEMPLATES = (
    "What does {a} have to do with {b}?",
    "Tell me how {a} relates to {b} and {c}.",
    "Is {a} a kind of {b}?",
)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def dataset_folder(root: Path, size: int, seed: int) -> tuple[Path, float | None]:
    """The synthetic KG of ``size`` entities under ``root`` (generated once), and the seconds generating took."""
    from kgpeft.datasets import synthetic

    folder = root / f"synthetic-{size}-seed{seed}"
    if (folder / "synthetic.json").is_file():
        return folder, None
    _, seconds = timed(synthetic, folder, size, seed=seed, overwrite=True)
    return folder, seconds


def reload_in_fresh_process(path: Path) -> dict[str, float]:
    code = (
        "import sys, time, json\n"
        "from kgpeft import KnowledgeGraph\n"
        "def rss():  # private (anonymous) and file-backed resident MB\n"
        "    f = dict(l.split(':') for l in open('/proc/self/status') if l.startswith('Rss'))\n"
        "    return int(f['RssAnon'].split()[0]) / 1024, int(f['RssFile'].split()[0]) / 1024\n"
        "anon, file = rss(); t0 = time.perf_counter()\n"
        "kg = KnowledgeGraph.load(sys.argv[1], mmap=True)\n"
        "seconds = time.perf_counter() - t0\n"
        "kg.labels[kg.num_entities // 2]; kg.csr().rowptr[kg.num_entities // 2]\n"
        "anon2, file2 = rss()\n"
        "print(json.dumps({'seconds': seconds, 'rss_mb': anon2 - anon, 'mapped_mb': file2 - file}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def sentences(kg, count: int, seed: int) -> list[str]:
    """``count`` sentences naming 2-3 entities each, picked in proportion to their degree (as text mentions them)."""
    rng = np.random.default_rng(seed)
    degree = kg.degree.numpy().astype(np.float64) + 1
    picks = rng.choice(kg.num_entities, size=(count, 3), p=degree / degree.sum())
    templates = rng.integers(0, len(TEMPLATES), count)
    return [
        TEMPLATES[t].format(a=kg.labels[a], b=kg.labels[b], c=kg.labels[c])
        for t, (a, b, c) in zip(templates.tolist(), picks.tolist(), strict=True)
    ]


def qa_examples(kg, count: int, seed: int) -> list[dict[str, str]]:
    """Questions about an entity with one of its neighbours' labels as the answer (a step needs targets)."""
    rng = np.random.default_rng(seed)
    csr = kg.csr()
    degree = csr.rowptr.diff().numpy()
    subjects = rng.choice(np.flatnonzero(degree > 0), count)
    rows = []
    for s in subjects.tolist():
        neighbour = int(csr.col[int(csr.rowptr[s])])
        rows.append({"text": f"What is {kg.labels[s]} connected to?", "answer": " " + kg.labels[neighbour]})
    return rows


def one_size(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every stage for one KG, in this (fresh) process."""
    from kgpeft import KnowledgeGraph
    from kgpeft.graph import read_pykeen_folder
    from kgpeft.linking import EntityLinker
    from kgpeft.retrieval import RetrievalConfig

    row: dict[str, Any] = {"name": name}
    start_rss = rss_mb()
    root = Path(args.data_dir)
    (seed,) = args.seeds
    if name == "wordnet":
        from kgpeft.datasets import load

        kg, row["read_s"] = timed(load, "wordnet")
    else:
        folder, row["generate_s"] = dataset_folder(root, int(name), seed)
        kg, row["read_s"] = timed(read_pykeen_folder, folder, unknown="error", labels=folder / "entities.tsv")
    row.update(entities=kg.num_entities, triples=kg.num_triples)
    row["read_rss_mb"] = rss_mb() - start_rss
    saved = root / f"saved-{name}"
    _, row["save_s"] = timed(kg.save, saved, overwrite=True)
    row["save_mb"] = sum(f.stat().st_size for f in saved.iterdir()) / 2**20
    reload = reload_in_fresh_process(saved)
    row["reload_s"], row["reload_rss_mb"], row["reload_mapped_mb"] = (
        reload["seconds"],
        reload["rss_mb"],
        reload["mapped_mb"],
    )
    del kg
    gc.collect()
    kg = KnowledgeGraph.load(saved, mmap=True)  # what a user of a saved KG works with from here on

    before = rss_mb()
    linker, row["linker_build_s"] = timed(EntityLinker, kg)
    row["linker_mb"] = rss_mb() - before
    row["aliases"] = linker.num_aliases
    linker_dir = root / f"linker-{name}"
    linker.save(linker_dir, overwrite=True)
    _, row["linker_load_s"] = timed(EntityLinker.load, linker_dir, kg)
    texts = sentences(kg, args.sentences, seed)
    linker.link_batch(texts[:1000])  # warm-up
    mentions, seconds = timed(linker.link_batch, texts)
    row["link_per_s"] = len(texts) / seconds
    row["mentions_per_sentence"] = sum(map(len, mentions)) / len(texts)

    retrieval = RetrievalConfig(max_nodes=32, num_facts=2, memory_facts=2)
    retriever = retrieval.build_retriever(kg)
    seed_sets = [list(dict.fromkeys(m.entity for m in ms)) for ms in mentions]
    batches = [seed_sets[i : i + 32] for i in range(0, min(len(seed_sets), 32 * args.batches), 32)]
    retriever(batches[0])  # warm-up
    rounds = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for b in batches:
            retriever(b)
        rounds.append((time.perf_counter() - t0) / len(batches) * 1e3)
    row["retrieve_ms"] = statistics.median(rounds)

    if args.steps > 0:
        row.update(train_steps(kg, linker, retrieval, args))
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def train_steps(kg, linker, retrieval, args: argparse.Namespace) -> dict[str, float]:
    """Median step seconds of KG-LoRA (memory mode) and plain LoRA on the same batch, interleaved."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kgpeft import KGLoraConfig, get_kg_peft_model
    from kgpeft.data import KnowledgeCollator, KnowledgeDataset
    from kgpeft.nn.label_tokens import label_token_ids
    from kgpeft.pretrained import packaged_model_path

    path = packaged_model_path(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    out = {}
    # Every label through the tokenizer (what token mode's node features need), then from the cache.
    with tempfile.TemporaryDirectory() as cache:
        _, out["label_tokens_s"] = timed(label_token_ids, kg, tokenizer, cache, min_entities=0)
        _, out["label_tokens_cached_s"] = timed(label_token_ids, kg, tokenizer, cache, min_entities=0)
    rows = qa_examples(kg, args.batch_size, args.seeds[0])
    data = KnowledgeDataset(rows, tokenizer, kg, retrieval=retrieval, linker=linker, max_length=64)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batch = KnowledgeCollator(pad)([data[i] for i in range(len(data))])
    knowledge = batch.pop("knowledge")
    torch.manual_seed(args.seeds[0])
    qkvo = ["q_proj", "k_proj", "v_proj", "o_proj"]
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(path), LoraConfig(r=8, target_modules=qkvo))
    models = [("lora", lora, {})]
    for mode in args.modes:
        config = KGLoraConfig(r=8, target_modules=qkvo, knowledge_mode=mode)
        base = AutoModelForCausalLM.from_pretrained(path)
        model, out[f"setup_{mode}_s"] = timed(get_kg_peft_model, base, config, kg, tokenizer)
        models.append((mode, model, {"knowledge": knowledge}))
    steps = {}
    for name, model, kwargs in models:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-4)

        def step(model=model, kwargs=kwargs, optimizer=optimizer) -> float:
            t0 = time.perf_counter()
            model(**batch, **kwargs).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return time.perf_counter() - t0

        steps[name] = step
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(args.warmup + args.step_rounds):
        for name, step in steps.items():
            seconds = step()
            if round_ >= args.warmup:
                times[name].append(seconds)
    out.update({f"step_{name}_s": statistics.median(t) for name, t in times.items()})
    return out


COLUMNS = [
    ("name", "KG", "{}"),
    ("entities", "entities", "{:,}"),
    ("triples", "triples", "{:,}"),
    ("aliases", "aliases", "{:,}"),
    ("read_s", "read s", "{:.1f}"),
    ("save_s", "save s", "{:.1f}"),
    ("reload_s", "reload s", "{:.2f}"),
    ("reload_rss_mb", "reload MB", "{:.0f}"),
    ("reload_mapped_mb", "mapped MB", "{:.0f}"),
    ("linker_build_s", "linker s", "{:.1f}"),
    ("linker_mb", "linker MB", "{:.0f}"),
    ("linker_load_s", "linker load s", "{:.1f}"),
    ("link_per_s", "link sent/s", "{:,.0f}"),
    ("retrieve_ms", "retrieve ms/32", "{:.2f}"),
    ("label_tokens_s", "label tokens s", "{:.1f}"),
    ("label_tokens_cached_s", "cached s", "{:.2f}"),
    ("step_lora_s", "LoRA step s", "{:.2f}"),
    ("step_memory_s", "memory step s", "{:.2f}"),
    ("step_token_s", "token step s", "{:.2f}"),
    ("peak_rss_mb", "peak RSS MB", "{:,.0f}"),
]


def table(rows: list[dict[str, Any]]) -> str:
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [fmt.format(row[key]) if row.get(key) is not None else "-" for key, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    synthetic = sorted((r for r in rows if r["name"] != "wordnet"), key=lambda r: r["entities"])
    reference = next((r for r in rows if r["name"] == "wordnet"), None)
    panels = [
        (
            "seconds",
            [
                ("generate_s", "generate"),
                ("read_s", "read"),
                ("save_s", "save"),
                ("reload_s", "reload (mmap)"),
                ("linker_build_s", "linker build"),
                ("linker_load_s", "linker load"),
                ("label_tokens_s", "label tokens"),
                ("label_tokens_cached_s", "label tokens (cached)"),
            ],
        ),
        ("MB", [("peak_rss_mb", "peak RSS"), ("linker_mb", "linker"), ("reload_rss_mb", "reload")]),
        (
            "per batch / step",
            [
                ("retrieve_ms", "retrieval ms / 32"),
                ("step_lora_s", "LoRA step s"),
                ("step_memory_s", "memory step s"),
                ("step_token_s", "token step s"),
            ],
        ),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.5))
    x = [r["entities"] for r in synthetic]
    for ax, (ylabel, series) in zip(axes, panels, strict=True):
        for key, label in series:
            ys = [r.get(key) for r in synthetic]
            if all(y is not None and y > 0 for y in ys):
                (line,) = ax.loglog(x, ys, "o-", label=label)
                if reference is not None and reference.get(key):
                    ax.loglog([reference["entities"]], [reference[key]], "*", ms=12, color=line.get_color())
        ax.set_xlabel("entities (synthetic KG, ~4 triples each; * = WordNet)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("kgpeft cost per stage as the KG grows")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def benchmark() -> Benchmark:
    bench = Benchmark("scale", __doc__, one_seed=True)
    parser = bench.parser
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="entity counts, or 'wordnet'")
    parser.add_argument("--data-dir", default="runs/scale", help="where the KGs and linkers are written")
    parser.add_argument("--sentences", type=int, default=20_000, help="sentences linked for the throughput")
    parser.add_argument("--batches", type=int, default=50, help="retrieval batches of 32 per round")
    parser.add_argument("--rounds", type=int, default=5, help="retrieval rounds (median)")
    parser.add_argument("--steps", type=int, default=1, help="0 skips the training steps")
    parser.add_argument("--step-rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--modes", nargs="+", default=["memory", "token"], help="KG-LoRA knowledge modes stepped against LoRA"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # set in the per-size subprocesses
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    """``--threads`` holds for torch; linking always uses one."""
    bench = benchmark()
    args = bench.parse(argv)
    if args.one is not None:
        print(json.dumps(one_size(args.one, args)))
        return

    rows = bench.rows
    for name in args.sizes:
        t0 = time.perf_counter()
        done = run_module("scale", ["--one", name, *(sys.argv[1:] if argv is None else argv)])
        if done.returncode != 0:
            print(f"{name}: failed after {time.perf_counter() - t0:.0f} s\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        row = bench.add(**json.loads(done.stdout.strip().splitlines()[-1]), wall_s=time.perf_counter() - t0)
        print(f"{name}: done in {row['wall_s']:.0f} s, peak RSS {row['peak_rss_mb']:,.0f} MB", flush=True)
        bench.write(args)  # after each size: a long run's finished sizes are kept
    print()
    print(table(rows))
    reference = next((r for r in rows if r["name"] == "wordnet"), None)
    if reference is not None:
        for row in rows:
            if row is reference:
                continue
            ratios = [
                f"{key.removesuffix('_s').removesuffix('_ms')} {row[key] / reference[key]:.2f}x"
                for key in ("retrieve_ms", "step_lora_s", "step_memory_s", "step_token_s", "link_per_s")
                if row.get(key) and reference.get(key)
            ]
            print(f"{row['name']} vs WordNet: " + ", ".join(ratios))
    figure = Path(args.output).with_suffix(".png")
    plot(rows, figure)
    print(f"\nwritten: {figure}")


if __name__ == "__main__":
    main()
