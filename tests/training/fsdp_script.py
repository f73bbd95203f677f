"""Two CPU processes of FSDP2 (``torch.distributed.fsdp.fully_shard``, gloo) over a KG-LoRA model.

``python -m torch.distributed.run --nproc_per_node 2 fsdp_script.py OUT`` shards every decoder
layer and the root, turns on activation checkpointing, and trains 3 AdamW steps, each process
on its own half of a batch of 4. After every step each process records a hash of the full
(gathered) trainable parameters and their largest difference from an unsharded reference
trained on the whole batch in the same process. At the end, the full state dict is gathered
to rank 0 and saved with ``save_pretrained(state_dict=...)``, as the trainer does under FSDP,
and loaded back. Results go to ``OUT/rank{i}.json``. Run with ``PYTHONPATH=tests``.

accelerate runs FSDP only on accelerators (its CPU backend is DDP), so this drives
``fully_shard`` directly: the same wrapping accelerate applies on a GPU
(``configs/accelerate/fsdp.yaml``), which ``benchmarks/device_check.sh`` runs through the trainer.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from ddp_script import collate, make_dataset, make_model
from tiny_models import ARCHITECTURES, build_model, tiny_kg, tiny_tokenizer
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from kgpeft.model import KGPeftModel

STEPS = 3


def full(p: torch.Tensor) -> torch.Tensor:
    return p.full_tensor() if isinstance(p, DTensor) else p


def trainable(model) -> dict[str, torch.Tensor]:
    """Every trainable parameter, gathered whole (a collective: every process calls it)."""
    return {n: full(p.detach()) for n, p in sorted(model.named_parameters()) if p.requires_grad}


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = make_model(lora_dropout=0.0)
    torch.manual_seed(0)
    reference = make_model(lora_dropout=0.0)
    for m in (model, reference):
        m.gradient_checkpointing_enable()
        m.train()
    for layer in model.base_model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    sharded = sum(isinstance(p, DTensor) for p in model.parameters())
    optimizers = [
        torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2) for m in (model, reference)
    ]
    data = make_dataset(4 * STEPS)
    hashes, differences, losses = [], [], []
    for step in range(STEPS):
        batch = data[4 * step : 4 * step + 4]
        mine = batch[2 * rank : 2 * rank + 2]
        for m, samples, optimizer in ((model, mine, optimizers[0]), (reference, batch, optimizers[1])):
            loss = m(**collate(samples)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if m is model:
                losses.append(loss.item())
        params, ref = trainable(model), trainable(reference)
        h = hashlib.sha256()
        for name, p in params.items():
            h.update(name.encode())
            h.update(p.contiguous().numpy().tobytes())
        hashes.append(h.hexdigest())
        differences.append(max((params[n] - ref[n]).abs().max().item() for n in ref))

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    record = {"sharded": sharded, "hashes": hashes, "differences": differences, "losses": losses}
    if rank == 0:
        model.save_pretrained(out / "adapter", state_dict=state)
        _, model_config, auto = ARCHITECTURES[1]
        base = build_model(model_config, auto)
        loaded = KGPeftModel.from_pretrained(base, out / "adapter", tiny_kg(), tiny_tokenizer())
        ref, back = trainable(reference), dict(loaded.named_parameters())
        record["loaded_difference"] = max((back[n].detach() - ref[n]).abs().max().item() for n in ref)
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
