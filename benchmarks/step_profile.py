"""Where a design's training step spends its time beyond plain LoRA's: ``torch.profiler`` op totals, side by side.

``benchmarks/overhead.py`` says how much longer a step is; this says of what. Both variants are built on the same
batch as there (``--batch-size`` x ``--seq-len`` tokens of WordNet glosses, SmolLM2-135M), stepped once to warm
up, then profiled over ``--steps`` steps each, in turn (one step of each per round). Printed: each op's self CPU
time per step in both, and the difference, the ``--top`` largest differences first. A profile slows the ops it
records, and the machine's load falls on whichever step runs, so read the differences, not the totals, and
compare them with the overhead benchmark's ratios. Nothing is asserted.

    python -m benchmarks.step_profile --threads 1 --variants lora inline+trained
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM

from benchmarks import overhead
from benchmarks.harness import Benchmark
from kgpeft.pretrained import packaged_model_path


def benchmark() -> Benchmark:
    bench = Benchmark("step_profile", __doc__, threads=1, one_seed=True)
    bench.parser.add_argument("--variants", nargs=2, default=["lora", "inline+trained"], choices=overhead.VARIANTS)
    bench.parser.add_argument("--steps", type=int, default=3, help="profiled steps of each variant")
    bench.parser.add_argument("--top", type=int, default=15, help="ops printed")
    bench.parser.add_argument("--batch-size", type=int, default=8)
    bench.parser.add_argument("--seq-len", type=int, default=128, help="tokens per sample")
    bench.parser.add_argument("--max-nodes", type=int, default=64, help="most subgraph nodes per sample")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    torch.manual_seed(args.seeds[0])
    inputs = overhead.make_inputs(args)
    base = AutoModelForCausalLM.from_pretrained(packaged_model_path(overhead.MODEL))
    steps = {}
    for variant in args.variants:
        model, loss_fn = overhead.build(variant, copy.deepcopy(base), inputs, args.max_nodes)
        model.train()
        optimizer = torch.optim.AdamW(overhead.trainable_parameters(model), lr=1e-4)
        overhead.train_step(loss_fn, optimizer)  # warm-up
        steps[variant] = (loss_fn, optimizer)
    ms = {variant: Counter() for variant in args.variants}
    for _ in range(args.steps):
        for variant, (loss_fn, optimizer) in steps.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                overhead.train_step(loss_fn, optimizer)
            for event in prof.key_averages():
                ms[variant][event.key] += event.self_cpu_time_total / 1e3 / args.steps
    a, b = args.variants
    totals = {v: sum(ms[v].values()) for v in args.variants}
    print(f"batch {args.batch_size} x {args.seq_len} tokens, threads={args.threads}, {args.steps} profiled steps each")
    print(f"self CPU ms per step: {a} {totals[a]:,.0f}, {b} {totals[b]:,.0f} ({totals[b] / totals[a]:.3f}x)")
    print(f"{'op':<60} {a:>14} {b:>14} {'difference':>11}")
    ops = sorted(set(ms[a]) | set(ms[b]), key=lambda op: ms[a][op] - ms[b][op])
    for op in ops[: args.top]:
        print(f"{op[:60]:<60} {ms[a][op]:14.1f} {ms[b][op]:14.1f} {ms[b][op] - ms[a][op]:+11.1f}")
        bench.add(op=op, reference=a, variant=b, reference_ms=ms[a][op], variant_ms=ms[b][op])
    bench.write(args, steps=args.steps, reference_total_ms=totals[a], variant_total_ms=totals[b])


if __name__ == "__main__":
    main()
