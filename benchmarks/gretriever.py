"""The peer baseline of the knowledge-quality table: PyG's G-Retriever on the main job, with its controls.

PyG's ``torch_geometric.llm.GRetriever`` trained and scored on exactly what
``benchmarks/knowledge_quality.py`` gives kgpeft's designs: the main job's config
(``configs/demo.yaml``: SmolLM2-135M-Instruct, 2,400 training and 200 held-out questions, 120
steps of 16, the same learning rate, warmup, schedule and gradient clipping), the same linked
entities and retrieved subgraphs (kgpeft's ``KnowledgeDataset``, ``retrieval.max_nodes``), and
plain peft LoRA on the same projections at the same budget-matched rank as the ``lora`` row.

G-Retriever as published, on that subgraph:

1. node and edge texts (entity labels, relation names) and the question are embedded, here
   by the frozen LLM's mean input embedding (the paper uses a sentence encoder; none is
   packaged offline);
2. PyG's ``retrieval_via_pcst`` prunes the subgraph to a prize-collecting Steiner tree around
   the top-3 nodes and top-5 edges by cosine similarity to the question (the paper's WebQSP
   settings), which needs ``pcst_fast`` and ``pandas`` (``pip install kgpeft[benchmarks]``);
3. a 2-layer GAT (4 heads, width 256, relation embeddings as edge features) encodes the
   pruned graph; its mean-pooled state, projected by G-Retriever's MLP, is one soft token
   before the prompt;
4. ``gretriever+text`` also writes the pruned graph as G-Retriever's CSV text (nodes, then
   ``src,edge_attr,dst`` edges) into the prompt; ``gretriever`` is the graph token alone.

Each variant is scored with its own subgraph, another question's (the same seeded
derangement as kgpeft's ``shuffled`` control, pruned against the question being asked) and
none (no graph token and no text). Prompts go through G-Retriever's chat template, so they
are longer than kgpeft's (printed). Nothing is asserted; every run writes ``gretriever.json`` under
``--output-dir`` (which ``benchmarks/quality_table.py`` reads) and its headline numbers to ``--output``.

    .venv/bin/python -m benchmarks.gretriever --tasks hypernym_qa relation_qa --seeds 0
"""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from peft import LoraConfig, get_peft_model
from torch_geometric.data import Batch, Data
from torch_geometric.llm import LLM, GRetriever
from torch_geometric.llm.utils.backend_utils import retrieval_via_pcst
from torch_geometric.nn.models import GAT
from transformers import get_scheduler

from benchmarks.harness import Benchmark
from kgpeft.evaluation import compute_metrics
from kgpeft.inference import first_line
from kgpeft.pipeline import JobConfig, Variant, prepare
from kgpeft.pipeline.variants import lora_rank_for_budget
from kgpeft.pretrained import packaged_model_path
from kgpeft.tasks import get_task
from kgpeft.tuners.targets import resolve_target_modules

#: kgpeft reads its datasets through a variant; G-Retriever needs the plain one (no facts, no memory).
PLAIN = Variant("plain", adapter="lora")
SYSTEM_PROMPT = "Answer the question in a few words."
CONTROLS = ("correct", "shuffled", "none")


class Embedder:
    """Mean input embedding of a text under the frozen LLM, cached per text."""

    def __init__(self, tokenizer, embedding: torch.nn.Embedding) -> None:
        self.tokenizer, self.embedding, self.cache = tokenizer, embedding, {}

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for text, ids in zip(missing, self.tokenizer(missing, add_special_tokens=False)["input_ids"], strict=True):
                ids = ids or [self.tokenizer.eos_token_id]
                self.cache[text] = self.embedding(torch.tensor(ids)).float().mean(0)
        if not texts:
            return torch.zeros(0, self.embedding.embedding_dim)
        return torch.stack([self.cache[t] for t in texts])


def pcst_graph(kg, graph: Data, question: str, embed: Embedder) -> tuple[Data, str]:
    """G-Retriever's retrieval on one subgraph: the PCST-pruned graph with features, and its CSV text."""
    if graph.num_nodes == 0:
        return Data(x=torch.zeros(0, embed.embedding.embedding_dim), edge_index=torch.zeros(2, 0, dtype=torch.long)), ""
    labels = [kg.labels[e] for e in graph.n_id.tolist()]
    forward = graph.edge_type < kg.num_relations  # each triple once, head to tail, as G-Retriever's graphs are
    edge_index = graph.edge_index[:, forward]
    relations = [kg.relation_keys[r].replace("_", " ") for r in graph.edge_type[forward].tolist()]
    data = Data(
        x=embed(labels),
        edge_index=edge_index,
        edge_attr=embed(relations),
        node_idx=list(range(len(labels))),
        edge_idx=list(range(len(relations))),
    )
    nodes = pd.DataFrame({"node_id": range(len(labels)), "node_attr": labels})
    src, dst = edge_index.tolist()
    edges = pd.DataFrame({"src": src, "edge_attr": relations, "dst": dst})
    pruned, text = retrieval_via_pcst(data, embed([question])[0], nodes, edges, topk=3, topk_e=5, cost_e=0.5)
    return Data(x=pruned.x, edge_index=pruned.edge_index, edge_attr=pruned.edge_attr), text.strip()


def length_chunks(indices: list[int], texts: list[str] | None, size: int = 4) -> list[list[int]]:
    """``indices`` in chunks of ``size`` by the length of their ``texts`` (one chunk of all without texts)."""
    if texts is None:
        return [indices]
    ordered = sorted(indices, key=lambda i: len(texts[i]))
    return [ordered[k : k + size] for k in range(0, len(ordered), size)]


def graph_inputs(graphs: list[Data], dim: int) -> dict[str, torch.Tensor]:
    """A batch's graphs as GRetriever takes them (``x``, ``edge_index``, ``batch``, ``edge_attr``)."""
    fixed = [
        Data(
            x=g.x,
            edge_index=g.edge_index,
            edge_attr=g.edge_attr if g.get("edge_attr") is not None else torch.zeros(0, dim),
            num_nodes=g.x.size(0),
        )
        for g in graphs
    ]
    batch = Batch.from_data_list(fixed)
    return {"x": batch.x, "edge_index": batch.edge_index, "batch": batch.batch, "edge_attr": batch.edge_attr}


def prepared_split(job, split: str, control: str, embed: Embedder) -> tuple[list, list[Data], list[str]]:
    """A split's examples, their PCST graphs and texts, under a knowledge ``control``."""
    data = job.dataset(split, PLAIN, with_target=split == "train", control=control)
    pruned = [pcst_graph(job.kg, g, e.text, embed) for e, g in zip(data.examples, data.graphs, strict=True)]
    return data.examples, [g for g, _ in pruned], [t for _, t in pruned]


def build(job) -> GRetriever:
    """G-Retriever on a fresh copy of the job's LLM, its generator the ``lora`` row's peft LoRA."""
    config = job.config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        llm = LLM(
            str(packaged_model_path(config.model)), num_params=0.135, dtype=torch.float32, sys_prompt=SYSTEM_PROMPT
        )
    dim = llm.word_embedding.embedding_dim
    torch.manual_seed(config.seed)
    gnn = GAT(dim, 256, num_layers=2, out_channels=256, heads=4, edge_dim=dim)
    model = GRetriever(llm, gnn, use_lora=False)
    targets = resolve_target_modules(job.base, config.adapter.target_modules)
    r = lora_rank_for_budget(job.base, targets, job.kg_lora_budget())
    torch.manual_seed(config.seed)
    model.llm_generator = get_peft_model(llm.llm, LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets))
    return model


def train(model: GRetriever, job, examples, graphs, texts, with_text: bool) -> tuple[float, int]:
    """The job's training settings on G-Retriever; returns seconds per step and the steps taken."""
    t = job.config.training
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay)
    scheduler = get_scheduler(
        t.lr_scheduler_type, optimizer, num_warmup_steps=t.warmup_steps, num_training_steps=t.max_steps
    )
    order, rng = [], random.Random(job.config.seed)
    dim = model.word_embedding.embedding_dim
    model.train()
    t0 = time.perf_counter()
    for step in range(t.max_steps):
        if len(order) < t.per_device_train_batch_size:
            epoch = list(range(len(examples)))
            rng.shuffle(epoch)
            order += epoch
        batch, order = order[: t.per_device_train_batch_size], order[t.per_device_train_batch_size :]
        # PyG pads a batch to its longest prompt, and a few PCST texts run to ~500 tokens: the batch
        # goes through in chunks of similar length, each chunk's mean loss weighted by its share of
        # the batch's answer tokens, which is the gradient of the whole batch's mean loss.
        answers = {i: examples[i].answer.strip() for i in batch}
        weight = {i: len(model.llm.tokenizer(answers[i] + model.llm.tokenizer.eos_token).input_ids) for i in batch}
        total, loss_value = sum(weight.values()), 0.0
        for chunk in length_chunks(batch, texts if with_text else None):
            loss = model(
                [examples[i].text for i in chunk],
                **graph_inputs([graphs[i] for i in chunk], dim),
                label=[answers[i] for i in chunk],
                additional_text_context=[texts[i] for i in chunk] if with_text else None,
            ) * (sum(weight[i] for i in chunk) / total)
            loss.backward()
            loss_value += loss.item()
        if t.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 20 == 0:
            print(f"  step {step:>4}  loss {loss_value:.3f}", flush=True)
    return (time.perf_counter() - t0) / t.max_steps, t.max_steps


@torch.no_grad()
def evaluate(model: GRetriever, job, examples, graphs, texts, with_text: bool, metric: str) -> dict:
    """The task's metrics of greedy answers (the first generated line), with the predictions."""
    model.eval()
    size, dim = job.config.training.per_device_eval_batch_size, model.word_embedding.embedding_dim
    answers: dict[int, str] = {}
    for lo in range(0, len(examples), size):
        chunks = length_chunks(list(range(lo, min(lo + size, len(examples)))), texts if with_text else None, size=8)
        for idx in chunks:
            out = model.inference(
                [examples[i].text for i in idx],
                **graph_inputs([graphs[i] for i in idx], dim),
                additional_text_context=[texts[i] for i in idx] if with_text else None,
                max_out_tokens=job.config.max_new_tokens,
            )
            answers.update(zip(idx, (first_line(p) for p in out), strict=True))
    predictions = [answers[i] for i in range(len(examples))]
    if metric == "classification":  # a generated class name, scored over the gold classes, as the pipeline does
        gold = [e.answer for e in examples]
        metrics = compute_metrics(metric, predictions, gold, labels=sorted(set(gold)))
    else:
        metrics = compute_metrics(metric, predictions, [list(e.answers) for e in examples])
    return {**metrics, "predictions": predictions}


def answer_recall(examples, texts: list[str]) -> float:
    """% of questions whose PCST text names a gold answer as one of its nodes."""

    def nodes(text: str) -> set[str]:
        rows = text.lower().split("\n\n")[0].splitlines()[1:]  # "node_id,node_attr" rows, before the edges
        return {row.split(",", 1)[1] for row in rows if "," in row}

    hits = sum(bool(nodes(t) & {a.lower() for a in e.answers}) for e, t in zip(examples, texts, strict=True))
    return 100 * hits / max(len(examples), 1)


def run_task(base: JobConfig, task: str, seed: int, variants: list[str], output: Path) -> dict:
    training = dataclasses.replace(base.training, output_dir=str(output / f"{task}-seed{seed}"))
    config = dataclasses.replace(base, task=task, seed=seed, training=training, selection=None, variants=[PLAIN])
    job = prepare(config)
    metric = get_task(task).metric
    embed = Embedder(job.tokenizer, job.base.get_input_embeddings())
    train_split = prepared_split(job, "train", "correct", embed)
    test = {c: prepared_split(job, "test", c, embed) for c in CONTROLS}
    tokens = [len(job.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in test["correct"][2]]
    recall = answer_recall(test["correct"][0], test["correct"][2])
    print(
        f"{task} seed {seed}: PCST text {statistics.mean(tokens):.1f} tokens per test question; "
        f"a gold answer is one of its nodes for {recall:.1f}% of them"
    )
    if not variants:
        return {"task": task, "seed": seed, "pcst_text_tokens": statistics.mean(tokens), "answer_recall": recall}
    rows = []
    for name in variants:
        with_text = name == "gretriever+text"
        model = build(job)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"{name}: {trainable:,} trainable parameters")
        seconds, steps = train(model, job, *train_split, with_text=with_text)
        results = {c: evaluate(model, job, *test[c], with_text=with_text, metric=metric) for c in CONTROLS}
        headline = "exact_match" if "exact_match" in results["correct"] else next(iter(results["correct"]))
        row = {
            "name": name,
            "trainable": trainable,
            "seconds_per_step": seconds,
            "steps": steps,
            "metrics": results,
            "reliance": 100 * (results["correct"][headline] - results["shuffled"][headline]),
        }
        print(
            f"{name}: "
            + " / ".join(f"{c} {100 * results[c][headline]:.1f}" for c in CONTROLS)
            + f"  reliance {row['reliance']:.1f}  {seconds:.2f} s/step"
        )
        rows.append(row)
    folder = Path(config.training.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    report = {
        "task": task,
        "seed": seed,
        "metric": headline,
        "pcst_text_tokens": statistics.mean(tokens),
        "answer_recall": recall,
        "variants": rows,
    }
    (folder / "gretriever.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def benchmark() -> Benchmark:
    bench = Benchmark("gretriever", __doc__, config="configs/demo.yaml", threads=2)
    parser = bench.parser
    parser.add_argument("--tasks", nargs="+", default=["hypernym_qa", "relation_qa"])
    parser.add_argument(
        "--variants", nargs="*", default=["gretriever", "gretriever+text"], help="none: only the PCST statistics"
    )
    parser.add_argument("--output-dir", type=Path, default=Path("runs/knowledge_quality"), help="where runs train")
    parser.add_argument("--steps", type=int, help="replace the config's training steps")
    parser.add_argument("--eval-examples", type=int, help="replace the config's held-out questions")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    base = JobConfig.from_yaml(args.config)
    if args.steps is not None:
        base = dataclasses.replace(base, training=dataclasses.replace(base.training, max_steps=args.steps))
    if args.eval_examples is not None:
        base = dataclasses.replace(base, max_eval_examples=args.eval_examples)
    for task in args.tasks:
        for seed in args.seeds:
            report = run_task(base, task, seed, args.variants, args.output_dir)
            stats = {k: report[k] for k in ("task", "seed", "pcst_text_tokens", "answer_recall")}
            for row in report.get("variants", []):
                metrics = {c: row["metrics"][c][report["metric"]] for c in CONTROLS}
                bench.add(
                    **stats,
                    variant=row["name"],
                    metric=report["metric"],
                    **metrics,
                    reliance=row["reliance"],
                    seconds_per_step=row["seconds_per_step"],
                    trainable=row["trainable"],
                )
            if not report.get("variants"):
                bench.add(**stats)
    bench.write(args)


if __name__ == "__main__":
    main()
