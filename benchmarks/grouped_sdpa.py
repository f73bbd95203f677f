"""The inline memory read's attention call on a CPU: grouped key/value heads read by SDPA, or copied to the queries.

Given a mask, transformers' ``sdpa_attention_forward`` copies each key/value head to its query heads
(``repeat_kv``), as CUDA's fused kernels need; the CPU's fused kernel reads grouped heads with a mask itself
(``enable_gqa``), which :func:`kgpeft.tuners.inline_read._grouped_sdpa` calls. One forward and backward of each on
SmolLM2-135M's shapes (9 query heads, 3 key/value heads), the main design's (``--batch-size`` x ``--seq-len``
queries over ``--slots`` slots before the text, a causal float mask, the gates' two extra query/key channels:
head size 66), interleaved round after round (``benchmarks/timing.py``); the ratio is the median of the per-round
ratios with its 95% interval, and the largest difference between the two outputs is printed. Times 30 (the
model's layers) is what a training step spends on it. Nothing is asserted.

    python -m benchmarks.grouped_sdpa [--threads 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from benchmarks.harness import Benchmark
from benchmarks.timing import interval, ratio_interval, rounds
from kgpeft.tuners.inline_read import _grouped_sdpa

HEADS, KV_HEADS, HEAD_DIM, LAYERS = 9, 3, 66, 30  # SmolLM2-135M, with the gates' two channels


def benchmark() -> Benchmark:
    bench = Benchmark("grouped_sdpa", __doc__, threads=1)
    bench.parser.add_argument("--batch-size", type=int, default=8)
    bench.parser.add_argument("--seq-len", type=int, default=128)
    bench.parser.add_argument("--slots", type=int, default=20, help="memory slots per sample")
    bench.parser.add_argument("--max-rounds", type=int, default=40)
    return bench


def inputs(b: int, t: int, m: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Queries ``(B, H, T, d)``, keys and values ``(B, H_kv, M + T, d)`` with grad, and the mask
    ``(B, 1, T, M + T)``: every slot, then the text causally."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g).requires_grad_()

    seen = torch.ones(t, m + t, dtype=torch.bool).tril(m)
    mask = torch.zeros(b, 1, t, m + t).masked_fill(~seen, torch.finfo(torch.float32).min)
    return rand(b, HEADS, t, HEAD_DIM), rand(b, KV_HEADS, m + t, HEAD_DIM), rand(b, KV_HEADS, m + t, HEAD_DIM), mask


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    q, k, v, mask = inputs(args.batch_size, args.seq_len, args.slots, args.seeds[0])
    module = SimpleNamespace(num_key_value_groups=HEADS // KV_HEADS, is_causal=True)

    def step(call):
        out, _ = call(module, q, k, v, mask, dropout=0.0, scaling=HEAD_DIM**-0.5)
        out.sum().backward()
        return out.detach()

    difference = float((step(_grouped_sdpa) - step(sdpa_attention_forward)).abs().max())
    times = rounds({"grouped": lambda: step(_grouped_sdpa), "copied": lambda: step(sdpa_attention_forward)},
                   most=args.max_rounds)  # fmt: skip
    grouped, copied = (interval(times[key])[0] for key in ("grouped", "copied"))
    ratio, half = ratio_interval(times["grouped"], times["copied"])
    print(
        f"batch {args.batch_size} x {args.seq_len} queries, {args.slots} slots, threads={args.threads}, "
        f"{len(times['grouped'])} rounds; forward and backward of one layer's attention call"
    )
    print(f"grouped (enable_gqa): {1e3 * grouped:7.1f} ms  (x{LAYERS} layers: {LAYERS * grouped:.2f} s)")
    print(f"copied (repeat_kv):   {1e3 * copied:7.1f} ms  (x{LAYERS} layers: {LAYERS * copied:.2f} s)")
    print(f"grouped / copied: {ratio:.3f}x +-{half:.3f}; largest difference of the outputs {difference:.1e}")
    bench.add(grouped_ms=1e3 * grouped, copied_ms=1e3 * copied, ratio=ratio, ratio_ci95=half, max_difference=difference)
    bench.write(args, rounds=len(times["grouped"]))


if __name__ == "__main__":
    main()
