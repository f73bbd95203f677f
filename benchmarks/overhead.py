"""The training cost of KG-LoRA against plain peft LoRA (and PyG's G-Retriever) on SmolLM2-135M-Instruct.

One step is what a training loop does per batch: forward, backward and an AdamW step on
the trainable parameters. Every variant gets the same batch: ``--batch-size`` texts made
of WordNet glosses and examples, ``--seq-len`` tokens each (no padding), linked to WordNet
and expanded to subgraphs of at most ``--max-nodes`` nodes
(``RetrievalConfig``'s fan-out, ``[16, 8]``). The variants:

- ``lora``: ``peft.get_peft_model(model, LoraConfig(r=8, target_modules=[q, k, v, o]))``.
- ``token``, ``cross``, ``prefix``: ``get_kg_peft_model(model, KGLoraConfig(r=8, knowledge_mode=...))``
  with its defaults (the same q, k, v, o projections, text node features, a 2-layer
  R-GCN of width 128).
- ``gretriever``: PyG's ``torch_geometric.llm.GRetriever`` on the same LLM (loaded from the
  local folder by PyG's ``LLM`` wrapper), a 2-layer ``GAT`` of width 128 over the same
  subgraphs, node features the mean input embedding of each entity's label (computed once,
  as G-Retriever precomputes the embeddings of its node texts). GRetriever's own
  ``use_lora=True`` adapts only q and v, adds LoRA dropout and turns on gradient
  checkpointing (``prepare_model_for_kbit_training``), so its generator is replaced by the
  same plain peft LoRA as ``lora``: only the graph path differs. It reads each text
  through its prompt template, so its sequences are a little longer (printed).

- ``lora+facts`` and the memory designs: the main job's design against its reference. Each text's
  first 2 facts (``rank_facts`` over its subgraph) are written before it (``"Facts: a; b.\\n"``,
  masked from the loss, so the same text tokens are labelled) for plain LoRA, and handed to
  KG-LoRA in ``memory`` mode as key/value slots; :class:`~kgpeft.data.KnowledgeCollator` batches
  both, as in training. ``memory`` is LLaMA-Adapter's own softmax beside the attention;
  ``memory+prefix`` reads the slots as a key/value prefix in the text's softmax, gates held open;
  ``memory+trained`` encodes them together with the adapter's LoRA and back-propagates through them
  (the main job's design, whose facts also carry the facts block's framing, a few tokens more each);
  ``memory+projections`` is the same whose facts' gradient reaches only each layer's key and value LoRA
  (``memory_encoder='projections'``: a forward pass over the fact tokens, no backward).
  Each is compared both with ``lora`` (the same prompt tokens) and with ``lora+facts`` (the same
  facts), every other variant with ``lora``.

Time: the steps are timed in fresh processes, one after another (``--processes``, 4 at
least), as pyperf does: interleaving evens out load that comes and goes, but not what holds
for a whole process (where ASLR puts the heap, the allocator's state, the host's state for
the minutes a process runs). Two earlier runs in one process each gave ``lora+facts`` 1.26x
+-0.01 and 1.41x +-0.05: intervals over the rounds of one process cannot see such a
difference, intervals over several processes include it. In each process all variants live
side by side, each on its own copy of the base model, and are stepped in turn (one step of
each, then the next round; ``--rounds`` timed rounds after ``--warmup``), so that load
from other processes on a shared CPU spreads over all of them. A step ratio is the median
of the per-round ratios to the reference's step in the same round, with a 95% bootstrap
interval that resamples the processes and the rounds in them
(``benchmarks.timing.grouped_ratio_interval``), so that processes that disagree widen it; each
process's own median ratio is printed beside it. Processes are added (up to
``--max-processes``, or until ``--max-seconds`` have passed) until every interval is
within ``--target-width`` (0.05). Nothing is asserted. The
knowledge preparation (linking, retrieval, token alignment) belongs to the collator,
which can run in DataLoader workers, so it is timed apart from the step.

Memory: each variant also runs ``--warmup`` + 1 steps in a subprocess of its own (this
script with ``--memory-of``), ``--memory-repeats`` times, every variant in turn; the median
and the range are printed, and a ratio pairs the n-th process of a variant with the n-th of
its reference. Once the model, the KG and the batch are built, the
subprocess hands freed memory back to the OS (``gc``, ``malloc_trim``) and resets the
kernel's peak-RSS mark (``/proc/self/clear_refs``). "training MB" is the peak RSS during
the steps (``VmHWM``) minus the RSS at the reset: activations, gradients and optimizer
state, not the frozen weights. "peak RSS MB" is that peak itself, with the resident
weights, WordNet and the tokenizer. Linux only.

The allocator decides what RSS means. glibc serves blocks above its mmap threshold with
``mmap`` and returns them to the OS when freed, but by default it raises that threshold
each time such a block is freed (up to 32 MiB), after which blocks of that size come from
the heap and stay resident when freed; which tensors end up there depends on the order of
allocations, so the same step measured 1.02x or 1.24x LoRA's memory (``token``) in two
settings of the same environment. ``--malloc fixed`` (the default) starts the memory
subprocesses with ``MALLOC_MMAP_THRESHOLD_=65536``, which pins the threshold: every tensor
above 64 KiB leaves the RSS when it is freed, so the peak follows the live tensors and is
reproducible. ``--malloc glibc`` measures glibc's default behaviour instead (what a plain
``python train.py`` sees, with its run-to-run spread).

    python -m benchmarks.overhead
    python -m benchmarks.overhead --processes 2 --rounds 4 --variants lora token cross
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks.harness import Benchmark, run_module
from benchmarks.timing import grouped_ratio_interval, rounds
from kgpeft import KGLoraConfig, KnowledgeGraph, get_kg_peft_model
from kgpeft.data import KnowledgeCollator
from kgpeft.datasets import load
from kgpeft.linking import align_batch
from kgpeft.pretrained import packaged_model_path
from kgpeft.retrieval import RetrievalConfig, batch_node_index, format_fact, render_facts
from kgpeft.selection import rank_facts
from kgpeft.tuners import KnowledgeBatch

MODEL = "SmolLM2-135M-Instruct"
QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
#: The memory designs (``KGLoraConfig`` settings): LLaMA-Adapter's own softmax; the slots as a key/value prefix
#: in the text's softmax, gates held open, encoded by the frozen model; the same encoded by the adapter's LoRA
#: with gradient (``memory_encoder='trained'``, the main job's design).
PREFIX = {
    "memory_positions": "prefix",
    "memory_softmax": "shared",
    "memory_gate_opening": 0.99,
    "memory_gate_scale": 1.0,
}
TRAINED = {**PREFIX, "memory_encoder": "trained", "memory_facts_together": True}
#: The main design, the facts' gradient reaching only each layer's key/value LoRA: no backward over the fact tokens.
PROJECTIONS = {**TRAINED, "memory_encoder": "projections"}
#: The same read by each layer's own attention function, once (``memory_softmax='inline'``): the main design is
#: ``inline+trained``
INLINE = {"memory_softmax": "inline"}
MEMORY_DESIGNS = {
    "memory": {},
    "memory+prefix": PREFIX,
    "memory+trained": TRAINED,
    "memory+projections": PROJECTIONS,
    "inline+prefix": {**PREFIX, **INLINE},
    "inline+trained": {**TRAINED, **INLINE},
}
VARIANTS = ("lora", "token", "cross", "prefix", "gretriever", "lora+facts", *MEMORY_DESIGNS)
# What each variant is compared with: plain LoRA at the same prompt tokens, and for memory mode also
# LoRA reading the same 2 facts as prompt text.
REFERENCES = {name: ("lora", "lora+facts") for name in MEMORY_DESIGNS}
# step time ratio
TIME_TARGETS = {("token", "lora"): 1.05, ("cross", "lora"): 1.25, **{(name, "lora"): 1.15 for name in MEMORY_DESIGNS}}
MEMORY_TARGETS = {("memory", "lora"): 1.05, ("token", "lora"): 1.05}  # training memory ratio, likewise
NUM_FACTS = 2


def wordnet_texts(kg, tokenizer, batch_size: int, seq_len: int, seed: int) -> list[str]:
    """``batch_size`` texts of glosses and examples of consecutive synsets, cut at ``seq_len`` tokens."""
    examples = kg.extras["examples"]
    starts = np.random.default_rng(seed).choice(kg.num_entities - 1000, batch_size, replace=False)
    texts = []
    for start in starts:
        parts, i = [], int(start)
        while len(tokenizer(" ".join(parts))["input_ids"]) < seq_len:
            parts.append(f"{kg.labels[i]}: {kg.descriptions[i]}." + "".join(f' "{e}".' for e in examples[i]))
            i += 1
        text = " ".join(parts)
        end = tokenizer(text, return_offsets_mapping=True)["offset_mapping"][seq_len - 1][1]
        texts.append(text[:end])
    return texts


class Collator:
    """What a DataLoader's ``collate_fn`` does: tokenize, link, retrieve, align."""

    def __init__(self, kg, tokenizer, seq_len: int, max_nodes: int) -> None:
        self.tokenizer = tokenizer
        self.seq_len = seq_len
        retrieval = RetrievalConfig(max_nodes=max_nodes)
        self.linker = retrieval.build_linker(kg)
        self.retriever = retrieval.build_retriever(kg)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        kwargs = {"padding": "max_length", "truncation": True, "max_length": self.seq_len}
        return dict(self.tokenizer(texts, return_tensors="pt", return_offsets_mapping=True, **kwargs))

    def knowledge(self, texts: list[str], offsets: torch.Tensor) -> tuple[KnowledgeBatch, dict[str, float]]:
        """The knowledge of a tokenized batch, and the seconds each part took."""
        t0 = time.perf_counter()
        mentions = self.linker.link_batch(texts)
        t1 = time.perf_counter()
        graph = self.retriever([[m.entity for m in ms] for ms in mentions])
        t2 = time.perf_counter()
        token_entity = align_batch(mentions, offsets)  # (B, T)
        index = batch_node_index(graph, torch.arange(len(texts))[:, None], token_entity)  # (B, T)
        t3 = time.perf_counter()
        return KnowledgeBatch(graph, index), {"link": t1 - t0, "retrieve": t2 - t1, "align + index": t3 - t2}


def label_features(kg, tokenizer, embedding: nn.Embedding, n_id: torch.Tensor) -> torch.Tensor:
    """G-Retriever's node features: each entity label's mean frozen input embedding, ``(N, d_model)``."""
    ids = tokenizer([kg.labels[i] for i in n_id.tolist()], add_special_tokens=False)["input_ids"]
    lengths = torch.tensor([len(x) for x in ids])
    flat = torch.tensor([t for x in ids for t in x])
    with torch.no_grad():
        return F.embedding_bag(flat, embedding.weight, torch.cumsum(lengths, 0) - lengths, mode="mean")


@dataclass
class Inputs:
    """The one batch all variants train on, and what made it."""

    kg: KnowledgeGraph
    tokenizer: Any
    texts: list[str]
    enc: dict[str, torch.Tensor]  # input_ids, attention_mask: (B, T)
    knowledge: KnowledgeBatch
    prep_seconds: list[dict[str, float]]  # per repeat of the collator's knowledge step: seconds per part
    facts_enc: dict[str, torch.Tensor]  # the texts with their NUM_FACTS facts written before them
    fact_knowledge: KnowledgeBatch  # the knowledge with those facts as memory slots


def make_inputs(args: argparse.Namespace, repeats: int = 1) -> Inputs:
    """Build the batch (from the one ``--seeds``); run the collator's knowledge step ``repeats`` times to time it."""
    (seed,) = args.seeds
    kg = load("wordnet")
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_path(MODEL))
    collator = Collator(kg, tokenizer, args.seq_len, args.max_nodes)
    texts = wordnet_texts(kg, tokenizer, args.batch_size, args.seq_len, seed)
    enc = collator.tokenize(texts)
    offsets = enc.pop("offset_mapping")
    runs = [collator.knowledge(texts, offsets) for _ in range(repeats)]
    knowledge = runs[0][0]
    facts_enc, fact_knowledge = with_facts(kg, tokenizer, texts, enc, offsets, knowledge, collator)
    return Inputs(kg, tokenizer, texts, enc, knowledge, [seconds for _, seconds in runs], facts_enc, fact_knowledge)


def with_facts(kg, tokenizer, texts, enc, offsets, knowledge: KnowledgeBatch, collator: Collator):
    """The batch with each text's first ``NUM_FACTS`` facts (``rank_facts``) written before it, its
    prefix masked from the loss, and the knowledge with the same facts as memory slots: the features
    of both batched by :class:`~kgpeft.data.KnowledgeCollator`, as in training (the prompts
    left-padded, so every text ends at the same position)."""
    graphs = knowledge.graph.to_data_list()
    mentions = collator.linker.link_batch(texts)
    token_entity = align_batch(mentions, offsets)  # (B, T)
    triples = [rank_facts(g, {m.entity for m in ms})[:NUM_FACTS] for g, ms in zip(graphs, mentions, strict=True)]
    prompts, memories = [], []
    ids, masks = enc["input_ids"].tolist(), enc["attention_mask"].tolist()
    for facts, graph, row, mask, entities in zip(triples, graphs, ids, masks, token_entity.tolist(), strict=True):
        tokens = [t for t, m in zip(row, mask, strict=True) if m]
        # lora+facts: "Facts: a; b.\n" + text, the same text tokens labelled as in the other variants
        prefix = tokenizer(render_facts(kg, facts), add_special_tokens=False)["input_ids"]
        prompts.append({"input_ids": prefix + tokens, "labels": [-100] * len(prefix) + tokens})
        # memory: the same facts as the memory slots' token ids
        fact_texts = [format_fact(kg, t) for t in facts]
        fact_ids = tokenizer(fact_texts, add_special_tokens=False)["input_ids"] if fact_texts else []
        memories.append({"input_ids": row, "token_entity": entities, "graph": graph, "fact_ids": fact_ids})
    pad = tokenizer.pad_token_id or 0
    facts_enc = KnowledgeCollator(pad, "left", with_knowledge=False)(prompts)
    return facts_enc, KnowledgeCollator(pad)(memories)["knowledge"]


def build(
    variant: str, base: nn.Module | None, inputs: Inputs, max_nodes: int
) -> tuple[nn.Module, Callable[[], torch.Tensor]]:
    """The model of ``variant`` on ``base``, and a function computing its loss on the batch.

    ``gretriever`` loads the LLM itself, through PyG's ``LLM`` wrapper (``base`` is unused).
    """
    kg, tokenizer, texts, enc, knowledge = inputs.kg, inputs.tokenizer, inputs.texts, inputs.enc, inputs.knowledge
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    model_inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
    if variant == "lora":
        model = get_peft_model(base, LoraConfig(r=8, target_modules=QKVO))
        return model, lambda: model(**model_inputs).loss
    if variant == "lora+facts":
        model = get_peft_model(base, LoraConfig(r=8, target_modules=QKVO))
        return model, lambda: model(**inputs.facts_enc).loss
    if variant in MEMORY_DESIGNS:
        config = KGLoraConfig(r=8, target_modules=QKVO, knowledge_mode="memory", **MEMORY_DESIGNS[variant])
        model = get_kg_peft_model(base, config, kg, tokenizer)
        return model, lambda: model(**model_inputs, knowledge=inputs.fact_knowledge).loss
    if variant == "gretriever":
        from torch_geometric.llm import LLM, GRetriever
        from torch_geometric.nn.models import GAT

        # num_params given, so that LLM does not ask the Hugging Face hub for the model's size
        llm = LLM(str(packaged_model_path(MODEL)), num_params=0.135, dtype=torch.float32)
        gnn = GAT(llm.word_embedding.embedding_dim, 128, num_layers=2, out_channels=128, heads=4)
        model = GRetriever(llm, gnn, use_lora=False)
        model.llm_generator = get_peft_model(llm.llm, LoraConfig(r=8, target_modules=QKVO))
        graph = knowledge.graph
        x = label_features(kg, llm.tokenizer, llm.word_embedding, graph.n_id)  # (N, d_model)
        answers = [""] * len(texts)
        return model, lambda: model(texts, x, graph.edge_index, graph.batch, answers)
    config = KGLoraConfig(r=8, knowledge_mode=variant)
    model = get_kg_peft_model(base, config, kg, tokenizer)
    return model, lambda: model(**model_inputs, knowledge=knowledge).loss


def train_step(loss_fn: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer) -> float:
    """One forward, backward and optimizer step; returns its seconds."""
    t0 = time.perf_counter()
    loss_fn().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return list({id(p): p for p in model.parameters() if p.requires_grad}.values())


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line.")


def _reset_peak_rss() -> int:
    """Hand freed memory back to the OS, reset the peak-RSS mark, and return the RSS (KiB)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def measure_memory(args: argparse.Namespace) -> dict[str, float]:
    """In a subprocess: peak RSS over ``warmup + 1`` steps of ``args.memory_of``, and its part above the set-up."""
    torch.manual_seed(args.seeds[0])
    inputs = make_inputs(args)
    base = None if args.memory_of == "gretriever" else AutoModelForCausalLM.from_pretrained(packaged_model_path(MODEL))
    model, loss_fn = build(args.memory_of, base, inputs, args.max_nodes)
    model.train()
    optimizer = torch.optim.AdamW(trainable_parameters(model), lr=1e-4)
    before = _reset_peak_rss()
    for _ in range(args.warmup + 1):
        train_step(loss_fn, optimizer)
    peak = _status_kb("VmHWM")
    return {"peak_mb": peak / 1024, "train_mb": (peak - before) / 1024}


def time_in_process(args: argparse.Namespace) -> dict[str, Any]:
    """In a fresh process: ``args.warmup`` + ``args.rounds`` interleaved rounds of a step of every variant.

    Returns the seconds of each timed step per variant, each variant's trainable parameters
    and a note, and why a variant could not be built (GRetriever may not run offline).
    """
    torch.manual_seed(args.seeds[0])
    inputs = make_inputs(args)
    base = AutoModelForCausalLM.from_pretrained(packaged_model_path(MODEL))
    steps, models, errors, info = {}, {}, {}, {}
    for variant in args.variants:
        try:
            model, loss_fn = build(
                variant, None if variant == "gretriever" else copy.deepcopy(base), inputs, args.max_nodes
            )
        except Exception as e:
            errors[variant] = f"{type(e).__name__}: {e}"
            continue
        model.train()
        optimizer = torch.optim.AdamW(trainable_parameters(model), lr=1e-4)
        steps[variant] = lambda loss_fn=loss_fn, optimizer=optimizer: train_step(loss_fn, optimizer)
        models[variant] = model
    times = rounds(steps, warmup=args.warmup, least=args.rounds, most=args.rounds, target=0.0, max_seconds=float("inf"))
    for variant, model in models.items():
        note = f"  ({model.seq_length_stats[-1]} tokens per sample)" if variant == "gretriever" else ""  # once run
        info[variant] = {"trainable": sum(p.numel() for p in trainable_parameters(model)), "note": note}
    return {"times": times, "errors": errors, "info": info}


def _run_json(
    args: argparse.Namespace, flag: list[str], names: tuple[str, ...], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """This benchmark in a fresh process with ``flag`` and the settings ``names`` of ``args``: its last JSON line."""
    command = list(flag)
    for name in names:
        value = getattr(args, name)
        command += [f"--{name.replace('_', '-')}", *(map(str, value) if isinstance(value, list) else [str(value)])]
    done = run_module("overhead", command, env)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


_SETTINGS = ("warmup", "batch_size", "seq_len", "max_nodes", "threads", "seeds")


# glibc's mmap threshold, pinned (no dynamic raise): freed tensors above 64 KiB leave the RSS at once.
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def memory_in_subprocess(args: argparse.Namespace, variant: str) -> dict[str, float | str]:
    env = {k: v for k, v in os.environ.items() if k not in FIXED_MALLOC}
    if args.malloc == "fixed":
        env.update(FIXED_MALLOC)
    return _run_json(args, ["--memory-of", variant], _SETTINGS, env)


def memory_table(args: argparse.Namespace, memory: dict[str, list[dict[str, float | str]]]) -> dict[str, Any]:
    """Print each variant's training memory (median and range of its processes) and its ratios to the references."""
    print(
        f"\nmemory: {args.memory_repeats} fresh processes per variant, --malloc {args.malloc}; median [min-max], "
        "a ratio pairs the n-th process of each"
    )
    print(f"{'variant':<11} {'ref':<11} {'peak RSS MB':>12} {'training MB':>22} {'MB vs ref':>22}")
    results: dict[str, Any] = {}
    for variant in args.variants:
        runs = [m for m in memory[variant] if "error" not in m]
        if not runs:
            if memory[variant]:
                print(f"{variant:<11} memory subprocesses failed: {memory[variant][0].get('error')}")
            continue
        train = [m["train_mb"] for m in runs]
        peak = statistics.median(m["peak_mb"] for m in runs)
        results[variant] = {"peak_mb": peak, "train_mb": statistics.median(train), "runs": memory[variant]}
        mb = f"{statistics.median(train):,.0f} [{min(train):,.0f}-{max(train):,.0f}]"
        for reference in references_of(variant) if variant != "lora" else ("",):
            pairs = zip(memory[variant], memory.get(reference, [{"error": ""}] * len(memory[variant])), strict=True)
            ratios = [m["train_mb"] / r["train_mb"] for m, r in pairs if "error" not in m and "error" not in r]
            if not ratios:
                print(f"{variant:<11} {reference:<11} {peak:>12,.0f} {mb:>22} {'-':>22}")
                continue
            target = MEMORY_TARGETS.get((variant, reference))
            text = f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
            text += f" (<= {target:.2f})" if target else ""
            print(f"{variant:<11} {reference:<11} {peak:>12,.0f} {mb:>22} {text:>22}")
            results[variant].setdefault("memory_ratio", {})[reference] = {
                "median": statistics.median(ratios),
                "per_process": ratios,
            }
    return results


def times_in_subprocess(args: argparse.Namespace) -> dict[str, Any]:
    return _run_json(args, ["--time-worker"], (*_SETTINGS, "rounds", "variants"))


def references_of(variant: str) -> tuple[str, ...]:
    return REFERENCES.get(variant, ("lora",))


def benchmark() -> Benchmark:
    bench = Benchmark("overhead", __doc__, threads=2, one_seed=True)
    parser = bench.parser
    parser.add_argument("--processes", type=int, default=4, help="least fresh processes that time the steps")
    parser.add_argument("--max-processes", type=int, default=6, help="most fresh processes that time the steps")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds (one step of each variant) per process")
    parser.add_argument(
        "--target-width", type=float, default=0.05, help="stop once every step ratio's 95%% interval is within +-this"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=1800, help="start no more timing processes after this many seconds"
    )
    parser.add_argument("--memory-repeats", type=int, default=3, help="fresh processes per variant for memory")
    parser.add_argument(
        "--malloc",
        choices=("fixed", "glibc"),
        default="fixed",
        help="glibc's mmap threshold in the memory processes: pinned at 64 KiB (reproducible) or glibc's dynamic one",
    )
    parser.add_argument("--memory-only", action="store_true", help="measure memory only, no step times")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds before them, in each process")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sample")
    parser.add_argument("--max-nodes", type=int, default=64, help="most subgraph nodes per sample")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--memory-of", choices=VARIANTS, help=argparse.SUPPRESS)  # set in the subprocesses
    parser.add_argument("--time-worker", action="store_true", help=argparse.SUPPRESS)  # likewise
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    """Measures memory, then step times, each in fresh processes (a long function: the two tables and their
    stopping rules read best in one place)."""
    bench = benchmark()
    args = bench.parse(argv)
    if args.memory_of is not None:
        print(json.dumps(measure_memory(args)))
        return
    if args.time_worker:
        print(json.dumps(time_in_process(args)))
        return

    torch.manual_seed(args.seeds[0])
    inputs = make_inputs(args, repeats=args.warmup + args.rounds)
    graph, index = inputs.knowledge.graph, inputs.knowledge.token_node_index
    nodes = graph.ptr.diff()
    print(
        f"{MODEL}, batch {args.batch_size} x {args.seq_len} tokens, threads={args.threads}, {args.rounds} rounds "
        f"after {args.warmup} warm-up in each of at least {args.processes} fresh processes; torch {torch.__version__}"
    )
    print(
        f"knowledge: {nodes.float().mean():.1f} nodes per sample (max {int(nodes.max())}), "
        f"{graph.edge_index.size(1)} edges in the batch, {100 * (index >= 0).float().mean():.0f}% of tokens linked"
    )

    memory: dict[str, list[dict[str, float | str]]] = {v: [] for v in args.variants}
    for repeat in range(args.memory_repeats):  # each variant in a fresh process, in turn
        for variant in args.variants:
            memory[variant].append(memory_in_subprocess(args, variant))
        print(f"  measured the memory of every variant ({repeat + 1} of {args.memory_repeats})", flush=True)
    memory_results = memory_table(args, memory)
    if args.memory_only:
        memory_rows(bench, memory_results)
        bench.write(args, memory=memory_results)
        return

    # The steps, in fresh processes one after another: per variant, a list of round times per process.
    times: dict[str, list[list[float]]] = {}
    errors: dict[str, str] = {}
    info: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for process in range(max(args.processes, args.max_processes)):
        result = times_in_subprocess(args)
        if "error" in result:
            raise SystemExit(f"a timing process failed: {result['error']}")
        errors.update(result["errors"])
        info.update(result["info"])
        for variant, seconds in result["times"].items():
            times.setdefault(variant, []).append(seconds)
        widths = [grouped_ratio_interval(times[v], times[r])[1] for v in times for r in references_of(v) if r in times]
        widest = max((w for w in widths if w == w), default=0.0)
        print(
            f"  process {process + 1}: {args.rounds} rounds; widest 95% interval of a step ratio +-{widest:.3f}",
            flush=True,
        )
        if process + 1 < args.processes:
            continue
        if widest <= args.target_width:
            break
        if time.perf_counter() - started > args.max_seconds:
            print(
                f"  no more processes after the time budget ({args.max_seconds:.0f} s), before every interval is "
                f"within +-{args.target_width}"
            )
            break

    processes = len(next(iter(times.values()))) if times else 0
    print(
        f"\n{processes} processes x {args.rounds} timed rounds; step ratios are medians of per-round ratios to the "
        "reference in the same round, with 95% bootstrap intervals over processes and rounds (the last column: "
        "each process's median ratio)"
    )
    print(f"{'variant':<11} {'ref':<11} {'step s':>7} {'step vs ref [95% CI]':>30} {'trainable':>10}  per process")
    results = {}
    for variant in args.variants:
        if variant in errors:
            print(f"{variant:<11} failed: {errors[variant]}")
            continue
        step = statistics.median(t for group in times[variant] for t in group)
        trainable, note = info[variant]["trainable"], info[variant]["note"]
        versus = {}
        for reference in references_of(variant):
            if reference not in times:  # not run, or failed
                continue
            ref_times = times[reference]
            ratio, half = grouped_ratio_interval(times[variant], ref_times)
            per_process = [
                statistics.median(np.asarray(t) / np.asarray(r)) for t, r in zip(times[variant], ref_times, strict=True)
            ]
            target = TIME_TARGETS.get((variant, reference))
            step_text = f"{ratio:.3f}x +-{half:.3f}" + (f" (<= {target:.2f})" if target else "")
            spread = "/".join(f"{r:.3f}" for r in per_process)
            row = f"{variant:<11} {reference:<11} {step:>7.2f} {step_text:>30} {trainable:>10,}"
            print(f"{row}  {spread}{note}")
            versus[reference] = {"step_ratio": ratio, "step_ratio_ci95": half, "step_ratio_per_process": per_process}
        results[variant] = {"versus": versus, "step_s": step, "step_times": times[variant]}
    for variant, result in results.items():
        for reference, versus in result["versus"].items():
            bench.add(
                table="step",
                variant=variant,
                reference=reference,
                step_s=result["step_s"],
                step_ratio=versus["step_ratio"],
                step_ratio_ci95=versus["step_ratio_ci95"],
                trainable=info[variant]["trainable"],
            )
    memory_rows(bench, memory_results)

    prep = inputs.prep_seconds[args.warmup :]
    total = statistics.median(sum(p.values()) for p in prep)
    parts = ", ".join(f"{k} {statistics.median(p[k] for p in prep):.3f}" for k in prep[0])
    print(f"knowledge data prep per batch (collator, outside the step): {total:.3f} s ({parts})")
    features_s = None
    if "gretriever" in times:
        base = AutoModelForCausalLM.from_pretrained(packaged_model_path(MODEL))
        t0 = time.perf_counter()
        label_features(inputs.kg, inputs.tokenizer, base.get_input_embeddings(), graph.n_id)
        features_s = time.perf_counter() - t0
        print(f"gretriever node features per batch (collator, outside the step): {features_s:.3f} s")
    extra = {"processes": processes, "rounds": args.rounds, "knowledge_prep_s": total}
    bench.write(args, **extra, gretriever_features_s=features_s, variants=results, memory=memory_results)


def memory_rows(bench: Benchmark, memory: dict[str, Any]) -> None:
    """A row per variant of ``memory_table``'s results: medians of its processes, and its ratios to references."""
    for variant, m in memory.items():
        ratios = {f"train_mb_vs_{ref}": r["median"] for ref, r in m.get("memory_ratio", {}).items()}
        bench.add(table="memory", variant=variant, peak_mb=m["peak_mb"], train_mb=m["train_mb"], **ratios)


if __name__ == "__main__":
    main()
