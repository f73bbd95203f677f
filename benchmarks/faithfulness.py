"""Are the explanations faithful? Remove each method's top nodes and measure what the answer loses.

On the main job (``configs/demo.yaml``: SmolLM2-135M-Instruct, WordNet hypernym QA, the
memory adapter reading the fact scorer's 2 facts), for 200 held-out questions and the gold
answer, each attribution method of :mod:`kgpeft.explain` ranks the subgraph's nodes. Then:

- top-1: the drop in the gold answer's log-probability when the method's top node is
  removed (node, edges, links and facts naming it; the model re-run), against a random node
  of the same subgraph (seeded), and the share of questions where the top node's drop is the
  larger;
- top-3 vs 3 random: the same, the three nodes removed together;
- rank agreement: Spearman's rho between each method's node scores and leave-one-out's, per
  question, averaged;
- answer changes: for the questions answered correctly, the share whose generated answer
  changes when the top node is removed.

Leave-one-out is itself a method (one extra forward per node); the others are cheaper proxies
(one forward and backward for all nodes: gradient x input, attention; the scorer's
probability costs nothing extra). Rows restricted to the nodes the text is not linked to
(``unlinked``) ask the harder question: which node *other than the subject* carried the answer.

    .venv/bin/python -m benchmarks.faithfulness                          # trains the job's kg-lora first
    .venv/bin/python -m benchmarks.faithfulness --adapter demo_output/kg-lora/adapter --output-dir demo_output
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from scipy.stats import spearmanr

from benchmarks.harness import Benchmark
from kgpeft.explain import METHODS, explain
from kgpeft.inference import first_line, generate_texts, target_log_likelihoods
from kgpeft.pipeline import JobConfig, load_variant_model, prepare, train_variant


def top_nodes(explanation, method: str, k: int, unlinked: bool) -> list[int]:
    rows = [n for n in explanation.nodes if not (unlinked and n.linked) and n.score(method) is not None]
    return [n.entity for n in sorted(rows, key=lambda n: -n.score(method))[:k]]


def benchmark() -> Benchmark:
    bench = Benchmark("faithfulness", __doc__, config="configs/demo.yaml", threads=2, one_seed=True)
    parser = bench.parser
    parser.add_argument("--variant", default="kg-lora")
    parser.add_argument("--adapter", type=Path, help="a trained adapter of the variant (default: train it)")
    parser.add_argument(
        "--output-dir", type=Path, default=Path("runs/faithfulness"), help="where the variant is trained"
    )
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--steps", type=int, help="replace the config's training steps (a quick check)")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    """Explains the held-out questions, then removes top and random nodes per method and scope (too long a
    function: one pass over the methods per scope, kept together so each row's numbers are side by side)."""
    bench = benchmark()
    args = bench.parse(argv)
    (seed,) = args.seeds
    config = JobConfig.from_yaml(args.config)
    config = dataclasses.replace(
        config,
        max_eval_examples=args.questions,
        training=dataclasses.replace(
            config.training, output_dir=str(args.output_dir), max_steps=args.steps or config.training.max_steps
        ),
    )
    variant = next(v for v in config.variants if v.name == args.variant)
    job = prepare(
        config, train_scorer=args.adapter is None or not (args.output_dir / "fact_scorer.safetensors").is_file()
    )
    if args.adapter is None:
        model = train_variant(job, variant).model.eval()
    else:
        model = load_variant_model(job, variant, args.adapter)
    data = job.dataset("test", variant, with_target=False)
    gold = [e.answer for e in data.examples]
    t0 = time.perf_counter()
    explanations = explain(model, data, answers=gold, scorer=job.scorer, batch_size=32)
    seconds = time.perf_counter() - t0
    generated = [first_line(t) for t in generate_texts(model, data, max_new_tokens=config.max_new_tokens)]
    answers = [list(e.answers) for e in data.examples]
    correct = [i for i, (g, a) in enumerate(zip(generated, answers, strict=True)) if g in a]
    methods = [m for m in METHODS if all(m in e.methods for e in explanations if e.nodes)]
    rng = random.Random(seed)
    usable = [i for i, e in enumerate(explanations) if len(e.nodes) >= 4]
    report: dict = {
        "questions": len(explanations),
        "with_4_or_more_nodes": len(usable),
        "mean_nodes": statistics.mean(len(e.nodes) for e in explanations),
        "explain_seconds": seconds,
        "correct": len(correct),
    }
    lines = [
        f"{len(explanations)} questions ({len(usable)} with >= 4 nodes; {report['mean_nodes']:.1f} nodes on average), "
        f"{len(correct)} answered correctly; explain took {seconds:.0f} s "
        f"({1000 * seconds / len(explanations):.0f} ms per question, every node and fact left out)",
        "",
        f"{'method':<18} {'nodes':<9} {'top-1 drop':>10} {'random':>8} {'top>rand':>8} {'top-3 drop':>10} "
        f"{'3 random':>8} {'top>rand':>8} {'rho(LOO)':>8} {'answer chg':>10}",
    ]
    for unlinked in (False, True):
        scope = "unlinked" if unlinked else "all"
        # removal sets per question: each method's top-1 and top-3, and seeded random ones
        plans: list[tuple[str, int, list[int]]] = []
        for i in usable:
            e = explanations[i]
            pool = [n.entity for n in e.nodes if not (unlinked and n.linked)]
            if len(pool) < 4:
                continue
            for m in methods:
                plans.append((m, i, top_nodes(e, m, 3, unlinked)))
            plans.append(("random", i, rng.sample(pool, 3)))
        rows = [(i, set(nodes), ()) for _, i, nodes in plans]
        rows += [(i, nodes[0], ()) for _, i, nodes in plans]
        rows += [(i, None, ()) for i in sorted({i for _, i, _ in plans})]
        scores = target_log_likelihoods(model, data.ablated(rows, [gold[i] for i, _, _ in rows]), batch_size=32)
        scores = scores.tolist()
        full = dict(zip(sorted({i for _, i, _ in plans}), scores[2 * len(plans) :], strict=True))
        drop3 = {(m, i): full[i] - s for (m, i, _), s in zip(plans, scores[: len(plans)], strict=True)}
        drop1 = {(m, i): full[i] - s for (m, i, _), s in zip(plans, scores[len(plans) : 2 * len(plans)], strict=True)}
        questions = sorted({i for _, i, _ in plans})
        # answers after removing each method's top node, for the questions answered correctly
        changed_plans = [(m, i, nodes[0]) for m, i, nodes in plans if i in set(correct)]
        regenerated = generate_texts(
            model,
            data.ablated([(i, node, ()) for _, i, node in changed_plans]),
            max_new_tokens=config.max_new_tokens,
        )
        changed = {}
        for (m, i, _), text in zip(changed_plans, regenerated, strict=True):
            changed.setdefault(m, []).append(first_line(text) != generated[i])
        for m in [*methods, "random"]:
            top1 = [drop1[m, i] for i in questions]
            top3 = [drop3[m, i] for i in questions]
            rand1 = [drop1["random", i] for i in questions]
            rand3 = [drop3["random", i] for i in questions]
            wins1 = statistics.mean(a > b for a, b in zip(top1, rand1, strict=True))
            wins3 = statistics.mean(a > b for a, b in zip(top3, rand3, strict=True))
            rho = None
            if m not in ("leave_one_out", "random"):
                rhos = []
                for i in questions:
                    nodes = [n for n in explanations[i].nodes if not (unlinked and n.linked)]
                    ours, loo = [n.score(m) for n in nodes], [n.leave_one_out for n in nodes]
                    if len(set(ours)) > 1 and len(set(loo)) > 1:
                        rhos.append(spearmanr(ours, loo).statistic)
                rho = statistics.mean(rhos) if rhos else float("nan")
            change = statistics.mean(changed[m]) if changed.get(m) else float("nan")
            bench.add(
                method=m,
                nodes=scope,
                top1_drop=statistics.mean(top1),
                random1_drop=statistics.mean(rand1),
                top1_beats_random=wins1,
                top3_drop=statistics.mean(top3),
                random3_drop=statistics.mean(rand3),
                top3_beats_random=wins3,
                spearman_with_loo=rho,
                answer_changed=change,
                questions=len(questions),
            )
            lines.append(
                f"{m:<18} {scope:<9} {statistics.mean(top1):10.2f} {statistics.mean(rand1):8.2f} {100 * wins1:7.1f}% "
                f"{statistics.mean(top3):10.2f} {statistics.mean(rand3):8.2f} {100 * wins3:7.1f}% "
                f"{'' if rho is None else f'{rho:8.2f}':>8} {100 * change:9.1f}%"
            )
    print("\n".join(lines))
    bench.write(args, **report)


if __name__ == "__main__":
    main()
