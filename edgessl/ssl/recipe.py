"""Pretraining recipes: a TOML file of ``edgessl pretrain`` settings, overridden by CLI flags.

A recipe's top-level keys are ``PretrainConfig`` fields (``epochs = 100``); an ``[augment]``
table overrides fields of the method's augmentation preset and a ``[method_options]`` table
sets the method's own options (``temperature = 0.1``). Unknown keys anywhere are errors
that list the valid ones. On the command line, ``--aug KEY=VALUE`` and ``--opt KEY=VALUE`` do
the same as the two tables, with VALUE in TOML syntax (``--aug crop_scale=0.08,1.0`` works
too).

Switches that replace or continue an existing run (``force``, ``resume``) come from the
command line only: a recipe is a file that may come from anyone, and must not be able to
delete a folder the user never named with ``--force``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgessl.config import tomllib
from edgessl.errors import ConfigError, file_problem

TABLES = {"augment": "augment_overrides", "method_options": "method_options"}

COMMAND_LINE_ONLY = {"force": "--force", "resume": "--resume"}
"""PretrainConfig fields a recipe may not set, with the flag that sets them."""


def parse_assignment(text: str, flag: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE in TOML syntax (a bare word is a string, ``a,b`` a list)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise ConfigError(f"{flag} expects KEY=VALUE, got '{text}' (e.g. {flag} blur_p=0)")
    if "," in raw and not raw.startswith("["):
        raw = f"[{raw}]"
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as a name
    return key, value


def parse_assignments(items: list[str] | None, flag: str) -> dict[str, Any]:
    return dict(parse_assignment(item, flag) for item in items or [])


def load_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe at ``path`` as PretrainConfig keyword values (tables renamed)."""
    from edgessl.ssl.pretrain import PretrainConfig

    path = Path(path).expanduser()
    problem = file_problem(path)
    if problem:
        raise ConfigError(f"recipe '{path}' {problem}; pass a .toml file to --config")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe '{path}' is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"recipe '{path}' cannot be read ({exc.strerror or exc}); pass a "
                          ".toml file to --config") from None
    allowed = {f.name for f in dataclasses.fields(PretrainConfig)} - set(TABLES.values())
    allowed -= {"augment", *COMMAND_LINE_ONLY}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in COMMAND_LINE_ONLY:
            raise ConfigError(f"recipe '{path}': key '{key}' is not allowed in a recipe; pass "
                              f"{COMMAND_LINE_ONLY[key]} on the command line to "
                              f"{'replace' if key == 'force' else 'continue'} an existing run")
        if key in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"recipe '{path}': '{key}' must be a table ([{key}])")
            out[TABLES[key]] = value
        elif key in allowed:
            out[key] = value
        else:
            raise ConfigError(f"recipe '{path}': unknown key '{key}'. Valid keys: "
                              f"{', '.join(sorted(allowed | set(TABLES)))}")
    return out


def merge(recipe: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Recipe values overridden by the flags given (None = not given); tables merge per key."""
    merged = dict(recipe)
    for key, value in flags.items():
        if value is None:
            continue
        if key in TABLES.values():
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return merged
