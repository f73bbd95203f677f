"""Small helpers shared across kgpeft."""

from __future__ import annotations

import difflib
import gc
import os
import shutil
import tempfile
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block.

    Parsing a large KG builds millions of small acyclic objects (strings, tuples), and
    each allocation burst triggers collections that scan all of them again; pausing the
    collector meanwhile roughly halves parse time. It is restored even if the block raises.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def replace_folder(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing any folder there.

    The old folder is renamed aside before the new one takes its place, so a crash at any
    moment leaves either the old folder or the new one at ``target``, never a mix.
    """
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(tmp, target)
    shutil.rmtree(old)


@contextmanager
def atomic_folder(target: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Write a folder atomically: yield a temporary sibling, publish it at ``target`` on success.

    If the block raises, the temporary folder is removed and ``target`` is untouched.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it private; saved folders are meant to be shared
        replace_folder(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Write a file atomically: yield a temporary sibling path, rename it to ``target`` on success.

    The file gets the permissions of a newly created file (mkstemp's are owner-only). If the
    block raises, the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def dataclass_from_dict(cls: type, values: dict[str, Any], what: str, error: type[Exception]) -> Any:
    """``cls(**values)`` after checking each key exists and each value has the annotated type.

    Errors (``error``) name the key, suggest a close match for a typo and say what type was expected.
    """
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints or key.startswith("_"):
            close = difflib.get_close_matches(key, list(hints), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(hints)}."
            raise error(f"unknown key {key!r} in {what}{hint}")
        if not _has_type(value, hints[key]):
            expected = _type_name(hints[key])
            note = ""
            if isinstance(value, str) and float in _flatten(hints[key]):
                note = " (YAML reads `1e-4` as a string; write `1.0e-4`)"
            raise error(f"`{key}` in {what} should be {expected}, got {type(value).__name__} {value!r}{note}.")
    return cls(**values)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _flatten(hint: Any) -> list[Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(hint) for t in _flatten(arg)]
    return [hint]


def _has_type(value: Any, hint: Any) -> bool:
    for option in _flatten(hint):
        origin, args = typing.get_origin(option), typing.get_args(option)
        if option is type(None) and value is None:
            return True
        if origin is Literal and value in args:
            return True
        if origin is list and isinstance(value, (list, tuple)) and all(_has_type(v, args[0]) for v in value):
            return True
        if origin is dict and isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return True
        if option is bool and isinstance(value, bool):
            return True
        if option is int and is_int(value):
            return True
        if option is float and (isinstance(value, float) or is_int(value)):
            return True
        if option is str and isinstance(value, str):
            return True
    return False


def _type_name(hint: Any) -> str:
    names = []
    for option in _flatten(hint):
        origin, args = typing.get_origin(option), typing.get_args(option)
        if option is type(None):
            names.append("None")
        elif origin is Literal:
            names.append(" | ".join(repr(a) for a in args))
        elif origin is list:
            names.append(f"a list of {_type_name(args[0])}")
        elif origin is dict:
            names.append("a mapping")
        else:
            names.append(option.__name__)
    return " or ".join(names)
