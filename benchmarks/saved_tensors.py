"""What a training step keeps for backward, by module: the memory accounting behind ``overhead``.

Runs one forward of each variant of :mod:`benchmarks.overhead` on its batch (SmolLM2,
``--batch-size`` x ``--seq-len`` tokens) under ``torch.autograd.graph.saved_tensors_hooks``,
and sums the bytes of every tensor autograd saves for backward, once per storage (views
of one tensor count once), leaving out parameters and buffers. Each storage is charged to
the module whose forward was running when it was first saved; modules of repeated layers
are summed (``layers.N``). The difference between a variant and plain LoRA is what its
knowledge path keeps; the peak RSS that ``overhead.py`` reports adds the transient memory
of the backward pass and the allocator's slack on top. Nothing is asserted.

    python -m benchmarks.saved_tensors                  # lora, token, memory
    python -m benchmarks.saved_tensors --variants lora memory --top 12
"""

from __future__ import annotations

import collections
import copy
import re
from collections.abc import Sequence

import torch
from torch import nn
from transformers import AutoModelForCausalLM

from benchmarks.harness import Benchmark
from benchmarks.overhead import MODEL, VARIANTS, build, make_inputs
from kgpeft.pretrained import packaged_model_path


def saved_by_module(model: nn.Module, loss_fn) -> dict[str, tuple[int, int]]:
    """``{module (layers summed): (bytes, storages)}`` of what one forward of ``loss_fn`` saves for backward."""
    exclude = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    names = {m: n for n, m in model.named_modules()}
    stack = ["(outside any module)"]
    first: dict[int, tuple[int, str]] = {}

    def enter(module, args):
        stack.append(names.get(module, type(module).__name__))

    def leave(module, args, output):
        stack.pop()

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in exclude and storage.data_ptr() not in first:
            first[storage.data_ptr()] = (storage.nbytes(), stack[-1])
        return tensor

    hooks = [
        nn.modules.module.register_module_forward_pre_hook(enter),
        nn.modules.module.register_module_forward_hook(leave, always_call=True),
    ]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss_fn()
    finally:
        for hook in hooks:
            hook.remove()
    groups: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for nbytes, module in first.values():
        key = re.sub(r"\.\d+(\.|$)", r".N\1", module).removeprefix("peft_model.")
        groups[key][0] += nbytes
        groups[key][1] += 1
    return {k: (v[0], v[1]) for k, v in groups.items()}


def benchmark() -> Benchmark:
    bench = Benchmark("saved_tensors", __doc__, one_seed=True)
    parser = bench.parser
    parser.add_argument("--variants", nargs="+", default=["lora", "token", "memory"], choices=VARIANTS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-nodes", type=int, default=64)
    parser.add_argument("--top", type=int, default=8, help="modules listed per variant")
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    inputs = make_inputs(args)
    base = AutoModelForCausalLM.from_pretrained(packaged_model_path(MODEL))  # each variant on a copy
    totals = {}
    for variant in args.variants:
        model, loss_fn = build(
            variant, None if variant == "gretriever" else copy.deepcopy(base), inputs, args.max_nodes
        )
        model.train()
        groups = saved_by_module(model, loss_fn)
        totals[variant] = sum(b for b, _ in groups.values())
        storages = sum(n for _, n in groups.values())
        print(f"\n{variant}: {totals[variant] / 2**20:.1f} MiB saved for backward in {storages} storages")
        bench.add(variant=variant, module="(all)", mib=totals[variant] / 2**20, storages=storages)
        for key, (nbytes, count) in sorted(groups.items(), key=lambda kv: -kv[1][0])[: args.top]:
            bench.add(variant=variant, module=key, mib=nbytes / 2**20, storages=count)
            print(f"  {nbytes / 2**20:8.1f} MiB {count:5d}  {key}")
    if "lora" in totals:
        print(
            "\nabove plain LoRA: "
            + ", ".join(f"{v} {(t - totals['lora']) / 2**20:+.1f} MiB" for v, t in totals.items())
        )
    bench.write(args)


if __name__ == "__main__":
    main()
