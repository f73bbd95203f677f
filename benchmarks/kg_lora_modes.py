"""KG-LoRA alone on the main job's data and settings, for the knowledge modes given.

Trains KG-LoRA exactly as ``kgpeft demo`` does (same questions, held-out entities, steps,
batch, learning rate, seed) for each ``--modes`` entry and prints its exact match and token
F1 on the held-out questions, to compare modes without re-running the baselines. Nothing is
asserted.

Usage::

    python benchmarks/kg_lora_modes.py --modes token cross
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch

from kgpeft import demo
from kgpeft.datasets import hypernym_qa, load
from kgpeft.model import get_kg_peft_model
from kgpeft.pretrained import load_packaged_model
from kgpeft.retrieval import RetrievalConfig
from kgpeft.training import KnowledgeCollator, KnowledgeDataset, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", nargs="+", default=["token", "cross"], choices=["token", "cross", "prefix"])
    parser.add_argument("--max-steps", type=int, default=demo.DemoConfig.max_steps)
    args = parser.parse_args()
    config = demo.DemoConfig(max_steps=args.max_steps)
    torch.set_num_threads(config.threads)
    kg = load("wordnet")
    tasks = hypernym_qa(kg, seed=config.seed)
    train_examples = demo._sample(tasks["train"], config.train_examples, config.seed)
    test_examples = demo._sample(tasks["test"], config.test_examples, config.seed)
    base, tokenizer = load_packaged_model(config.model)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    retriever = RetrievalConfig(max_nodes=config.max_nodes).build_retriever(kg, seed=config.seed)
    common = {"retriever": retriever, "max_length": 48, "seed": config.seed}
    train_data = KnowledgeDataset(train_examples, tokenizer, kg, **common)
    test_data = KnowledgeDataset(test_examples, tokenizer, kg, with_target=False, **common)
    print(f"{len(train_examples)} training and {len(test_examples)} held-out questions, {config.max_steps} steps")
    for mode in args.modes:
        model = get_kg_peft_model(copy.deepcopy(base), config.adapter_config(knowledge_mode=mode), kg, tokenizer)
        output_dir = tempfile.mkdtemp(prefix=f"kg-lora-{mode}-")
        training = config.training_config(output_dir, logging_steps=10, log_with=[], progress_bar=False)
        t0 = time.perf_counter()
        train(model, train_data, KnowledgeCollator(tokenizer.pad_token_id), training)
        seconds = time.perf_counter() - t0
        result = demo._evaluate(model, test_data, test_examples, config)
        print(f"{mode:<7} train {seconds:5.0f} s   EM {result['exact_match']:5.1f}   F1 {result['token_f1']:5.1f}")


if __name__ == "__main__":
    main()
