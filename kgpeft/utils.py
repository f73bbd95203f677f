"""Small helpers shared across kgpeft."""

from __future__ import annotations

import builtins
import gc
import os
import reprlib
import shutil
import tempfile
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from kgpeft.errors import KGPeftError, OutputPathError, PathNameError


class _ShortRepr(reprlib.Repr):
    """:mod:`reprlib` with room for a setting's value, and big numbers and bytes shown without converting them whole."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple, self.maxset = 3, 8, 8, 8, 8
        self.maxstring = self.maxother = self.maxlong = limit

    def repr_int(self, x: int, level: int) -> str:
        # A YAML hex literal can be a number of any size; its decimal repr past 4300 digits raises ValueError.
        if x.bit_length() > 4 * self.maxlong:
            return f"<int of {x.bit_length()} bits>"
        return super().repr_int(x, level)

    def repr_bytes(self, x: bytes, level: int) -> str:
        s = builtins.repr(x[: self.maxstring])
        return s if len(x) <= self.maxstring else f"{s[:-1]}...{s[-1]}"


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error message: at most about ``limit`` characters, cut with ``...``.

    A container shows its first items, 3 levels deep, and a long string its start and end, so
    the work is bounded too: a config value built by YAML aliases may hold billions of items.
    """
    text = _ShortRepr(limit).repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


@contextmanager
def quiet_checkpointing_deprecation() -> Iterator[None]:
    """Hide, inside the block, the ``FutureWarning`` transformers 5 gives when peft reads ``is_gradient_checkpointing``.

    peft's ``PeftModel`` asks every model it wraps for that deprecated property; the warning tells
    users to change code that is not theirs. Every other warning still shows, as does this one
    outside the block.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def umask() -> int:
    """The process's umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def share(tree: Path) -> None:
    """Give ``tree`` and everything in it the permissions of newly created files and folders.

    Temporary files and folders (``mkstemp``, ``mkdtemp``, safetensors' own temporary file)
    are owner-only; what kgpeft publishes gets ``0o666`` (files) or ``0o777`` (folders)
    less the umask, as ``open`` and ``mkdir`` would give it.
    """
    mask = umask()
    paths = [tree, *tree.rglob("*")] if tree.is_dir() else [tree]
    for path in paths:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def replace_folder(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing any folder there.

    The old folder is renamed aside before the new one takes its place, so a crash at any
    moment leaves either the old folder or the new one at ``target``, never a mix.
    """
    share(tmp)
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(tmp, target)
    shutil.rmtree(old)


def merge_folder(tmp: Path, target: Path, keep: Collection[str] = ()) -> None:
    """Move the entries of the finished folder ``tmp`` into the existing folder ``target``.

    Entries of ``target`` named in ``keep`` stay unless ``tmp`` has one of the same name; all
    others are removed. Each entry is replaced atomically, but not the folder as a whole.
    """
    share(tmp)
    new = sorted(p.name for p in tmp.iterdir())
    for name in new:
        if (tmp / name).is_dir():
            if (target / name).exists() and not (target / name).is_dir():
                (target / name).unlink()
            replace_folder(tmp / name, target / name)
        else:
            if (target / name).is_dir() and not (target / name).is_symlink():
                shutil.rmtree(target / name)
            os.replace(tmp / name, target / name)
    tmp.rmdir()
    for old in target.iterdir():
        if old.name not in new and old.name not in keep:
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()


#: Characters no file name may hold on Linux, macOS or Windows: the path separators, and the ones Windows reserves.
_RESERVED_CHARACTERS = frozenset('/\\<>:"|?*')
#: Names Windows gives to devices, with or without an extension.
_WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", *(f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10))})
# File systems hold names of 255 bytes; kgpeft's temporary names add a prefix and a suffix to a name.
_MAX_NAME_BYTES = 200


def check_name(name: Any, what: str, error: type[KGPeftError] = PathNameError) -> str:
    """Return ``name`` if it can be one file or folder name inside any folder; raise ``error`` otherwise.

    kgpeft turns adapter and variant names into folder names, so a name must stay one entry of
    its folder: a non-empty ``str``, not ``.`` or ``..`` nor starting with a dot (kgpeft's lock and
    temporary files are named so), without path separators (``/``, ``\\``),
    NUL or other control characters, and at most 200 bytes in UTF-8 (file systems hold 255; kgpeft's
    temporary names add to it). It must also be a name on
    every system the folder may be copied to (a checkpoint shared on the Hub): none of the
    characters Windows reserves (``<>:"|?*``), no trailing dot or space (Windows drops them, so
    ``a.`` and ``a`` would be one folder), no Windows device name (``CON``, ``NUL``, ``COM1``, ...).

    Args:
        name: the name to check.
        what (str): what it is, named in the message (e.g. ```adapter_name```).
        error (type): the :class:`~kgpeft.errors.KGPeftError` raised (it takes a message).

    Raises:
        PathNameError: (or ``error``) naming ``what``, the value (shortened) and what is wrong with it.
    """
    problem = _name_problem(name)
    if problem is not None:
        raise error(f"{what} should be a file or folder name, got {short_repr(name)}: {problem}.")
    return name


def _name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a file or folder name (see :func:`check_name`), or ``None``."""
    if not isinstance(name, str):
        return f"it is of type {type(name).__name__}, not str"
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "it names the folder itself or the one above it"
    if name.startswith("."):
        return "it starts with a dot: kgpeft names its lock and temporary files so"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it holds a lone surrogate, which no file system can store"
    if size > _MAX_NAME_BYTES:
        return f"it is {size} bytes long in UTF-8, more than {_MAX_NAME_BYTES}"
    bad = next((c for c in name if c in _RESERVED_CHARACTERS or ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        kind = (
            "a path separator" if bad in "/\\" else "a Windows-reserved" if bad in _RESERVED_CHARACTERS else "a control"
        )
        return f"it holds {bad!r} ({kind} character)"
    if name[-1] in ". ":
        return "it ends with a dot or a space, which Windows drops"
    if name.split(".", 1)[0].upper() in _WINDOWS_DEVICES:
        return "it is a device name on Windows"
    return None


def foreign_entries_or_refuse(
    target: Path,
    foreign: Callable[[Path], list[str]],
    force: bool,
    *,
    writer: str,
    owner: str,
    thing: str,
    remedy: str | None = None,
) -> list[str]:
    """The entries of folder ``target`` that ``writer`` did not write (``foreign(target)``), checked.

    Raises :class:`OutputPathError` if ``target`` is a file, or holds such entries and ``force``
    is off; the message names up to 5 of them. ``owner`` says whose files belong there (``"a
    kgpeft adapter's"``), ``thing`` what is written (``"the adapter"``); ``remedy`` replaces the
    advice to pass ``force=True``, for a writer that has no such option.
    """
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"{target} is a file; {writer} writes a folder. Choose another path.")
    others = foreign(target)
    if others and not force:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        remedy = (
            remedy or f"choose an empty or new folder, or pass force=True to write {thing} into it and keep those files"
        )
        raise OutputPathError(f"{target} holds files that are not {owner} ({shown}); {remedy}.")
    return others


@contextmanager
def atomic_folder(target: str | os.PathLike, overwrite: bool = True, keep: Collection[str] = ()) -> Iterator[Path]:
    """Write a folder atomically: yield a temporary folder, publish it at ``target`` on success.

    An existing folder at ``target`` is replaced whole (:func:`replace_folder`), unless it
    must keep some entries (``keep``) or holds the current directory: then the new entries
    are moved into it one by one (:func:`merge_folder`). If the block raises, the temporary
    folder is removed and ``target`` is untouched.
    """
    target = Path(os.path.abspath(target))  # "." and ".." have no name to make a sibling of
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it.")
    in_place = target.is_dir() and (bool(keep) or Path.cwd().resolve().is_relative_to(target.resolve()))
    if not in_place:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target if in_place else target.parent))
    try:
        yield tmp
        if in_place:
            merge_folder(tmp, target, keep)
        else:
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
        share(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def writing(target: Path, partial: Path | None = None, advice: str = "") -> Iterator[None]:
    """Name ``target`` when writing it fails inside the block (a full disk, a lost permission).

    An ``OSError`` or safetensors error becomes an :class:`OutputPathError` naming ``target``, after
    ``partial``, the half-written temporary copy, is removed: nothing incomplete is left to pass for
    a finished folder. kgpeft's own errors pass unchanged. ``advice`` (what to do next) ends the message.
    """
    try:
        yield
    except (OSError, SafetensorError) as e:
        if isinstance(e, KGPeftError):
            raise
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise OutputPathError(
            f"Cannot write {target}: {reason}; nothing half-written is left. "
            + (advice or "Free space (or choose another path) and try again.")
        ) from None


def ensure_writable(path: str | os.PathLike, what: str, folder: bool = True) -> Path:
    """Make sure ``path`` can be written before any expensive work, creating missing folders.

    With ``folder``, ``path`` is a folder to write into; otherwise a file to write, whose
    folder is checked. A test file is created and removed there.

    Raises:
        OutputPathError: ``path`` (or its folder) is a file, holds NUL, or cannot be created or written;
            the message names ``what`` (e.g. ```output_dir```) and the path.
    """
    if "\x00" in os.fspath(path):  # pathlib raises a bare ValueError on it
        raise OutputPathError(f"{what} {short_repr(os.fspath(path))} holds a NUL character, which no path can.")
    path = Path(path)
    where = path if folder else path.parent
    if folder and path.exists() and not path.is_dir():
        raise OutputPathError(f"{what} {path} is a file, not a folder.")
    if not folder and path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file name.")
    try:
        where.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=where).close()
    except OSError as e:
        raise OutputPathError(f"{what} {path} cannot be written: {e.strerror or e}.") from None
    return path


def surrogate_at(text: str) -> int | None:
    """The index of the first lone surrogate in ``text``, or ``None`` if there is none.

    A lone surrogate is half of a UTF-16 pair, not a character: ``json.loads`` makes one of the
    escape ``"\\ud800"``, and Python one of each undecodable byte of standard input or a command-line
    argument (``surrogateescape``). No tokenizer encodes it, so text holding one is refused up front.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
