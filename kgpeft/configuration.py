"""The one config path: every config class is read through :func:`dataclass_from_dict`.

A config class is a dataclass whose fields have defaults and ``field(metadata={"help": ...})``
(read by :func:`field_help`, e.g. for command-line options) and whose ``__post_init__``
validates the values, raising a :class:`ConfigError` subclass that names the key and the
value. :func:`read_yaml` reads a config file; :func:`dataclass_from_dict` checks its keys
and types and builds the dataclass, nested sections included::

    >>> dataclass_from_dict(JobConfig, read_yaml("job.yaml"), "job config", JobConfigError)
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
import stat
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from kgpeft.errors import KGPeftError
from kgpeft.utils import short_repr

T = TypeVar("T")


class ConfigError(KGPeftError, ValueError):
    """A config is unreadable, or holds an unknown key, a wrongly typed value or an invalid value."""


#: The most bytes of a config file :func:`read_yaml` reads: a config is settings, not data.
MAX_CONFIG_BYTES = 1 << 20
#: The most values and characters YAML aliases may add to a config by repeating their anchors'
#: values. Repeating a section a few times adds hundreds; an "alias bomb" of a few hundred bytes
#: would add billions, and the type error that prints such a value would never finish.
MAX_ALIAS_EXPANSION = 100_000


def read_config_text(path: str | os.PathLike) -> str:
    """The text of the config file ``path``: a file or a pipe (``--config <(...)``), at most
    :data:`MAX_CONFIG_BYTES` bytes of UTF-8.

    Raises:
        ConfigError: ``path`` cannot be opened, is a device or other non-file (``/dev/zero`` would be
            read forever), is larger than :data:`MAX_CONFIG_BYTES` or is not UTF-8; the message names it.
    """
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                kind = "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "neither a file nor a pipe"
                raise ConfigError(f"{path}: cannot read config: it is {kind}; give a YAML file.")
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: cannot read config: larger than {MAX_CONFIG_BYTES:,} bytes; a config holds settings, not data."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: cannot read config: not UTF-8 (byte {data[e.start]:#04x} at {e.start})") from None


def read_json(file: str | os.PathLike, error: type[KGPeftError], prefix: str = "") -> Any:
    """The JSON value in ``file``; ``error`` naming the file (after ``prefix``) and the line and
    column of a syntax error if it cannot be read or parsed."""
    try:
        return json.loads(Path(file).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{prefix}{file}: not UTF-8 ({e.reason} at byte {e.start}).") from None
    except json.JSONDecodeError as e:
        raise error(f"{prefix}{file}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}).") from None
    except OSError as e:
        raise error(f"{prefix}{file}: cannot be read ({e.strerror or e}).") from None


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping of settings in the YAML file ``path`` (an empty file is ``{}``).

    The file is read by :func:`read_config_text` (a file or a pipe, at most :data:`MAX_CONFIG_BYTES`).
    Anchors and aliases may repeat values, up to :data:`MAX_ALIAS_EXPANSION` values and characters in
    all, but no value may hold itself.

    Raises:
        ConfigError: the file cannot be read or parsed, repeats a key within one mapping (naming the
            key and both lines), expands beyond the alias bound, or holds something other than a mapping.
    """
    import yaml

    text = read_config_text(path)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            _check_unique_keys(node, loader, path, set())
            _check_alias_expansion(node, path)
            values = None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except ConfigError:
        raise
    except (yaml.YAMLError, ValueError) as e:  # ValueError: a date like 2001-02-30, an int of 5000 digits
        message = " ".join(str(e).split())  # PyYAML's text, which may quote a long alias name or tag
        message = message if len(message) <= 300 else message[:297] + "..."
        raise ConfigError(f"{path}: cannot read config ({message})") from None
    except RecursionError:
        raise ConfigError(f"{path}: cannot read config: values nested too deeply.") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(values).__name__}.")
    return values


def _check_unique_keys(node, loader, path: str | os.PathLike, seen: set[int]) -> None:
    """Raise :class:`ConfigError` at a key repeated within one mapping of a composed YAML document.

    PyYAML keeps the last of repeated keys silently. Keys merged in with ``<<`` may still be overridden.
    """
    import yaml

    if node is None or isinstance(node, yaml.ScalarNode) or id(node) in seen:
        return
    seen.add(id(node))  # an alias can make a node its own descendant
    first_line: dict[Any, int] = {}
    for item in node.value:
        if isinstance(node, yaml.SequenceNode):
            _check_unique_keys(item, loader, path, seen)
            continue
        key_node, value_node = item
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key, line = loader.construct_object(key_node), key_node.start_mark.line + 1
            if key in first_line:
                raise ConfigError(f"{path}:{line}: duplicate key {short_repr(key)} (first on line {first_line[key]}).")
            first_line[key] = line
        _check_unique_keys(value_node, loader, path, seen)


def _check_alias_expansion(root, path: str | os.PathLike) -> None:
    """Raise :class:`ConfigError` if the composed YAML document ``root`` holds itself through an alias, or if its
    aliases add more than :data:`MAX_ALIAS_EXPANSION` values and characters (a scalar counts 1 plus its length).

    Each alias repeats its anchor's whole value, nested aliases included: the added size is the sum, over
    the places where a node is reached again, of its expanded size. Each node is expanded once (memoised).
    """
    import yaml

    size: dict[int, int] = {}  # id(node) -> its size with every alias in it expanded
    added = 0

    def expand(node, parent) -> int:
        nonlocal added
        key = id(node)
        if key in size:
            if size[key] < 0:
                line = node.start_mark.line + 1
                raise ConfigError(
                    f"{path}:{line}: this value holds itself through a YAML alias to its own anchor; write it out."
                )
            added += size[key]
            if added > MAX_ALIAS_EXPANSION:
                raise ConfigError(
                    f"{path}:{parent.start_mark.line + 1}: YAML aliases repeat values beyond {MAX_ALIAS_EXPANSION:,} "
                    "values and characters (an alias bomb?); write the repeated settings out."
                )
            return size[key]
        size[key] = -1  # being expanded: reaching it again from inside is a cycle
        if isinstance(node, yaml.ScalarNode):
            total = 1 + len(node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(expand(item, node) for item in node.value)
        else:
            total = 1 + sum(expand(k, node) + expand(v, node) for k, v in node.value)
        size[key] = total
        return total

    if root is not None:
        expand(root, root)


def field_help(cls: type) -> dict[str, str]:
    """``{field name: help text}`` of a config dataclass, from ``field(metadata={"help": ...})``."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.init}


def dataclass_from_dict(
    cls: type[T], values: Mapping[str, Any], what: str, error: type[KGPeftError] = ConfigError
) -> T:
    """``cls(**values)`` after checking that each key exists and each value has the annotated type.

    A field annotated with a dataclass type (or ``SomeConfig | None``) is a nested section: a
    mapping there is read by this function too, and its errors name the section.

    Args:
        cls: the config dataclass.
        values: the settings, e.g. from :func:`read_yaml`.
        what: names ``values`` in messages (``"training config"``; a section's name for nested ones).
        error: the :class:`ConfigError` subclass (or other :class:`KGPeftError` taking a message) raised for an
            unknown key, a wrong type or a missing key.

    Raises:
        ConfigError: (``error``) an unknown key (with a close match, if any), a value of the wrong type (a
            string for a number, a number out of ``float`` range) or a missing required key; the class's own
            ``__post_init__`` errors pass through unchanged.
    """
    return cls(**_checked(cls, values, what, error))


def check_field_types(obj: Any, error: type[KGPeftError] = ConfigError) -> None:
    """Raise ``error`` naming the first field of the dataclass ``obj`` whose value is not of its annotated type.

    Config classes call it first thing in ``__post_init__``, so a config built in Python (not read through
    :func:`dataclass_from_dict`) gets the same type errors: ``KGLoraConfig(lora_dropout="0.1")`` says
    ``lora_dropout`` should be float rather than failing on a comparison. A ``Literal`` field only needs a
    value of the right kind here; ``__post_init__`` says which values it takes.
    """
    hints = _type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.init:
            _check_value(f.name, getattr(obj, f.name), hints[f.name], type(obj).__name__, error, literal_kind=True)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_value(
    key: str, value: Any, hint: Any, what: str, error: type[KGPeftError], literal_kind: bool = False
) -> None:
    if not _has_type(value, hint, literal_kind):
        note = ""
        if isinstance(value, str) and float in _flatten(hint):
            note = " (YAML reads `1e-4` as a string; write `1.0e-4`)"
        elif is_int(value) and not _is_int64(value):
            note = " (beyond 64 bits)"
        raise error(
            f"`{key}` in {what} should be {_type_name(hint)}, got {type(value).__name__} {short_repr(value)}{note}."
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise error(f"`{key}` in {what} should be a finite number, got {value!r}.")


def _checked(cls: type, values: Mapping[str, Any], what: str, error: type[KGPeftError]) -> dict[str, Any]:
    """The keyword arguments of ``cls``: keys and types checked, nested sections built."""
    if not isinstance(values, Mapping):
        raise error(f"{what} should be a mapping of settings, got {type(values).__name__} {short_repr(values)}.")
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(fields)}."
            raise error(f"unknown key {short_repr(key)} in {what}; {hint}")
        section = _section_class(hints[key])
        items = _list_section_class(hints[key])
        if items is not None and isinstance(value, (list, tuple)):
            value = [_build_section(items, v, f"{key}[{i}]", error) for i, v in enumerate(value)]
        elif section is not None and isinstance(value, Mapping):
            value = _build_section(section, value, key, error)
        else:
            _check_value(key, value, hints[key], what, error)
        kwargs[key] = value
    missing = [name for name, f in fields.items() if name not in kwargs and _is_required(f)]
    if missing:
        raise error(f"the key {missing[0]!r} is required in {what}.")
    return kwargs


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_int64(value: int) -> bool:
    """Whether ``value`` fits in 64 bits: no setting needs more, and a YAML hex literal of thousands of digits,
    printed in an error, would exceed Python's 4300-digit limit on converting ints to text."""
    return -(2**63) <= value < 2**63


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _flatten(hint: Any) -> list[Any]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(hint) for t in _flatten(arg)]
    return [hint]


def _list_section_class(hint: Any) -> type | None:
    """The dataclass ``D`` of a ``list[D]`` option of ``hint``, if any: a list of sections."""
    for option in _flatten(hint):
        if typing.get_origin(option) is list:
            return _section_class(typing.get_args(option)[0])
    return None


def _build_section(cls: type, value: Any, what: str, error: type[KGPeftError]) -> Any:
    """A nested section: a ready instance, or a mapping checked and built; its own errors name ``what``."""
    if isinstance(value, cls):
        return value
    kwargs = _checked(cls, value, what, error)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise error(f"{what}: {e}") from None


def _section_class(hint: Any) -> type | None:
    """The dataclass among the options of ``hint``, if any."""
    return next((t for t in _flatten(hint) if isinstance(t, type) and dataclasses.is_dataclass(t)), None)


def _has_type(value: Any, hint: Any, literal_kind: bool = False) -> bool:
    """Whether ``value`` is of type ``hint`` (with ``literal_kind``, a ``Literal`` takes its values' types)."""
    for option in _flatten(hint):
        origin, args = typing.get_origin(option), typing.get_args(option)
        if option is Any:
            return True
        if option is type(None) and value is None:
            return True
        if origin is Literal and (value in args or (literal_kind and type(value) in {type(a) for a in args})):
            return True
        if origin is list and isinstance(value, (list, tuple)) and all(_has_type(v, args[0]) for v in value):
            return True
        if origin is tuple and isinstance(value, (list, tuple)) and all(_has_type(v, args[0]) for v in value):
            return True  # tuple[X, ...]
        if origin is dict and isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return True
        if option is bool and isinstance(value, bool):
            return True
        if option is int and is_int(value) and _is_int64(value):
            return True
        if option is float and (isinstance(value, float) or (is_int(value) and _is_int64(value))):
            return True
        if option is str and isinstance(value, str):
            return True
        if isinstance(option, type) and dataclasses.is_dataclass(option) and isinstance(value, option):
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
        elif origin in (list, tuple):
            names.append(f"a list of {_type_name(args[0])}")
        elif origin is dict or (isinstance(option, type) and dataclasses.is_dataclass(option)):
            names.append("a mapping")
        else:
            names.append(getattr(option, "__name__", str(option)))
    return " or ".join(names)
