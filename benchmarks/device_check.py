"""The GPU device check: one short prepared run (under 8 minutes on one H200) whose results land in JSON.

``benchmarks/device_check.sh`` runs it as-is on a GPU machine (``python -m benchmarks.device_check``);
``--smoke`` runs the same code on a CPU at toy sizes, so the script is known to work before any GPU
time is spent. Sections, each
timed and recorded even when another fails:

1. **cuda tests**: the test suite's CUDA-marked tests (``pytest -m cuda``) and the two-process
   FSDP2 test, with their pass/fail/skip counts.
2. **steps**: training steps (forward, backward, AdamW) on a SmolLM2-135M-shaped model, batch
   ``--batch-size`` x ``--seq-len``: plain peft LoRA, LoRA with 2 facts written into the prompt,
   and KG-LoRA in memory mode (the main job's design: 2 facts as key/value slots) and token mode;
   under bf16 autocast, and with a 4-bit (NF4, QLoRA-style) base when bitsandbytes is installed.
   Variants are interleaved within each round after a warm-up; per variant: median step
   seconds, tokens/s (prompt tokens / step time) and the peak training memory it adds (CUDA
   allocator peak over what was allocated before its step). The packaged SmolLM2 weights are
   used when ``kgpeft.pretrained`` finds them; else the same architecture from its config
   (random weights time the same).
3. **families**: the main memory design (``configs/demo.yaml``'s adapter) on tiny Qwen3 (q/k norms) and
   Phi-3 (fused q/k/v) models, in bf16 and with a 4-bit base: finite losses and gradients over a few
   steps, the step time against plain LoRA, and an adapter reading no facts against LoRA (max logit
   difference).
4. **main job**: ``kgpeft demo`` with ``configs/demo_gpu.yaml`` (a GPU-sized budget), when the
   packaged SmolLM2 and WordNet are on the machine; its headline table and wall time.

Usage::

    python -m benchmarks.device_check --out runs/device_check            # on a GPU machine
    python -m benchmarks.device_check --smoke --out /tmp/device_check    # anywhere, toy sizes

Nothing is asserted: the JSON (``--output``; each section's results at its top level, the step
times as its rows) says what ran, what it measured and what was skipped and why. ``--out`` holds
what the sections write (the tests' JUnit XML, the main job's folder).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import ROOT, Benchmark

SMOLLM2 = {  # SmolLM2-135M-Instruct's architecture (its config.json)
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
}
QKVO = ["q_proj", "k_proj", "v_proj", "o_proj"]
#: The main job's memory design (configs/demo.yaml's adapter section, less its rank and targets).
MAIN_MEMORY = {
    "knowledge_mode": "memory",
    "memory_positions": "prefix",
    "memory_softmax": "shared",
    "memory_encoder": "trained",
    "memory_facts_together": True,
    "memory_gate_opening": 0.99,
    "memory_gate_scale": 1.0,
}
#: Tiny models of two more families, read by the main memory design: q/k norms (Qwen3) and a fused q/k/v
#: projection (Phi-3), each with its attention targets.
FAMILIES = {
    "qwen3": ("Qwen3Config", {"num_key_value_heads": 2, "head_dim": 16}, QKVO),
    "phi3": ("Phi3Config", {"num_key_value_heads": 2, "pad_token_id": 0}, ["qkv_proj", "o_proj"]),
}


def section(results: dict[str, Any], name: str, fn, *args) -> None:
    """Run one section, recording its result, or its error, and its seconds."""
    t0 = time.perf_counter()
    try:
        results[name] = fn(*args)
    except Exception as e:  # a failing section must not lose the others
        results[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
    results[name + "_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"[{name}] {results[name + '_seconds']} s: {json.dumps(results[name], default=str)[:600]}", flush=True)


# ------------------------------------------------------------------ cuda tests
def cuda_tests(out: Path, smoke: bool) -> dict[str, Any]:
    xml = out / "cuda_tests.xml"
    tests = ["tests/test_cuda.py"] if smoke else ["tests/test_cuda.py", "tests/training/test_fsdp.py"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *tests]
    if not smoke:
        command += ["-m", "cuda or slow"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return {"returncode": done.returncode, **counts, "failed": failed, "tail": done.stdout[-1500:]}


# ----------------------------------------------------------------------- steps
def base_model(device: str, quantized: bool, smoke: bool):
    """SmolLM2-135M (packaged weights when found, else its architecture), or a 2-layer toy with ``smoke``."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    kwargs: dict[str, Any] = {}
    if quantized:
        from kgpeft.pipeline.base_model import quantized_loading

        kwargs.update(quantized_loading("4bit"))
    try:
        if smoke:
            raise FileNotFoundError("toy model for --smoke")
        from kgpeft.pretrained import packaged_model_path

        path, source = packaged_model_path("SmolLM2-135M-Instruct"), "packaged weights"
    except Exception:
        values = {**SMOLLM2, "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128} if smoke else SMOLLM2
        values = {**values, "num_attention_heads": 4, "num_key_value_heads": 2} if smoke else values
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kgpeft-device-check-{'toy' if smoke else 'smollm2'}"
        if not (path / "config.json").is_file():
            torch.manual_seed(0)
            AutoModelForCausalLM.from_config(LlamaConfig(**values)).save_pretrained(path)
        source = "architecture only (random weights)"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    if quantized:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = model.to(device)
    return model, source


def toy_kg():
    """A KG of 9 entities and 7 facts whose labels are single words, and a word-level tokenizer of them: the
    steps time the model, so the KG only has to be valid (``tests/tiny_models.py`` has the same one)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from kgpeft import KnowledgeGraph

    names = ["dog", "cat", "animal", "pet", "bank", "river", "money", "tree", "big cat"]
    triples = torch.tensor([[0, 1, 0, 1, 4, 4, 7], [0, 0, 0, 0, 1, 2, 1], [2, 2, 3, 3, 5, 6, 5]])
    kg = KnowledgeGraph(names, ["is_a", "near", "holds"], triples, labels=names)
    words = ["[PAD]", "[UNK]", *dict.fromkeys(w for name in names for w in name.split())]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return kg, PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def step_inputs(device: str, batch: int, seq: int, vocab: int, facts: int, fact_len: int):
    """Random prompts (``seq`` tokens; ``seq + facts * fact_len`` with the facts written in), and a
    knowledge batch with one linked token per sample and ``facts`` memory facts of ``fact_len`` tokens."""
    from kgpeft.retrieval import SubgraphRetriever, batch_node_index
    from kgpeft.tuners import KnowledgeBatch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, vocab, (batch, seq), generator=g)
    with_facts = torch.cat([torch.randint(100, vocab, (batch, facts * fact_len), generator=g), ids], dim=1)
    kg, tokenizer = toy_kg()
    graph = SubgraphRetriever(kg, num_neighbors=[-1, -1], max_nodes=16)([[i % 8] for i in range(batch)])
    tokens = torch.full((batch, seq), -1)
    tokens[:, 1] = torch.arange(batch) % 8  # one linked token per sample
    knowledge = KnowledgeBatch(
        graph,
        batch_node_index(graph, torch.arange(batch)[:, None], tokens),
        fact_ids=torch.randint(100, vocab, (batch, facts, fact_len), generator=g),
        fact_mask=torch.ones(batch, facts, fact_len, dtype=torch.bool),
    )

    def inputs(x):
        x = x.to(device)
        return {"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x}

    return kg, tokenizer, inputs(ids), inputs(with_facts), knowledge.to(device)


def steps(device: str, quantized: bool, args: argparse.Namespace) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model

    from kgpeft import KGLoraConfig, get_kg_peft_model

    probe, source = base_model(device, quantized, args.smoke)
    vocab = probe.config.vocab_size
    del probe
    kg, tokenizer, plain, with_facts, knowledge = step_inputs(
        device, args.batch_size, args.seq_len, vocab, 2, args.fact_len
    )
    variants: dict[str, tuple[Any, dict[str, Any]]] = {}
    torch.manual_seed(0)
    lora = get_peft_model(base_model(device, quantized, args.smoke)[0], LoraConfig(r=8, target_modules=QKVO))
    variants["lora"] = (lora, plain)
    variants["lora+2 facts"] = (lora, with_facts)
    for mode in ("memory", "token"):
        config = KGLoraConfig(
            r=8, target_modules=QKVO, **(MAIN_MEMORY if mode == "memory" else {"knowledge_mode": mode})
        )
        model = get_kg_peft_model(base_model(device, quantized, args.smoke)[0], config, kg, tokenizer)
        variants[f"kg-lora {mode}"] = (model.to(device) if not quantized else model, {**plain, "knowledge": knowledge})
    optimizers = {}
    for model, _ in variants.values():
        model.train()
        if id(model) not in optimizers:
            optimizers[id(model)] = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    autocast = torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16)

    def step(name: str) -> float:
        model, batch = variants[name]
        optimizer = optimizers[id(model)]
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    memory = {}
    for name in variants:  # warm-up, and each variant's peak training memory over what is resident
        step(name)
        if device == "cuda":
            torch.cuda.empty_cache()
            resident = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step(name)
            memory[name] = (torch.cuda.max_memory_allocated() - resident) / 2**20
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name in variants:
            times[name].append(step(name))
    out: dict[str, Any] = {"model": source, "batch": [args.batch_size, args.seq_len], "quantized": quantized}
    lora_s = statistics.median(times["lora"])
    for name, t in times.items():
        seconds = statistics.median(t)
        tokens = variants[name][1]["input_ids"].numel()
        out[name] = {
            "step_s": round(seconds, 4),
            "tokens_per_s": round(tokens / seconds),
            "step_vs_lora": round(seconds / lora_s, 3),
            **({"train_memory_mb": round(memory[name], 1)} if name in memory else {}),
        }
    return out


# ------------------------------------------------------------ other families
def family_model(family: str, quantized: bool, device: str):
    """A tiny random model of ``family`` (2 layers, width 64), saved once and loaded (in 4 bits with ``quantized``)."""
    import transformers
    from transformers import AutoModelForCausalLM

    name, extra, _ = FAMILIES[family]
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kgpeft-device-check-{family}"
    if not (path / "config.json").is_file():
        torch.manual_seed(0)
        config = getattr(transformers, name)(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, **extra
        )
        AutoModelForCausalLM.from_config(config).save_pretrained(path)
    kwargs: dict[str, Any] = {}
    if quantized:
        from kgpeft.pipeline.base_model import quantized_loading

        kwargs.update(quantized_loading("4bit"))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
    return model if quantized else model.to(device)


def families(device: str, quantized: bool, args: argparse.Namespace) -> dict[str, Any]:
    """Per family: the main memory design's training steps under bf16 autocast (4-bit base with ``quantized``):
    the step time against plain LoRA, finite losses and gradients, and the identity that an adapter reading no
    facts is the plain LoRA model (largest logit difference; 0 up to the precision's rounding)."""
    from peft import LoraConfig, get_peft_model

    from kgpeft import KGLoraConfig, get_kg_peft_model
    from kgpeft.tuners import KnowledgeBatch

    batch, seq = (2, 16) if args.smoke else (args.batch_size, args.seq_len)
    kg, tokenizer, plain, _, knowledge = step_inputs(device, batch, seq, 256, 2, 6)
    plain = {k: v % 256 for k, v in plain.items()}
    knowledge.fact_ids = knowledge.fact_ids % 256
    autocast = torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16)
    out: dict[str, Any] = {}
    for family, (_, _, targets) in FAMILIES.items():
        torch.manual_seed(0)
        lora = get_peft_model(family_model(family, quantized, device), LoraConfig(r=8, target_modules=targets))
        torch.manual_seed(0)
        config = KGLoraConfig(r=8, target_modules=targets, **MAIN_MEMORY)
        memory = get_kg_peft_model(family_model(family, quantized, device), config, kg, tokenizer)
        memory = memory if quantized else memory.to(device)
        with torch.no_grad(), autocast:
            empty = KnowledgeBatch.empty(batch, seq).to(device)
            difference = (memory(**plain, knowledge=empty).logits.float() - lora(**plain).logits.float()).abs().max()
        row: dict[str, Any] = {"no_facts_vs_lora_max_abs": difference.item()}
        for name, (model, inputs) in {
            "lora": (lora, plain),
            "memory": (memory, {**plain, "knowledge": knowledge}),
        }.items():
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
            times, losses = [], []
            for _ in range(args.rounds + 1):  # the first is a warm-up
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                with autocast:
                    loss = model(**inputs).loss
                loss.backward()
                finite = all(p.grad is None or bool(p.grad.isfinite().all()) for p in model.parameters())
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if device == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
                losses.append(loss.item() if finite else float("nan"))
            row[name] = {"step_s": round(statistics.median(times[1:]), 4), "losses": [round(x, 4) for x in losses]}
        row["memory"]["step_vs_lora"] = round(row["memory"]["step_s"] / row["lora"]["step_s"], 3)
        row["finite"] = all(x == x for part in ("lora", "memory") for x in row[part]["losses"])
        out[family] = row
    return out


# -------------------------------------------------------------------- main job
def main_job(out: Path, smoke: bool) -> dict[str, Any]:
    if smoke:
        return {"skipped": "--smoke"}
    try:
        from kgpeft.datasets.wordnet import wordnet_dir
        from kgpeft.pretrained import packaged_model_path

        packaged_model_path("SmolLM2-135M-Instruct")
        wordnet_dir()
    except Exception as e:
        return {"skipped": f"the main job needs the packaged SmolLM2 and WordNet on this machine: {e}"}
    folder = out / "demo"
    command = [sys.executable, "-m", "kgpeft.cli", "demo", "--config", "configs/demo_gpu.yaml"]
    command += ["--output-dir", str(folder), "--threads", "8"]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=330)
    result: dict[str, Any] = {"returncode": done.returncode, "wall_s": round(time.perf_counter() - t0, 1)}
    if (folder / "results.json").is_file():
        results = json.loads((folder / "results.json").read_text())
        result["headline"] = {
            v["name"]: {c: m.get(results["headline"][0]) for c, m in v["metrics"].items()} for v in results["variants"]
        }
    result["tail"] = (done.stdout + done.stderr)[-2000:]
    return result


def benchmark() -> Benchmark:
    bench = Benchmark("device_check", __doc__, seeds=None, threads=None)
    parser = bench.parser
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/device_check")))
    parser.add_argument("--smoke", action="store_true", help="CPU, toy model, 2 rounds: check the script itself")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--fact-len", type=int, default=12, help="tokens per fact (prompt and memory)")
    parser.add_argument("--rounds", type=int, default=10)
    return bench


def main(argv: Sequence[str] | None = None) -> None:
    bench = benchmark()
    args = bench.parse(argv)
    if args.smoke:
        args.batch_size, args.seq_len, args.rounds = 2, 16, 2
    args.out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "bitsandbytes": importlib.util.find_spec("bitsandbytes") is not None,
        "smoke": args.smoke,
    }
    t0 = time.perf_counter()
    section(results, "cuda_tests", cuda_tests, args.out, args.smoke)
    section(results, "steps_bf16", steps, device, False, args)
    if device == "cuda" and results["bitsandbytes"]:
        section(results, "steps_4bit", steps, device, True, args)
    else:
        results["steps_4bit"] = {"skipped": "needs a CUDA GPU and bitsandbytes"}
    section(results, "families_bf16", families, device, False, args)
    if device == "cuda" and results["bitsandbytes"]:
        section(results, "families_4bit", families, device, True, args)
    else:
        results["families_4bit"] = {"skipped": "needs a CUDA GPU and bitsandbytes"}
    section(results, "main_job", main_job, args.out, args.smoke)
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    for name in ("steps_bf16", "steps_4bit"):
        for variant, row in results[name].items():
            if isinstance(row, dict) and "step_s" in row:
                bench.add(section=name, variant=variant, **row)
    bench.write(args, **results)


if __name__ == "__main__":
    main()
