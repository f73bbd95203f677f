"""The main job's trained variants and their first training batches, for the step benchmarks.

``padding.py`` and ``flops.py`` both time training steps of the main job as it trains:
:func:`first_batches` prepares the job once and yields, for each variant with an adapter, a
fresh model in training mode, its first ``count`` training batches in the job's order (the
job's batch size, sampler seed and collator) and its causal-LM head for
:func:`kgpeft.training.loss.label_positions_loss`; :func:`parse_job_args` reads the
command line both take.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from itertools import islice

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

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


def parse_job_args(
    description: str, *, batches: int, batches_help: str, output_dir: str
) -> tuple[argparse.Namespace, JobConfig]:
    """The step benchmarks' command line (``--config``, ``--batches``, ``--max-rounds``, ``--threads``,
    ``--output-dir``), parsed, with torch's threads set and the job's config read, writing under ``--output-dir``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--batches", type=int, default=batches, help=batches_help)
    parser.add_argument("--max-rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output-dir", default=output_dir, help="where the fact scorer is written")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = JobConfig.from_yaml(args.config)
    config.training.output_dir = args.output_dir
    return args, config
