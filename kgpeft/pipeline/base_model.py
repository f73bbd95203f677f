"""The job's base model: its folder checked before anything loads, then loaded (optionally quantised) offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import transformers
from peft import prepare_model_for_kbit_training
from safetensors import SafetensorError, safe_open
from transformers import CONFIG_MAPPING, AutoTokenizer, BitsAndBytesConfig

from kgpeft.configuration import read_json
from kgpeft.pipeline.config import JobConfig, JobConfigError
from kgpeft.pretrained import PACKAGED_MODELS, packaged_model_path

# Files one of which a Hugging Face model folder's tokenizer is read from.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
)


def check_model_folder(config: JobConfig) -> Path | None:
    """The job's local model folder, checked before anything loads (``None`` for a packaged model).

    It must hold a ``config.json`` (a JSON object whose ``model_type`` transformers knows), tokenizer
    files, and only whole safetensors files (their headers are read: a truncated file is found here).

    Raises:
        JobConfigError: ``model`` names neither a packaged model nor a Hugging Face model folder, or one
            of its files is missing or damaged; the message names the file (and the line or key).
    """
    if config.model in PACKAGED_MODELS:
        return None
    path = Path(config.model)
    if not path.is_dir():
        raise JobConfigError(
            f"model: {config.model!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) nor a local folder."
        )
    if not (path / "config.json").is_file():
        raise JobConfigError(
            f"model: {path} has no config.json; expected a Hugging Face model folder (written by save_pretrained)."
        )
    file = path / "config.json"
    values = read_json(file, JobConfigError, "model: ")
    if not isinstance(values, dict):
        raise JobConfigError(f"model: {file}: expected a JSON object of settings, got a JSON {type(values).__name__}.")
    model_type = values.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        got = "missing" if model_type is None else repr(model_type)
        raise JobConfigError(
            f"model: `model_type` in {file} is {got}, not a model type this transformers knows (e.g. 'llama', "
            "'gpt2', 'bert'); correct it, or upgrade transformers for a newer architecture."
        )
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise JobConfigError(
            f"model: {path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the model's tokenizer there "
            "too (`tokenizer.save_pretrained(folder)`)."
        )
    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except (SafetensorError, OSError) as e:
            raise JobConfigError(
                f"model: {weights} is not a whole safetensors file (truncated or corrupt?): {e}; copy it again."
            ) from None
    return path


def quantized_loading(quantization: str) -> dict:
    """``from_pretrained`` arguments that load a base model quantised by bitsandbytes on the current GPU.

    ``"4bit"`` is QLoRA's: NF4 weights, double quantisation, bfloat16 compute.

    Raises:
        JobConfigError: bitsandbytes is not installed, or there is no CUDA GPU.
    """
    if importlib.util.find_spec("bitsandbytes") is None:
        raise JobConfigError(f"`quantization: {quantization}` needs bitsandbytes: `pip install bitsandbytes`.")
    if not torch.cuda.is_available():
        raise JobConfigError(f"`quantization: {quantization}` needs a CUDA GPU (bitsandbytes); none is available.")
    if quantization == "4bit":
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    return {"quantization_config": config, "device_map": {"": torch.cuda.current_device()}}


def load_base_model(config: JobConfig, folder: Path | None = None):
    """``(model, tokenizer)`` for the job's base model, offline; ``folder``: what :func:`check_model_folder`
    returned for ``config``, when the caller checked it already (its headers are not read twice)."""
    auto = getattr(transformers, config.task_kind.model_class)
    path = folder or check_model_folder(config) or packaged_model_path(config.model)
    kwargs = {"num_labels": config.num_labels} if config.task_kind.classifier else {}
    if config.quantization != "none":
        kwargs.update(quantized_loading(config.quantization))
    # What check_model_folder cannot see (a damaged tokenizer file or shard index), named; the tokenizer first, as
    # it is quicker to load.
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise JobConfigError(f"model: cannot load the tokenizer in {path}: {e}") from None
    torch.manual_seed(config.seed)  # a classification head starts from the same weights every time
    try:
        model = auto.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        raise JobConfigError(f"model: cannot load the model in {path}: {e}") from None
    if config.quantization != "none":
        # Norms in float32 and input gradients on; gradient checkpointing stays kgpeft's to turn on
        # (training.gradient_checkpointing), which keeps the knowledge context for recomputation.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer
