"""Config as data: frozen dataclasses filled from TOML tables, unknown keys are errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (e.g. a Jetson's Ubuntu 22.04): the same API
    import tomli as tomllib

from edgessl.errors import ConfigError, printable

C = TypeVar("C")


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            return False
        inner = args[0] if args else Any
        return all(_type_ok(v, inner) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build the frozen dataclass ``cls`` from ``data``, checking keys and value types.

    Raises:
        ConfigError: on an unknown key (listing the valid keys) or a value of the wrong type.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of key = value, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{printable(unknown[0])}'. Valid keys: "
            f"{', '.join(sorted(fields))}"
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        annotation = hints[key]
        if not _type_ok(value, annotation):
            shown = getattr(annotation, "__name__", str(annotation))
            raise ConfigError(
                f"{where}: key '{key}' must be {shown}, got {type(value).__name__} {value!r}"
            )
        if typing.get_origin(annotation) is tuple and isinstance(value, list):
            value = tuple(value)
        if annotation is float and isinstance(value, int):
            value = float(value)
        values[key] = value
    try:
        return cls(**values)
    except (TypeError, ValueError, OverflowError) as exc:  # from a __post_init__ check
        raise ConfigError(f"{where}: {exc}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning a missing or malformed file into a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass the path to a .toml file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}' is not valid TOML: {exc}") from None
