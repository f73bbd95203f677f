"""Edit the graph, not the model: do trained adapters answer from an edited KG, and only where it was edited?

On the main job's trained output (``make demo``'s ``demo_output/``: the adapters of ``lora``,
``lora+facts`` and ``kg-lora``, and ``fact_scorer.safetensors``), no retraining, the first
``--questions`` held-out (test) questions are edited in three ways, each a KG of its own
(:meth:`kgpeft.graph.KnowledgeGraph.edit`):

- ``counterfactual``: the subject's hypernym facts are replaced by one naming another edited
  question's answer (of the same lexname where one is free, never a name of the subject's own
  answers); success: the answer is the new entity's name;
- ``add``: that fact is added beside the subject's own; success: the answer names one of the
  subject's hypernyms in the edited graph (``new``: the added one);
- ``remove``: the subject's hypernym facts are removed; success: the old answer is no longer given.

A KG that states each link both ways (WordNet: ``hyponym`` for ``hypernym``) is edited both ways
(:attr:`~kgpeft.graph.KnowledgeGraph.inverse_relations`): an old answer's inverse fact left in the graph
still states the removed link.

``old`` is the share still giving the original answer. Locality: ``--locality`` other held-out
questions (the validation split), never edited; of those whose subgraph read is unchanged by
the edits (``local``, a count), the share whose prediction is unchanged. Each variant runs under
the knowledge controls (``--controls``; with another question's knowledge, ``shuffled``, an answer
should follow no edit, and locality counts by the subgraph read: the other question's); plain ``lora``
reads no knowledge and is the control variant. ``lora+facts:selected`` reads the ``lora+facts``
adapter with the fact scorer's facts as text instead of the prior ones. The job's seed (the
config's) drew the adapters' training and their questions' split, so it is the only seed.

``--diagnose`` prints, under the ``correct`` control, each edited question the edit did not reach and
why (:func:`diagnose`), and records the counts per cause (``causes``).

    python -m benchmarks.kg_edits                                   # demo_output/, 200 + 200 questions
    python -m benchmarks.kg_edits --demo-output runs/demo --questions 40 --locality 40
    python -m benchmarks.kg_edits --variants kg-lora --controls correct --diagnose
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import Benchmark
from kgpeft.evaluation.qa import exact_match, normalize_answer
from kgpeft.graph import KnowledgeGraph
from kgpeft.pipeline import Job, JobConfig, Variant, evaluate_variant, load_variant_model, prepare
from kgpeft.retrieval import format_fact, memory_fact_texts

KINDS = ("counterfactual", "add", "remove")


def benchmark() -> Benchmark:
    # No --seeds: the adapters were trained on the config's seed, which also draws its questions' split.
    bench = Benchmark("kg_edits", __doc__, config="configs/demo.yaml", seeds=None, threads=2)
    parser = bench.parser
    parser.add_argument("--demo-output", type=Path, default=Path("demo_output"), help="a trained main job's output")
    parser.add_argument("--questions", type=int, default=200, help="held-out questions edited (the test split's first)")
    parser.add_argument("--locality", type=int, default=200, help="held-out questions never edited (validation split)")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["kg-lora", "lora+facts", "lora+facts:selected", "lora"],
        help="the config's variants; NAME:selected reads NAME's adapter with the fact scorer's facts as text",
    )
    parser.add_argument("--controls", nargs="+", default=["correct", "shuffled"], help="knowledge controls")
    parser.add_argument("--diagnose", action="store_true", help="print why each failed edit failed (correct control)")
    return bench


@dataclasses.dataclass
class EditPlan:
    """One kind of edit of every edited question: the triples removed and added, and the answers it asks for."""

    kind: str
    remove: np.ndarray  # (3, R)
    add: np.ndarray  # (3, A)
    targets: list[list[str]]  # per edited question, the answers that follow the edit


def answer_triples(kg: KnowledgeGraph, example) -> np.ndarray:
    """The columns of ``kg.triples`` that join the example's subject to one of its answers by its relations."""
    h, r, t = kg.triples.numpy()
    relations = [kg.relation_id(name) for name in example.relations]
    answers = [kg.entity_id(key) for key in example.answer_entities]
    return np.flatnonzero((h == kg.entity_id(example.entity)) & np.isin(r, relations) & np.isin(t, answers))


def plan_edits(kg: KnowledgeGraph, examples: Sequence, seed: int) -> list[EditPlan]:
    """The counterfactual, add and remove edits of ``examples`` (see the module docstring)."""
    lexname = kg.extras.get("lexname")
    columns = [answer_triples(kg, e) for e in examples]
    for e, cols in zip(examples, columns, strict=True):
        if not cols.size:
            raise ValueError(f"{e.id}: no triple of the KG joins {e.entity!r} to its answers {e.answer_entities}.")
    old = [kg.triples[:, cols].numpy() for cols in columns]
    pool = [kg.entity_id(e.answer_entities[0]) for e in examples]
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    new, relation = [], []
    for i, e in enumerate(examples):
        taken = {a.lower() for a in e.accepted_answers} | {kg.labels[kg.entity_id(e.entity)].lower()}
        free = [pool[j] for j in order if not taken & {n.lower() for n in kg.names(pool[j])}]
        if lexname is not None:
            free.sort(key=lambda b: lexname[b] != lexname[pool[i]])  # stable: the same lexname first
        if not free:
            raise ValueError(f"{e.id}: every other question's answer is also a name of its own answers.")
        new.append(free[0])
        relation.append(int(old[i][1, 0]))
    subjects = [kg.entity_id(e.entity) for e in examples]
    added = np.array([subjects, relation, new], dtype=np.int64).reshape(3, -1)
    removed = np.concatenate(old, axis=1)
    own = [list(e.accepted_answers) for e in examples]
    names = [list(kg.names(b)) for b in new]
    return [
        EditPlan("counterfactual", removed, added, names),
        EditPlan("add", np.zeros((3, 0), dtype=np.int64), added, [o + n for o, n in zip(own, names, strict=True)]),
        EditPlan("remove", removed, np.zeros((3, 0), dtype=np.int64), own),
    ]


def subgraph_keys(job: Job, variant: Variant, control: str = "correct") -> list[tuple]:
    """The subgraph each test example reads under ``control`` (``shuffled``: another example's): its nodes and
    its edges, triples named by ids, not by column."""
    data = job.dataset("test", variant, with_target=False, control=control)
    keys = []
    for graph in data.graphs:
        src, dst = graph.n_id[graph.edge_index]
        edges = torch.stack([src, dst, graph.edge_type, *job.kg.triples[:, graph.edge_id]]).T.tolist()
        keys.append((graph.n_id.tolist(), sorted(map(tuple, edges))))
    return keys


def share(flags: Sequence[bool]) -> float | None:
    return 100 * sum(flags) / len(flags) if flags else None


def main(argv: Sequence[str] | None = None) -> None:
    """Edits the KG three ways, evaluates every variant and control on each edited KG and on the original."""
    bench = benchmark()
    args = bench.parse(argv)
    config = JobConfig.from_yaml(args.config)
    config = dataclasses.replace(
        config, training=dataclasses.replace(config.training, output_dir=str(args.demo_output))
    )
    job = prepare(config, train_scorer=False)  # reads the trained fact scorer; writes nothing
    edited_examples = job.splits["test"][: args.questions]
    local_examples = job.splits["valid"][: args.locality]
    n = len(edited_examples)
    job.splits["test"] = [*edited_examples, *local_examples]  # one evaluation reads both
    plans = plan_edits(job.kg, edited_examples, config.seed)
    variants, models = {}, {}
    by_name = {v.name: v for v in config.variants}
    for spec in args.variants:
        name, _, facts = spec.partition(":")
        # a variant's name is a folder name, so no ':'
        variant = (
            by_name[name] if not facts else dataclasses.replace(by_name[name], name=f"{name}@{facts}", facts=facts)
        )
        folder = next(
            args.demo_output / name / f for f in ("adapter", "final") if (args.demo_output / name / f).is_dir()
        )
        if folder not in models:
            models[folder] = load_variant_model(job, variant, folder)
        variants[spec] = (variant, models[folder])
    jobs = {"original": job}
    for plan in plans:
        jobs[plan.kind] = dataclasses.replace(job, kg=job.kg.edit(remove=plan.remove, add=plan.add), _datasets={})
    any_variant = next(iter(variants.values()))[0]
    keys = {
        (kind, c): subgraph_keys(j, any_variant, c) for kind, j in jobs.items() for c in {"correct", *args.controls}
    }
    print(f"{n} edited and {len(local_examples)} locality questions; {args.demo_output}")
    print(
        f"{'variant':<22} {'control':<9} {'edit':<15} {'success':>8} {'new':>6} {'old':>6} {'locality':>8} {'local':>6}"
    )
    for spec, (variant, model) in variants.items():
        reads_graph = variant.kind.reads_knowledge or variant.facts != "none"
        for control in args.controls if reads_graph else ["correct"]:
            before = evaluate_variant(job, variant, model, control)["predictions"]
            old = [exact_match(p, list(e.accepted_answers)) for p, e in zip(before, edited_examples, strict=False)]
            bench.add(table="before", variant=spec, control=control, questions=n, answer_em=share(old))
            for plan in plans:
                # a variant that reads no knowledge reads no graph: its answers are those before the edits
                after = (
                    evaluate_variant(jobs[plan.kind], variant, model, control)["predictions"] if reads_graph else before
                )
                row = measure(plan, edited_examples, before, after, keys["original", control], keys[plan.kind, control])
                failures = None
                if args.diagnose and reads_graph and control == "correct":
                    data = jobs[plan.kind].dataset("test", variant, with_target=False)
                    failures = diagnose(plan, data, edited_examples, after)
                    row["causes"] = dict(Counter(f["cause"] for f in failures).most_common())
                    row["answers"] = dict(Counter(f["answer_kind"] for f in failures).most_common())
                bench.add(table="edits", variant=spec, control=control, edit=plan.kind, **row)
                print(
                    f"{spec:<22} {control:<9} {plan.kind:<15} {_pct(row['success'])} {_pct(row['new'], 6)} "
                    f"{_pct(row['old'], 6)} {_pct(row['locality'])} {row['local']:>6}",
                    flush=True,
                )
                if failures is not None:
                    print(f"    not reached, by cause: {row['causes']}; the answers: {row['answers']}")
                for f in failures or ():
                    print(
                        f"    {f['id']} {f['subject']!r}: {f['cause']}; answered {f['answer']!r} ({f['answer_kind']}); "
                        f"read {f['read']}"
                    )
    bench.write(args)


def measure(
    plan: EditPlan, examples: Sequence, before: list[str], after: list[str], keys: list, edited_keys: list
) -> dict:
    """Edit success, the share still giving the old answer and locality, in %."""
    n = len(examples)
    old = [exact_match(p, list(e.accepted_answers)) == 1 for p, e in zip(after[:n], examples, strict=True)]
    follows = [exact_match(p, t) == 1 for p, t in zip(after[:n], plan.targets, strict=True)]
    if plan.kind == "remove":
        follows = [not o for o in old]
    new = None
    if plan.kind == "add":
        new = share(
            [
                exact_match(p, t[len(e.accepted_answers) :]) == 1
                for p, t, e in zip(after[:n], plan.targets, examples, strict=True)
            ]
        )
    local = [i for i in range(n, len(before)) if keys[i] == edited_keys[i]]
    return {
        "success": share(follows),
        "new": new,
        "old": share(old),
        "locality": share([before[i] == after[i] for i in local]),
        "local": len(local),
        "locality_questions": len(before) - n,
        "edited": n,
    }


#: Why an edit did not reach an answer, in the order :func:`diagnose` checks them. The edited link is the
#: subject and the new answer joined (a KG that states links both ways joins them by two facts).
CAUSES = {
    "old fact read": "a fact joining the subject and an old answer is among the facts the variant reads",
    "not retrieved": "no fact of the edited link is in the question's retrieved subgraph",
    "not read": "the edited link is in the subgraph, but none of its facts is among the facts the variant reads",
    "cut": "a fact of the edited link is read, cut by `retrieval.max_fact_tokens`",
    "two answers read": "(add) facts of the old and of the new link are read: two answers, the model gave neither",
    "misread": "the edited link is read whole and no old fact is, yet the answer follows neither",
    "old answer in subgraph": "(remove) the old answer is a node of the subgraph, reached by other facts",
    "prior": "(remove) the old answer is nowhere in the subgraph: the model's own knowledge or the question's words",
}


def diagnose(plan: EditPlan, data, examples: Sequence, after: list[str]) -> list[dict]:
    """Per edited question the edit did not reach (see :func:`measure`), its first cause in :data:`CAUSES`, and
    what the answer was (:func:`answer_kind`).

    ``data`` is the edited KG's dataset as the variant reads it; the facts read are the first
    ``memory_facts`` (memory) or ``num_facts`` (text) of its ranking. ``cut`` is checked for memory facts.
    """
    kg, retrieval = data.kg, data.retrieval
    k = retrieval.memory_facts or retrieval.num_facts
    added = {int(h): int(t) for h, _, t in plan.add.T}
    rows = []
    for i, e in enumerate(examples):
        reached = exact_match(after[i], plan.targets[i]) == 1
        if reached != (plan.kind == "remove"):
            continue
        subject, old = kg.entity_id(e.entity), {kg.entity_id(a) for a in e.answer_entities}
        link = {subject, added.get(subject)}
        read = data.ranked_facts(i)[:k]
        joins = [{h, t} for h, _, t in kg.triples[:, read].T.tolist()]
        new = [c for c in set(data.graphs[i].edge_id.tolist()) if set(kg.triples[[0, 2], c].tolist()) == link]
        old_read = any(subject in j and j & old for j in joins)
        if plan.kind != "add" and old_read:
            cause = "old fact read"  # (add keeps the old facts, and their answers count as success)
        elif plan.kind == "remove":
            cause = "old answer in subgraph" if old & set(data.graphs[i].n_id.tolist()) else "prior"
        elif not new:
            cause = "not retrieved"
        elif not set(new) & set(read):
            cause = "not read"
        elif retrieval.memory_facts and any(_cut(data, read, read.index(c)) for c in set(new) & set(read)):
            cause = "cut"
        else:
            cause = "two answers read" if old_read else "misread"
        rows.append(
            {
                "id": e.id,
                "subject": kg.labels[subject],
                "cause": cause,
                "answer": after[i],
                "answer_kind": answer_kind(after[i], e.accepted_answers, plan.targets[i]),
                "read": [format_fact(kg, t, retrieval.fact_format) for t in read],
            }
        )
    return rows


def answer_kind(answer: str, old: Sequence[str], targets: Sequence[str]) -> str:
    """What a wrong answer was: ``old answer``, ``part of a name`` (its words a part of a name of an old or a new
    answer, e.g. *bird* for *bird family*), or ``other``."""
    if exact_match(answer, list(old)) == 1:
        return "old answer"
    words = f" {normalize_answer(answer)} "
    if words.strip() and any(words in f" {normalize_answer(name)} " for name in (*old, *targets)):
        return "part of a name"
    return "other"


def _cut(data, read: list[int], index: int) -> bool:
    """Whether memory fact ``index`` of ``read`` (triple ids), as its slots are written, exceeds ``max_fact_tokens``."""
    retrieval = data.retrieval
    text = memory_fact_texts(data.kg, read, retrieval.fact_format, retrieval.memory_framing)[index]
    limit = retrieval.max_fact_tokens
    return limit is not None and len(data.tokenizer(text, add_special_tokens=False)["input_ids"]) > limit


def _pct(value: float | None, width: int = 8) -> str:
    return f"{value:{width}.1f}" if value is not None else " " * (width - 1) + "-"


if __name__ == "__main__":
    main()
