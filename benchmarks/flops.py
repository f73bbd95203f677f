"""Where the main job's training time goes: matrix products, at what rate, and what is left.

Prepares the main job (``configs/demo.yaml``), builds each trained variant and takes its first
``--batches`` training batches in the job's order. For one training step (forward and
backward, padding skipped as in training) it records every matrix product the step runs
(``mm``, ``addmm``, ``bmm``: their very operands, caught below autograd) and counts their
floating-point operations. Then, in interleaved rounds (``benchmarks/timing.py``), it times
per variant:

* ``step``: the training step itself;
* ``GEMM fp32``: the step's matrix products alone, replayed one after another on the same
  tensors: what the step would cost if nothing but its matrix products took time;
* ``GEMM bf16``: the same products on bfloat16 copies of the operands (cast beforehand, not
  timed): the most that bf16 compute could save, with no cast or autocast overhead.

It prints, per variant, a step's real (unpadded) tokens, the GFLOP and number of its matrix
products, the time of each of the three, the products' share of the step and their rate;
then the job's training time (``max_steps`` steps of each variant) at those times. Nothing
is asserted. Keeping every product's operands takes memory: about 8 GB at peak with the
default single batch per variant.

    python -m benchmarks.flops [--batches 1] [--threads 2]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.harness import Benchmark
from benchmarks.main_job import first_batches, job_benchmark, job_config
from benchmarks.timing import interval, rounds
from kgpeft.padding import skip_padding
from kgpeft.training.loss import label_positions_loss

aten = torch.ops.aten
GEMMS = {aten.mm.default, aten.addmm.default, aten.bmm.default}


class RecordGemms(TorchDispatchMode):
    """Keeps the function and operands of every matrix product run under it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in GEMMS:
            self.calls.append((func, args, kwargs or {}))
        return func(*args, **(kwargs or {}))


def gemm_flops(calls: list[tuple]) -> int:
    total = 0
    for func, args, _ in calls:
        if func is aten.addmm.default:
            (m, k), n = args[1].shape, args[2].shape[1]
            total += 2 * m * k * n
        elif func is aten.mm.default:
            (m, k), n = args[0].shape, args[1].shape[1]
            total += 2 * m * k * n
        else:
            b, m, k = args[0].shape
            total += 2 * b * m * k * args[1].shape[2]
    return total


def to_bf16(calls: list[tuple]) -> list[tuple]:
    """``calls`` on bfloat16 copies of their operands, one copy per tensor (the weights recur)."""
    copies: dict[tuple, torch.Tensor] = {}

    def cast(x):
        if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
            return x
        key = (x.untyped_storage().data_ptr(), x.storage_offset(), x.shape, x.stride())
        if key not in copies:
            copies[key] = x.to(torch.bfloat16)
        return copies[key]

    return [(func, tuple(map(cast, args)), kwargs) for func, args, kwargs in calls]


def replay(calls: list[tuple]) -> None:
    for func, args, kwargs in calls:
        func(*args, **kwargs)


def benchmark() -> Benchmark:
    return job_benchmark(
        "flops",
        __doc__,
        batches=1,
        batches_help="batches per variant (all GEMMs kept)",
        output_dir="runs/flops_benchmark",
    )


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    config = job_config(args)
    functions, facts = {}, {}
    for variant, model, batches, head in first_batches(config, args.batches):

        def step(model=model, batches=batches, head=head) -> None:
            with skip_padding(model):
                for batch in batches:
                    label_positions_loss(model, batch, head).backward()
                    model.zero_grad(set_to_none=True)

        record = RecordGemms()
        with record:
            step()
        calls, calls_bf16 = record.calls, to_bf16(record.calls)
        tokens = sum(int(b["attention_mask"].sum()) for b in batches)
        facts[variant.name] = {
            "gemm_flops": gemm_flops(calls) / args.batches,
            "gemms": len(calls) / args.batches,
            "tokens": tokens / args.batches,
        }
        functions[f"{variant.name} step"] = step
        functions[f"{variant.name} GEMM fp32"] = lambda calls=calls: replay(calls)
        functions[f"{variant.name} GEMM bf16"] = lambda calls=calls_bf16: replay(calls)
    times = rounds(functions, most=args.max_rounds)
    steps = config.training.max_steps
    print(
        f"\n{config.task}: one training step = {config.training.per_device_train_batch_size} examples, "
        f"median of {len(next(iter(times.values())))} interleaved rounds, {args.batches} batch(es) per variant, "
        f"{args.threads} threads"
    )
    print(
        f"{'variant':<11} {'tokens':>6} {'GFLOP':>6} {'GEMMs':>5} {'s/step':>12} {'GEMM fp32 s':>12} "
        f"{'GEMM share':>10} {'GEMM GFLOP/s':>12} {'rest s':>6} {'GEMM bf16 s':>11}"
    )
    totals = {"step": 0.0, "fp32": 0.0, "bf16": 0.0}
    for name, f in facts.items():
        step_s, step_ci = interval([t / args.batches for t in times[f"{name} step"]])
        fp32 = interval([t / args.batches for t in times[f"{name} GEMM fp32"]])[0]
        bf16 = interval([t / args.batches for t in times[f"{name} GEMM bf16"]])[0]
        totals["step"], totals["fp32"], totals["bf16"] = (
            totals["step"] + steps * step_s,
            totals["fp32"] + steps * fp32,
            totals["bf16"] + steps * bf16,
        )
        bench.add(
            variant=name,
            tokens=f["tokens"],
            gflop=f["gemm_flops"] / 1e9,
            gemms=f["gemms"],
            step_s=step_s,
            step_s_ci95=step_ci,
            gemm_fp32_s=fp32,
            gemm_share=fp32 / step_s,
            gemm_gflop_per_s=f["gemm_flops"] / fp32 / 1e9,
            rest_s=step_s - fp32,
            gemm_bf16_s=bf16,
        )
        print(
            f"{name:<11} {f['tokens']:6.0f} {f['gemm_flops'] / 1e9:6.1f} {f['gemms']:5.0f} "
            f"{f'{step_s:.3f}+-{step_ci:.3f}':>12} {fp32:12.3f} {100 * fp32 / step_s:9.0f}% "
            f"{f['gemm_flops'] / fp32 / 1e9:12.0f} {step_s - fp32:6.3f} {bf16:11.3f}"
        )
    print(
        f"\ntraining, {steps} steps of each variant: {totals['step']:.0f} s at the measured step times; "
        f"{totals['fp32']:.0f} s of it is fp32 matrix products; the products alone in bf16 would take "
        f"{totals['bf16']:.0f} s"
    )
    bench.write(args, task=config.task, training_steps=steps, training_s=totals)


if __name__ == "__main__":
    main()
