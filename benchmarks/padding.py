"""What skipping padding saves on the main job's training steps, and that it changes nothing.

Prepares the main job (``configs/demo.yaml``: WordNet hypernym QA, SmolLM2-135M, the fact
scorer), builds each trained variant (``lora``, ``lora+facts``, ``kg-lora``) and takes its
first ``--batches`` training batches in the job's order. Each round runs one training step
(forward and backward; no optimizer step, so every step sees the same weights) of every
variant and batch with :func:`kgpeft.padding.skip_padding` and without, in turn
(``benchmarks/timing.py``); the ratio is the median of the per-round ratios with its 95%
interval. It also checks that the losses and every gradient are bit-identical both ways,
and prints the share of padding in the batches. Nothing is asserted.

    python -m benchmarks.padding [--batches 4] [--threads 2]
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from benchmarks.harness import Benchmark
from benchmarks.main_job import first_batches, job_benchmark, job_config
from benchmarks.timing import interval, ratio_interval, rounds
from kgpeft.padding import skip_padding
from kgpeft.training.loss import label_positions_loss


def benchmark() -> Benchmark:
    return job_benchmark(
        "padding", __doc__, batches=4, batches_help="training batches per variant", output_dir="runs/padding_benchmark"
    )


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    config = job_config(args)
    steps, checks = {}, []
    for variant, model, batches, head in first_batches(config, args.batches):
        padding = 1 - sum(int(b["attention_mask"].sum()) for b in batches) / sum(
            b["attention_mask"].numel() for b in batches
        )

        def step(model=model, batches=batches, head=head, skip=False) -> list:
            results = []
            with skip_padding(model) if skip else contextlib.nullcontext():
                for batch in batches:
                    loss = label_positions_loss(model, batch, head)
                    loss.backward()
                    results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
                    model.zero_grad(set_to_none=True)
            return results

        plain, skipped = step(), step(skip=True)
        same = all(
            torch.equal(a[0], b[0]) and all(torch.equal(x, y) for x, y in zip(a[1], b[1], strict=True))
            for a, b in zip(plain, skipped, strict=True)
        )
        checks.append((variant.name, padding, same))
        steps[variant.name] = (step, lambda step=step: step(skip=True))
    times = rounds(
        {f"{name} {mode}": fn for name, fns in steps.items() for mode, fn in zip(("plain", "skip"), fns, strict=True)},
        most=args.max_rounds,
        reference=f"{next(iter(steps))} plain",
    )
    print(
        f"\n{config.task}, {args.batches} training batches of {config.training.per_device_train_batch_size} "
        f"per variant, {args.threads} threads, {len(next(iter(times.values())))} interleaved rounds"
    )
    print(
        f"{'variant':<12} {'padding':>8} {'plain s/step':>13} {'skipping s/step':>16} {'ratio [95% CI]':>18} "
        f"{'bit-identical':>14}"
    )
    for name, padding, same in checks:
        plain_s = interval([t / args.batches for t in times[f"{name} plain"]])[0]
        skip_s = interval([t / args.batches for t in times[f"{name} skip"]])[0]
        ratio, half = ratio_interval(times[f"{name} skip"], times[f"{name} plain"])
        bench.add(
            variant=name,
            padding=padding,
            plain_s_per_step=plain_s,
            skip_s_per_step=skip_s,
            skip_vs_plain=ratio,
            skip_vs_plain_ci95=half,
            bit_identical=same,
        )
        print(
            f"{name:<12} {100 * padding:7.1f}% {plain_s:13.2f} {skip_s:16.2f} {f'{ratio:.3f}x +-{half:.3f}':>18} "
            f"{same!s:>14}"
        )
    bench.write(args, task=config.task, rounds=len(next(iter(times.values()))))


if __name__ == "__main__":
    main()
