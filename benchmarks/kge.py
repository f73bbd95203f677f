"""KG embeddings: reproduction of published link-prediction results, and kgpeft against PyKEEN.

Part 1, reproduction. For every config file ``configs/kge/<kg>-<model>.yaml`` or ``<kg>.yaml`` (top-level
``kg``, ``output``, and a ``kge:`` section for :class:`~kgpeft.kge.KGEConfig`) of the chosen
KGs and models, train with :func:`~kgpeft.kge.train_kge` (validation and early stopping as
the config says), evaluate on the test split (filtered, both directions, realistic rank,
filtering train + valid + test) and print the MRR and Hits@10 next to published numbers:

- ConvE's README (Dettmers et al., 2018; the ConvE model): filtered MRR / Hits@10 of
  Nations 0.82 / 1.00, UMLS 0.94 / 0.99, Kinship 0.83 / 0.98.
- ContE (Pu et al., 2022, Journal of Data and Information Science 7(2)), its baselines on
  Nations, filtered MRR: TransE 0.481, DistMult 0.713, ComplEx 0.668, RotatE 0.716.

A row is "met" when the measured MRR, rounded to the reference's printed decimals, is at
least the reference. ConvE is another model than the four here: its row tells how far a
shallow embedding gets from it, not whether a paper's own number was reproduced.

Part 2, kgpeft against PyKEEN on UMLS, trained in this run, one tool after the other
(``--repeats`` alternates the order; seeds ``--seeds``, ``--seeds`` + 1, ...). Matched between the two:

- model: DistMult (default) or ComplEx (``--compare-model``); ``--dim`` real dimensions
  (DistMult) or complex dimensions (ComplEx: PyKEEN's ``embedding_dim`` is complex too);
  no reciprocal relations;
- initial weights: identical. kgpeft's ``train_kge`` seeds torch and builds its model; the
  same model is built here with the same seed and its tables are copied into PyKEEN's
  embeddings (interleaved real/imaginary parts for ComplEx);
- PyKEEN's defaults that kgpeft does not have are turned off: DistMult's unit-norm entity
  constraint (``entity_constrainer=None``) and relation L2 regularizer, ComplEx's L2
  regularizer (``regularizer=None``);
- training: sLCWA, ``--negatives`` negatives per positive, head or tail corrupted uniformly
  (kgpeft: each negative's side with probability 1/2; PyKEEN's ``BasicNegativeSampler``:
  half of each batch's negatives on either side, never the true entity itself; kgpeft may
  draw it with probability 1/num_entities), no filtering of negatives;
- loss: softplus, i.e. ``mean(softplus(-pos) ++ softplus(neg))`` over all B + B*K scores
  (PyKEEN's ``SoftplusLoss``, reduction ``mean``);
- Adam with ``--lr``, batch size ``--batch-size`` (last batch kept), ``--compare-epochs``
  epochs, no validation, no early stopping, no regularization;
- threads: ``torch.set_num_threads(--threads)`` for the whole process;
- evaluation: test triples, filtered by train + valid + test, both directions, realistic
  rank (mean of optimistic and pessimistic), ``--eval-batch-size`` queries at a time. kgpeft:
  ``embeddings.evaluate(kg, "test")``; PyKEEN: ``RankBasedEvaluator(filtered=True)`` with
  ``additional_filter_triples=[train, valid]``, metric ``both.realistic.inverse_harmonic_mean_rank``.

Training time is the wall time of the training call (``train_kge`` / PyKEEN's
``SLCWATrainingLoop.train``), no evaluation in it; throughput is training triples × epochs
over that time. Times are medians over ``--repeats``, MRRs means. Nothing is asserted.

PyKEEN is not a kgpeft dependency: ``make bench-env`` builds ``.venv-bench`` (CPU torch,
kgpeft, PyKEEN). Without PyKEEN, part 2 is skipped.

    make bench-env
    .venv-bench/bin/python -m benchmarks.kge
    .venv-bench/bin/python -m benchmarks.kge --kgs nations --models distmult complex --epochs 50
    .venv-bench/bin/python -m benchmarks.kge --skip-reproduction --compare-model complex --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from benchmarks.harness import ROOT, Benchmark
from kgpeft.datasets import load
from kgpeft.kge import KGEConfig, train_kge

KGS = ("nations", "umls", "kinships")
MODELS = ("transe", "distmult", "complex", "rotate")
ALIASES = {"kinship": "kinships"}

# (source, kg, model or None for any model) -> (MRR, Hits@10 or None), as printed in the source.
REFERENCES = {
    ("ConvE README (ConvE)", "nations", None): ("0.82", "1.00"),
    ("ConvE README (ConvE)", "umls", None): ("0.94", "0.99"),
    ("ConvE README (ConvE)", "kinships", None): ("0.83", "0.98"),
    ("ContE 2022", "nations", "transe"): ("0.481", None),
    ("ContE 2022", "nations", "distmult"): ("0.713", None),
    ("ContE 2022", "nations", "complex"): ("0.668", None),
    ("ContE 2022", "nations", "rotate"): ("0.716", None),
}


def met(measured: float, reference: str) -> bool:
    """Whether ``measured``, rounded to the decimals ``reference`` is printed with, reaches it."""
    decimals = len(reference.split(".")[1])
    return round(measured, decimals) >= float(reference)


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for i, row in enumerate([header, *rows]):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


# ---------------------------------------------------------------- part 1: reproduction


def find_configs(config_dir: Path, kgs: list[str], models: list[str], missing: list[str]):
    """``(kg, model, path, yaml)`` of each config: ``<kg>-<model>.yaml``, else ``<kg>.yaml`` for the model it names."""
    for kg_name in kgs:
        names = [kg_name, *(alias for alias, name in ALIASES.items() if name == kg_name)]
        found = {}
        for path in [config_dir / f"{n}.yaml" for n in names] + [
            config_dir / f"{n}-{m}.yaml" for n in names for m in MODELS
        ]:
            if path.is_file():
                raw = yaml.safe_load(path.read_text()) or {}
                found[str((raw.get("kge") or {}).get("model", "complex")).lower()] = (path, raw)
        for model in models:
            if model in found:
                yield (kg_name, model, *found[model])
            else:
                missing.append(f"{kg_name}-{model}")


def reproduction(args: argparse.Namespace, bench: Benchmark) -> None:
    print("\n== Reproduction: filtered test MRR and Hits@10 (both directions, realistic rank) ==")
    kgs = [ALIASES.get(k.lower(), k.lower()) for k in args.kgs]
    rows, missing = [], []
    for kg_name, model, path, raw in find_configs(args.config_dir, kgs, args.models, missing):
        values = dict(raw.get("kge") or {})
        if args.epochs is not None:
            values["num_epochs"] = args.epochs
        values.setdefault("device", args.device)
        config = KGEConfig.from_dict(values)
        name = str(raw.get("kg", kg_name)).lower()
        kg = load(ALIASES.get(name, name))
        start = time.perf_counter()
        result = train_kge(kg, config, progress=False)
        metrics = result.embeddings.evaluate(kg, "test").metrics()
        seconds = time.perf_counter() - start
        print(
            f"{path.name}: {config.model}, {config.training}/{config.loss}, {result.best_epoch}/{config.num_epochs} "
            f"epochs kept, test MRR {metrics.mrr:.3f}, H@10 {metrics.hits[10]:.3f} ({seconds:.0f} s)",
            flush=True,
        )
        refs = [(src, ref) for (src, k, m), ref in REFERENCES.items() if k == kg_name and m in (None, model)]
        for source, (ref_mrr, ref_h10) in refs or [("-", ("", None))]:
            bench.add(
                table="reproduction",
                kg=kg_name,
                model=model,
                mrr=metrics.mrr,
                h10=metrics.hits[10],
                reference=source,
                ref_mrr=ref_mrr or None,
                ref_h10=ref_h10,
                met=met(metrics.mrr, ref_mrr) if ref_mrr else None,
                seconds=seconds,
            )
            rows.append(
                [
                    kg_name,
                    model,
                    f"{metrics.mrr:.3f}",
                    f"{metrics.hits[10]:.3f}",
                    source,
                    ref_mrr,
                    ref_h10 or "-",
                    ("met" if met(metrics.mrr, ref_mrr) else "not met") if ref_mrr else "-",
                ]
            )
    if rows:
        print()
        table(["kg", "model", "MRR", "H@10", "reference", "ref MRR", "ref H@10", "MRR"], rows)
    if missing:
        print(f"\nNo config in {args.config_dir} for: {', '.join(missing)} (skipped).")


# ---------------------------------------------------------------- part 2: kgpeft vs PyKEEN


def compare_config(args: argparse.Namespace, seed: int) -> KGEConfig:
    return KGEConfig(
        model=args.compare_model,
        hidden_channels=args.dim,
        reciprocal=False,
        training="negative_sampling",
        loss="softplus",
        num_negatives=args.negatives,
        negative_sampler="uniform",
        regularization_weight=0.0,
        optimizer="adam",
        learning_rate=args.lr,
        batch_size=args.batch_size,
        num_epochs=args.compare_epochs,
        eval_every=0,  # no validation, so no early stopping
        patience=0,
        eval_batch_size=args.eval_batch_size,
        seed=seed,
        device="cpu",
    )


def run_kgpeft(kg, config: KGEConfig) -> dict:
    start = time.perf_counter()
    result = train_kge(kg, config, progress=False)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = result.embeddings.evaluate(kg, "test").metrics()
    eval_s = time.perf_counter() - start
    return {"train_s": train_s, "eval_s": eval_s, "mrr": metrics.mrr, "h10": metrics.hits[10]}


def initial_weights(kg, config: KGEConfig) -> dict[str, torch.Tensor]:
    """The tables ``train_kge`` starts from with this config: what it returns after 0 epochs."""
    model = train_kge(kg, replace(config, num_epochs=0), progress=False).embeddings.model
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_pykeen(kg, config: KGEConfig) -> dict:
    from pykeen.evaluation import RankBasedEvaluator
    from pykeen.losses import SoftplusLoss
    from pykeen.models import ComplEx, DistMult
    from pykeen.training import SLCWATrainingLoop
    from pykeen.triples import CoreTriplesFactory

    train, valid, test = (kg.splits[s].long().t().contiguous() for s in ("train", "valid", "test"))
    factory = CoreTriplesFactory.create(train, num_entities=kg.num_entities, num_relations=kg.num_relations)
    init = initial_weights(kg, config)
    torch.manual_seed(config.seed)
    common = dict(triples_factory=factory, embedding_dim=config.hidden_channels, loss=SoftplusLoss(), regularizer=None)
    if config.model == "distmult":
        model = DistMult(**common, entity_constrainer=None, random_seed=config.seed)
        entities, relations = init["node_emb.weight"], init["rel_emb.weight"]
    else:  # PyKEEN stores a complex vector as interleaved (real, imaginary) pairs
        model = ComplEx(**common, random_seed=config.seed)
        entities = torch.stack([init["node_emb.weight"], init["node_emb_im.weight"]], dim=-1).flatten(1)
        relations = torch.stack([init["rel_emb.weight"], init["rel_emb_im.weight"]], dim=-1).flatten(1)
    with torch.no_grad():
        model.entity_representations[0]._embeddings.weight.copy_(entities)
        model.relation_representations[0]._embeddings.weight.copy_(relations)
    assert not list(model.weight_regularizers), "PyKEEN's regularizer should be off"
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loop = SLCWATrainingLoop(
        model=model,
        triples_factory=factory,
        optimizer=optimizer,
        negative_sampler="basic",
        negative_sampler_kwargs={"num_negs_per_pos": config.num_negatives},
    )
    start = time.perf_counter()
    loop.train(
        triples_factory=factory,
        num_epochs=config.num_epochs,
        batch_size=config.batch_size,
        drop_last=False,
        use_tqdm=False,
        use_tqdm_batch=False,
    )
    train_s = time.perf_counter() - start
    evaluator = RankBasedEvaluator(filtered=True)
    start = time.perf_counter()
    result = evaluator.evaluate(
        model, test, additional_filter_triples=[train, valid], batch_size=config.eval_batch_size, use_tqdm=False
    )
    eval_s = time.perf_counter() - start
    return {
        "train_s": train_s,
        "eval_s": eval_s,
        "mrr": result.get_metric("both.realistic.inverse_harmonic_mean_rank"),
        "h10": result.get_metric("both.realistic.hits_at_10"),
    }


def comparison(args: argparse.Namespace, bench: Benchmark) -> None:
    try:
        import pykeen
    except ImportError:
        print(
            "\n== kgpeft vs PyKEEN: skipped, PyKEEN is not installed here ==\n"
            "PyKEEN is no kgpeft dependency; it lives in a venv of its own:\n"
            "    make bench-env && .venv-bench/bin/python -m benchmarks.kge"
        )
        return
    import logging
    import warnings

    for logger in ("pykeen", "torch_max_mem"):
        logging.getLogger(logger).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    kg = load("umls")
    (seed,) = args.seeds
    config = compare_config(args, seed)
    num_train = kg.splits["train"].size(1)
    print(
        f"\n== kgpeft {_version('kgpeft')} vs PyKEEN {pykeen.get_version()} on UMLS "
        f"({kg.num_entities} entities, {kg.num_relations} relations, {num_train} training triples), "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) =="
    )
    print(
        f"{config.model}, dim {config.hidden_channels}, sLCWA, {config.num_negatives} uniform negatives, "
        f"softplus loss, Adam lr {config.learning_rate}, batch {config.batch_size}, {config.num_epochs} epochs, "
        f"no regularization, no early stopping, identical initial weights, {args.repeats} repeat(s)"
    )
    runs: dict[str, list[dict]] = {"kgpeft": [], "PyKEEN": []}
    tools = {"kgpeft": run_kgpeft, "PyKEEN": run_pykeen}
    for repeat in range(args.repeats):
        config = compare_config(args, seed + repeat)
        order = ["kgpeft", "PyKEEN"] if repeat % 2 == 0 else ["PyKEEN", "kgpeft"]
        for name in order:
            run = tools[name](kg, config)
            runs[name].append(run)
            bench.add(table="comparison run", tool=name, seed=config.seed, **run)
            print(
                f"  seed {config.seed} {name:6s}: train {run['train_s']:.1f} s, eval {run['eval_s']:.3f} s, "
                f"MRR {run['mrr']:.4f}, H@10 {run['h10']:.4f}",
                flush=True,
            )
    summary = {}
    for name, rs in runs.items():
        train_s = statistics.median(r["train_s"] for r in rs)
        summary[name] = {
            "tps": num_train * config.num_epochs / train_s,
            "train_s": train_s,
            "eval_s": statistics.median(r["eval_s"] for r in rs),
            "mrr": statistics.fmean(r["mrr"] for r in rs),
            "h10": statistics.fmean(r["h10"] for r in rs),
        }
        bench.add(table="comparison", tool=name, model=config.model, **summary[name])
    k, p = summary["kgpeft"], summary["PyKEEN"]
    print()
    table(
        ["", "train triples/s", "train s", "test eval s", "test MRR", "test H@10"],
        [
            [name, f"{s['tps']:.0f}", f"{s['train_s']:.2f}", f"{s['eval_s']:.3f}", f"{s['mrr']:.4f}", f"{s['h10']:.4f}"]
            for name, s in summary.items()
        ]
        + [
            [
                "kgpeft / PyKEEN",
                f"{k['tps'] / p['tps']:.2f}x",
                f"{k['train_s'] / p['train_s']:.2f}x",
                f"{k['eval_s'] / p['eval_s']:.2f}x",
                f"{k['mrr'] - p['mrr']:+.4f}",
                f"{k['h10'] - p['h10']:+.4f}",
            ]
        ],
    )
    fast = k["tps"] >= p["tps"] and k["eval_s"] <= p["eval_s"]
    close = abs(k["mrr"] - p["mrr"]) <= 0.01
    print(
        f"\nTargets: kgpeft at least as fast (training and evaluation): {'met' if fast else 'not met'}; "
        f"MRR within 0.01 of PyKEEN: {'met' if close else 'not met'}."
    )


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def benchmark() -> Benchmark:
    bench = Benchmark("kge", __doc__, one_seed=True)
    parser = bench.parser
    parser.add_argument("--kgs", nargs="+", default=list(KGS), help="KGs of the reproduction table")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--config-dir", type=Path, default=ROOT / "configs" / "kge")
    parser.add_argument("--epochs", type=int, help="override the configs' epochs (reproduction)")
    parser.add_argument("--device", default="auto", help="device of the reproduction runs (default: auto)")
    parser.add_argument("--skip-reproduction", action="store_true")
    parser.add_argument("--skip-pykeen", action="store_true", help="skip the PyKEEN comparison")
    parser.add_argument("--compare-model", default="distmult", choices=("distmult", "complex"))
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--negatives", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--compare-epochs", type=int, default=50)
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="comparison runs per tool, seeds seed, seed+1, ...")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    """``--threads`` holds for the whole process, both tools."""
    bench = benchmark()
    args = bench.parse(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), python {sys.version.split()[0]}")
    if not args.skip_reproduction:
        reproduction(args, bench)
    if not args.skip_pykeen:
        comparison(args, bench)
    bench.write(args)


if __name__ == "__main__":
    main()
