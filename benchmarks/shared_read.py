"""The cost of reading memory slots in the text's softmax (``memory_softmax='shared'``), per attention layer.

:func:`kgpeft.tuners.shared_softmax.shared_read` has two computations of the same function: one fused
``scaled_dot_product_attention`` over ``[slots; text]`` (what a layer runs), and the slots' share from the
text's log-sum-exp, which recomputes every text score outside a fused kernel (what ran before, and still runs
for soft caps, a bias with a gradient, recorded shares and attention dropout). One forward and backward of each
on SmolLM2-135M's shapes (9 query heads, 3 key/value heads of 64, ``--batch-size`` x ``--seq-len`` tokens, causal,
``--slots`` slots of which a quarter padding), interleaved round after round (``benchmarks/timing.py``); the
ratio is the median of the per-round ratios with its 95% interval, and the largest difference between the two
outputs is printed. Times 30 (the model's layers) is what a training step spends on it. Nothing is asserted.

    python -m benchmarks.shared_read [--threads 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from benchmarks.harness import Benchmark
from benchmarks.timing import interval, ratio_interval, rounds
from kgpeft.tuners.geometry import Geometry
from kgpeft.tuners.shared_softmax import shared_read, text_mask

HEADS, KV_HEADS, HEAD_DIM, LAYERS = 9, 3, 64, 30  # SmolLM2-135M


def benchmark() -> Benchmark:
    bench = Benchmark("shared_read", __doc__, threads=1)
    bench.parser.add_argument("--batch-size", type=int, default=8)
    bench.parser.add_argument("--seq-len", type=int, default=128)
    bench.parser.add_argument("--slots", type=int, default=20, help="memory slots per sample")
    bench.parser.add_argument("--max-rounds", type=int, default=40)
    return bench


def inputs(b: int, t: int, m: int, seed: int) -> tuple:
    """A layer's read: queries, attention output, text keys and values, causal mask, slots, slot mask, gate."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g).requires_grad_()

    causal = torch.ones(t, t, dtype=torch.bool).tril()[None, None].expand(b, 1, t, t)
    slots = torch.ones(b, 1, m, dtype=torch.bool)
    slots[..., m - m // 4 :] = False
    q, keys, values = rand(b, t, HEADS, HEAD_DIM), rand(b, KV_HEADS, t, HEAD_DIM), rand(b, KV_HEADS, t, HEAD_DIM)
    with torch.no_grad():  # the layer's own attention over the text, as its output projection receives it
        k, v = (x.repeat_interleave(HEADS // KV_HEADS, dim=1) for x in (keys, values))
        attended = F.scaled_dot_product_attention(q.transpose(1, 2), k, v, is_causal=True).transpose(1, 2)
    return (
        q,
        attended.flatten(-2).requires_grad_(),
        keys,
        values,
        text_mask(causal, t, t, torch.float32, torch.device("cpu")),
        rand(b, m, KV_HEADS, HEAD_DIM),
        rand(b, m, KV_HEADS, HEAD_DIM),
        slots,
        None,
        torch.full((HEADS,), 0.99),
    )


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    read = inputs(args.batch_size, args.seq_len, args.slots, args.seeds[0])
    geometry = Geometry(scaling=HEAD_DIM**-0.5)

    def step(shares: bool):
        out, _ = shared_read(*read, geometry, shares=shares)
        out.sum().backward()
        return out.detach()

    difference = float((step(False) - step(True)).abs().max())
    times = rounds({"fused": lambda: step(False), "log-sum-exp": lambda: step(True)}, most=args.max_rounds)
    fused, lse = (interval(times[k])[0] for k in ("fused", "log-sum-exp"))
    ratio, half = ratio_interval(times["fused"], times["log-sum-exp"])
    print(
        f"batch {args.batch_size} x {args.seq_len} tokens, {args.slots} slots, threads={args.threads}, "
        f"{len(times['fused'])} rounds; forward and backward of one layer's read"
    )
    print(f"fused:       {1e3 * fused:7.1f} ms  (x{LAYERS} layers: {LAYERS * fused:.2f} s)")
    print(f"log-sum-exp: {1e3 * lse:7.1f} ms  (x{LAYERS} layers: {LAYERS * lse:.2f} s)")
    print(f"fused / log-sum-exp: {ratio:.3f}x +-{half:.3f}; largest difference of the outputs {difference:.1e}")
    bench.add(fused_ms=1e3 * fused, log_sum_exp_ms=1e3 * lse, ratio=ratio, ratio_ci95=half, max_difference=difference)
    bench.write(args, rounds=len(times["fused"]))


if __name__ == "__main__":
    main()
