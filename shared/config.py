"""Typed dataclass configs: to and from JSON, with validation that names the bad field.

Every app has one dataclass config (nested dataclasses allowed, e.g. a `TrainConfig` inside an app config). The
config is saved as `config.json` beside every run and checkpoint, and the model is rebuilt from it on load. The
command line is derived from the same dataclass by `shared.cli` using the field docstrings found here.

Field documentation is the string literal written right after a field (PEP 257 "attribute docstrings"):

    @dataclass
    class TrainConfig:
        steps: int = 1000
        \"\"\"Optimiser steps to train for.\"\"\"
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from shared.atomic import atomic_write_json
from shared.errors import ConfigError

T = TypeVar("T")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """{field name: docstring} for a dataclass, read from its source (empty where there is none)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


@cache
def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass's fields (works with `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against type `tp` (converting strings from the command line and lists from JSON).

    Supports bool, int, float, str, Path, None, Optional/Union, Literal, tuple[...] / list[...] and nested
    dataclasses (from dicts). Raises ConfigError naming `where` (e.g. "train.lr") on a mismatch.
    """
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        for a in args:
            if value == a or (isinstance(value, str) and not isinstance(a, str) and str(a) == value):
                return a
        raise ConfigError(f"{where}: must be one of {', '.join(repr(a) for a in args)}, got {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list of values, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)} ({value!r})")
            items = [coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            elem = args[0] if args else Any
            items = [coerce(v, elem, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a JSON object for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: unsupported config type {_type_name(tp)}")


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build dataclass `cls` from a dict, rejecting unknown fields and values of the wrong type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ConfigError(
            f"{prefix}unknown field {unknown[0]!r} for {cls.__name__}; valid fields: {', '.join(sorted(names))}"
        )
    hints = field_types(cls)
    kwargs = {k: coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict:
    """Plain JSON-able dict of a dataclass (tuples become lists, Paths strings)."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(cfg)


def load_json(cls: type[T], path: str | Path) -> T:
    """Read a config JSON file into `cls`; a missing or malformed file is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid JSON ({e})") from None
    return from_dict(cls, data, where=path.name)


def save_json(cfg: Any, path: str | Path) -> None:
    atomic_write_json(path, to_dict(cfg))


def replace(cfg: T, **changes) -> T:
    """dataclasses.replace with validation of the new values."""
    hints = field_types(type(cfg))
    checked = {k: coerce(v, hints[k], k) for k, v in changes.items() if k in hints}
    unknown = set(changes) - set(hints)
    if unknown:
        raise ConfigError(f"unknown field {sorted(unknown)[0]!r} for {type(cfg).__name__}")
    return dataclasses.replace(cfg, **checked)
