"""A tiny training run; ``accelerate launch --num_processes 2 --cpu ddp_script.py OUT`` runs it as DDP.

Each process records, after every optimizer step, a hash of its trainable parameters and
the samples it was given, in ``OUT/rank{i}.json``. The tests import the helpers from here.
Run with ``PYTHONPATH=tests`` so ``tiny_models`` imports.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from tiny_models import ARCHITECTURES, build_model, make_knowledge, tiny_kg, tiny_tokenizer
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.data import DataLoader

from kgpeft import KGLoraConfig, get_kg_peft_model
from kgpeft.training.config import TrainingConfig
from kgpeft.training.trainer import train

SEQ_LEN = 6
FIRST_ENTITY_WORD = 2  # token ids 2..9 ("dog" ... "tree") name entities 0..7 of tiny_kg()


def make_model(lora_dropout: float = 0.1):
    _, model_config, auto = ARCHITECTURES[1]  # llama
    config = KGLoraConfig(knowledge_mode="token", r=4, graph_channels=16, lora_dropout=lora_dropout)
    return get_kg_peft_model(build_model(model_config, auto), config, tiny_kg(), tokenizer=tiny_tokenizer())


def make_dataset(n: int, seed: int = 0, first_id: int = 0) -> list[dict]:
    """``n`` samples; every third one links no entity, so its batch may leave the graph encoder unused."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(n):
        input_ids = torch.randint(FIRST_ENTITY_WORD, 14, (SEQ_LEN,), generator=g).tolist()
        entities = [t - FIRST_ENTITY_WORD if t < FIRST_ENTITY_WORD + 8 and i % 3 else -1 for t in input_ids]
        samples.append({"id": first_id + i, "input_ids": input_ids, "token_entity": entities})
    return samples


def collate(samples: list[dict]) -> dict:
    input_ids = torch.tensor([s["input_ids"] for s in samples])  # (B, T)
    seeds = [sorted({e for e in s["token_entity"] if e >= 0}) for s in samples]
    knowledge = make_knowledge(tiny_kg(), seeds, [s["token_entity"] for s in samples])
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": input_ids.clone(),
        "knowledge": knowledge,
    }


def trainable_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def count_predictions(model, accelerator) -> dict[str, float]:
    """An ``evaluate`` callback: how many eval predictions reach every process after gathering."""
    loader = accelerator.prepare(DataLoader(make_dataset(5, seed=1, first_id=100), batch_size=2, collate_fn=collate))
    predictions = []
    for batch in loader:
        logits = model(**batch).logits  # (B, T, V)
        # gather_for_metrics drops the samples repeated to even out the last batch across processes
        predictions.append(accelerator.gather_for_metrics(logits[:, -1].argmax(-1)))
    return {"predictions": float(torch.cat(predictions).numel())}


def main(out: Path) -> None:
    model = make_model()
    hashes, seen = [], []
    register_optimizer_step_post_hook(lambda *_: hashes.append(trainable_hash(model)))

    def train_collate(samples):
        seen.extend(s["id"] for s in samples)
        return collate(samples)

    config = TrainingConfig(
        output_dir=str(out / "run"),
        max_steps=4,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=2,
        learning_rate=1e-2,
        gradient_accumulation_steps=1,
        logging_steps=1,
        eval_steps=2,
        save_steps=2,
        progress_bar=False,
        seed=0,
    )
    result = train(
        model,
        make_dataset(12),
        train_collate,
        config,
        eval_dataset=make_dataset(5, seed=1, first_id=100),
        evaluate=count_predictions,
    )
    rank = PartialState().process_index
    record = {"hashes": hashes, "seen": seen, "metrics": result.metrics, "global_step": result.global_step}
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    # Leave the process group before exiting, so that no gloo thread is still running when the
    # interpreter shuts down ("terminate called without an active exception", seen under load).
    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
