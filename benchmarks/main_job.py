"""The main job's trained variants and their first training batches, for the step benchmarks.

``padding.py`` and ``flops.py`` both time training steps of the main job as it trains:
:func:`first_batches` prepares the job once and yields, for each variant with an adapter, a
fresh model in training mode, its first ``count`` training batches in the job's order (the
job's batch size, sampler seed and collator) and its causal-LM head for
:func:`kgpeft.training.loss.label_positions_loss`; :func:`job_benchmark` is the
command line both take and :func:`job_config` the job's config it names. :func:`result_rows` turns a
pipeline run's results (``results.json``) into result rows, for the benchmarks that run the job.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from benchmarks.harness import Benchmark
from kgpeft.data import KnowledgeCollator
from kgpeft.pipeline import JobConfig, Variant, build_model, prepare
from kgpeft.training.loss import causal_lm_head


def first_batches(config: JobConfig, count: int) -> Iterator[tuple[Variant, nn.Module, list[dict], nn.Module | None]]:
    """``(variant, model, batches, head)`` for each trained variant of ``config``, in order."""
    job = prepare(config)
    for variant in config.variants:
        if variant.adapter == "none":
            continue
        model = build_model(job, variant).train()
        data = job.dataset("train", variant, with_target=True)
        collator = KnowledgeCollator(job.tokenizer.pad_token_id, with_knowledge=variant.adapter == "kg-lora")
        generator = torch.Generator().manual_seed(config.seed)
        loader = DataLoader(
            data,
            config.training.per_device_train_batch_size,
            sampler=RandomSampler(data, generator=generator),
            collate_fn=collator,
        )
        yield variant, model, list(islice(loader, count)), causal_lm_head(model)


def job_benchmark(name: str, doc: str | None, *, batches: int, batches_help: str, output_dir: str) -> Benchmark:
    """The step benchmarks' command line: the shared options (``--config``, ``--threads``, ``--output``; the
    config holds the seed) and ``--batches``, ``--max-rounds``, ``--output-dir``."""
    bench = Benchmark(name, doc, config="configs/demo.yaml", seeds=None, threads=2)
    bench.parser.add_argument("--batches", type=int, default=batches, help=batches_help)
    bench.parser.add_argument("--max-rounds", type=int, default=15)
    bench.parser.add_argument("--output-dir", default=output_dir, help="where the fact scorer is written")
    return bench


def job_config(args: argparse.Namespace) -> JobConfig:
    """The job's config (``--config``), writing under ``--output-dir``."""
    config = JobConfig.from_yaml(args.config)
    config.training.output_dir = args.output_dir
    return config


def result_rows(results: dict[str, Any], **keys: Any) -> Iterator[dict[str, Any]]:
    """One row per variant and knowledge control of a pipeline run's results (``JobResults.to_dict()``, the
    ``results.json`` format): ``keys``, task, seed, variant, control, the two headline metrics, the reliance
    (on the first, correct minus shuffled) and the training cost."""
    first, second = results["headline"]
    for v in results["variants"]:
        for control, m in v["metrics"].items():
            yield {
                **keys,
                "task": results["task"],
                "seed": results["seed"],
                "variant": v["name"],
                "control": control,
                first: m[first],
                second: m.get(second),
                "reliance": v["reliance"],
                "trainable": v["trainable"],
                "train_seconds": v["train_seconds"],
                "steps": v["steps"],
            }
