"""The ``kgpeft kge`` job: train KG embeddings from a config and report them, or evaluate saved ones.

A job config names the KG, the file to write and the :class:`~kgpeft.kge.KGEConfig` settings::

    kg: umls                                   # a dataset name, a saved KG folder or a triples file
    output: runs/kge/umls.safetensors          # the metrics go next to it: runs/kge/umls.metrics.json
    kge: {model: complex, hidden_channels: 200, reciprocal: true, learning_rate: 0.01, num_epochs: 100}

>>> from kgpeft.kge.job import train_kge_job
>>> report = train_kge_job("configs/kge/umls.yaml", {"kge": {"num_epochs": 5}})
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from kgpeft.configuration import dataclass_from_dict, field_help, read_yaml
from kgpeft.datasets import KGSource, load_kg
from kgpeft.kge.config import KGEConfig, KGEConfigError
from kgpeft.kge.embeddings import KGEmbeddings
from kgpeft.kge.evaluation import RankMetrics, RankResult
from kgpeft.kge.training import train_kge
from kgpeft.utils import atomic_file, ensure_writable, resolve_device


@dataclass
class KGEJob:
    """A ``kgpeft kge train`` config."""

    kg: str | KGSource | None = field(
        default=None,
        metadata={
            "help": "Dataset name (umls, nations, kinships, wordnet), a saved KG folder or a triples file; or a "
            "mapping naming the files (KGSource: triples, labels, format, ...)."
        },
    )
    output: str | None = field(
        default=None,
        metadata={"help": "The .safetensors file to write; the metrics go next to it (.metrics.json)."},
    )
    kge: KGEConfig = field(default_factory=KGEConfig, metadata={"help": "KGEConfig settings."})


def load_job(
    config: str | os.PathLike | dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> KGEJob:
    """The job of a config file (or a dict of its values), with ``overrides`` laid over it.

    ``overrides`` holds top-level keys and, under ``kge``, :class:`KGEConfig` settings:
    ``{"kg": "nations", "kge": {"num_epochs": 5}}``.

    Raises:
        KGEConfigError: an unknown key, a wrong type or an invalid value, named with the file.
    """
    is_file = isinstance(config, (str, os.PathLike))
    source = str(config) if is_file else "command line"
    values = dict(read_yaml(config) if is_file else config or {})
    try:
        for key in values:
            if key in field_help(KGEConfig) and key not in field_help(KGEJob):
                raise KGEConfigError(
                    f"unknown key {key!r} in KGE job; {key!r} is a KGEConfig setting: put it under `kge:`"
                )
        overrides = dict(overrides or {})
        section = overrides.pop("kge", None)
        values.update(overrides)
        if section and (values.get("kge") is None or isinstance(values["kge"], dict)):
            values["kge"] = {**(values.get("kge") or {}), **section}
        if values.get("kge") is None:
            values.pop("kge", None)  # `kge:` written with nothing under it
        job = dataclass_from_dict(KGEJob, values, "KGE job", KGEConfigError)
        if not job.kg:
            raise KGEConfigError("no KG to train on; give `kg:` in the config or --kg.")
        if not job.output:
            raise KGEConfigError("no file to write; give `output:` in the config or --output FILE.safetensors.")
    except KGEConfigError as e:
        raise KGEConfigError(f"{source}: {e}") from None
    return job


def train_kge_job(
    config: str | os.PathLike | dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the job's embeddings, test them when the KG has a test split, and write them with their metrics.

    Prints the validation history and the filtered ranks; writes ``output`` and ``output``'s
    ``.metrics.json``, and returns that report.
    """
    job = load_job(config, overrides)
    config = job.kge
    output = ensure_writable(job.output, "`output`", folder=False)  # before the KG is loaded and trained on
    metrics_path = output.with_suffix(".metrics.json")
    ensure_writable(metrics_path, "the metrics file", folder=False)

    t0 = time.perf_counter()
    kg = load_kg(job.kg)
    if kg.splits and "train" not in kg.splits:
        raise KGEConfigError(f"{job.kg}: the KG has splits {', '.join(kg.splits)} but no 'train' split to train on.")
    print(f"{kg} (loaded in {time.perf_counter() - t0:.1f} s)")
    print(f"config: {json.dumps(config.to_dict())}")
    if not kg.splits:
        print(f"{job.kg} has no splits: training on all {kg.num_triples} triples, without validation or test.")
    elif "valid" not in kg.splits or not config.eval_every:
        print("no validation: no 'valid' split or eval_every is 0; the last epoch's state is kept.")

    result = train_kge(kg, config, progress=progress)

    if result.history:
        print("validation (filtered MRR, both directions):")
        print(f"  {'epoch':>5} {'loss':>9} {'valid MRR':>9}")
        for row in result.history:
            best = "  <- best, kept" if row["epoch"] == result.best_epoch else ""
            print(f"  {row['epoch']:>5} {row['loss']:>9.4f} {row['valid_mrr']:>9.4f}{best}")
    print(
        f"trained {result.best_epoch if not result.history else result.history[-1]['epoch']} epochs: "
        f"{result.triples_per_second:,.0f} triples/s, {result.train_seconds:.1f} s training, "
        f"{result.eval_seconds:.1f} s validation"
    )
    if result.valid is not None:
        print(format_ranks(result.valid, f"valid, epoch {result.best_epoch}"))

    test, test_seconds = None, 0.0
    if "test" in kg.splits:
        start = time.perf_counter()
        test = result.embeddings.evaluate(kg, "test")
        test_seconds = time.perf_counter() - start
        print(format_ranks(test, "test", test_seconds))
    else:
        print("the KG has no 'test' split: test evaluation skipped.")

    result.embeddings.save(output)
    report = {
        "kg": job.kg.to_dict() if isinstance(job.kg, KGSource) else job.kg,
        "kg_fingerprint": kg.fingerprint,
        "num_entities": kg.num_entities,
        "num_relations": kg.num_relations,
        "splits": {name: int(triples.size(1)) for name, triples in kg.splits.items()},
        "embeddings": str(output),
        "config": config.to_dict(),
        "best_epoch": result.best_epoch,
        "history": result.history,
        "valid": result.valid.summary() if result.valid is not None else None,
        "test": test.summary() if test is not None else None,
        "test_per_relation": per_relation_dict(test) if test is not None else None,
        "triples_per_second": result.triples_per_second,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "test_seconds": test_seconds,
    }
    with atomic_file(metrics_path) as tmp:
        tmp.write_text(json.dumps(finite(report), indent=2) + "\n", encoding="utf-8")
    size = output.stat().st_size / 2**20
    print(f"wrote {output} ({size:.1f} MiB) and {metrics_path}")
    return report


@dataclass
class KGEEvaluation:
    """What :func:`evaluate_kge_job` returns: the embeddings, their ranks on the split, and the time ranking took."""

    embeddings: KGEmbeddings
    result: RankResult
    seconds: float


def evaluate_kge_job(
    embeddings: str | os.PathLike,
    kg: str,
    split: str = "test",
    *,
    batch_size: int | None = None,
    device: str = "auto",
) -> KGEEvaluation:
    """Filtered ranks of a split of ``kg`` (a dataset name, KG folder or triples file) under saved embeddings.

    Raises:
        KGEConfigError: ``batch_size`` below 1, or a split the KG does not have.
        EmbeddingFileError: an unreadable file, or embeddings of another KG.
    """
    if batch_size is not None and batch_size < 1:
        raise KGEConfigError(f"`batch_size` should be at least 1, got {batch_size}.")
    graph = load_kg(kg)
    loaded = KGEmbeddings.load(embeddings, kg=graph, device=resolve_device(device))
    if split not in graph.splits:
        have = f"it has {', '.join(graph.splits)}" if graph.splits else "it has no splits"
        raise KGEConfigError(f"{kg}: the KG has no split {split!r}; {have}.")
    start = time.perf_counter()
    result = loaded.evaluate(graph, split, batch_size=batch_size)
    return KGEEvaluation(loaded, result, time.perf_counter() - start)


def format_ranks(result: RankResult, title: str, seconds: float | None = None, per_relation: bool = False) -> str:
    """A table of filtered metrics of a :class:`~kgpeft.kge.RankResult`: both directions, head, tail, per relation."""
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    lines = [f"{title}: {result.relations.numel()} triples, filtered realistic ranks of heads and tails{took}"]
    lines.append(_metrics_header("direction", 9))
    lines += [_metrics_row(direction, result.metrics(direction), 9) for direction in ("both", "head", "tail")]
    if per_relation:
        rows = sorted(result.per_relation().items(), key=lambda kv: (-kv[1].count, kv[0]))
        width = max([8, *(len(name) for name, _ in rows)])
        lines.append(f"per relation, both directions ({len(rows)} relations, most ranks first):")
        lines.append(_metrics_header("relation", width))
        lines += [_metrics_row(name, m, width) for name, m in rows]
    return "\n".join(lines)


def per_relation_dict(result: RankResult) -> dict[str, dict[str, float]]:
    """``{relation: metrics and count}`` of a :class:`~kgpeft.kge.RankResult`, both directions."""
    return {name: {**m.as_dict(), "count": m.count} for name, m in result.per_relation().items()}


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None``, so that the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _metrics_row(name: str, m: RankMetrics, width: int) -> str:
    hits = " ".join(f"{m.hits[k]:>7.4f}" for k in (1, 3, 10))
    return f"  {name:<{width}} {m.count:>7} {m.mrr:>7.4f} {m.mr:>8.2f} {hits}"


def _metrics_header(first: str, width: int) -> str:
    return f"  {first:<{width}} {'ranks':>7} {'MRR':>7} {'MR':>8} {'Hits@1':>7} {'Hits@3':>7} {'Hits@10':>7}"


__all__ = ["KGEEvaluation", "KGEJob", "evaluate_kge_job", "finite", "format_ranks", "load_job", "train_kge_job"]
