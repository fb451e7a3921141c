"""Config as data: frozen dataclasses filled from TOML tables, unknown keys are errors.

Every numeric field declares its valid values next to its type, with ``Annotated``::

    image_size: Annotated[int, Range(ge=MIN_TRAIN_SIDE, le=MAX_IMAGE_SIDE, note="pixels")] = 32

and one validator, ``check_fields``, enforces them: it runs in each config's ``__post_init__``
(so the Python API is covered) and therefore in ``from_dict`` (flags, TOML recipes, profiles,
cards). NaN and infinity are refused for every float unless the Range says ``finite=False``; a
tuple's elements are each checked, and ``ordered=True`` asks for low ≤ high. A failure is a
FieldError that names the field: as its CLI option (``--image-size``) for the configs that
mirror a command's flags, or as ``key 'image_size'`` of the file it came from in ``from_dict``.
Standard library only: the deploy runtime vendors this module.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (e.g. a Jetson's Ubuntu 22.04): the same API
    import tomli as tomllib

from edgessl.errors import ConfigError, file_problem, printable

C = TypeVar("C")

# Upper bounds that stop an accidental out-of-memory or forever run (a typo such as an extra
# zero), far above any real use. Image sides are bounded by edgessl.limits.MAX_IMAGE_SIDE.
MIN_TRAIN_SIDE = 8  # below 8 px the blur's reflection padding fails; local views are ≥ 8 px
MAX_EPOCHS = 10_000  # ImageNet SSL recipes run 100-1000 epochs
MAX_BATCH = 65_536  # the largest published SSL batches (SimCLR, BYOL) are 4096-32768
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit
MAX_RUNS = 1_000_000  # timed runs, calibration images, warm-up runs
MAX_WIDTH = 262_144  # head widths and prototypes (DINO's largest head has 262144 outputs)
MAX_THREADS = 4096  # threads, streams, requests in flight
MAX_LR = 100.0  # peak learning rates (LARS with linear scaling reaches ~10)

__all__ = ["Annotated", "Range", "FieldError", "check_fields", "from_dict", "load_toml"]


@dataclasses.dataclass(frozen=True)
class Range:
    """The valid values of a numeric field (of each element, for a tuple or list field).

    Attributes:
        ge, gt, le, lt: bounds (≥, >, ≤, <); None = unbounded on that side.
        finite: refuse NaN and ±infinity (floats).
        ordered: for a tuple, each element ≤ the next (a (low, high) range).
        note: shown after the rule in messages: a unit ("pixels") or a meaning ("0 = off").
        flag: the CLI option of the field when it is not ``--`` + the field name with dashes.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = True
    ordered: bool = False
    note: str = ""
    flag: str | None = None

    def holds(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return not self.finite
        if self.finite and isinstance(value, float) and math.isinf(value):
            return False
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le)
                and (self.lt is None or value < self.lt))

    def rule(self) -> str:
        """The valid values in words: "≥ 1 and ≤ 4096", "> 0 and ≤ 1", "a finite number"."""
        parts = [f"{op} {_number(bound)}" for op, bound in (
            ("≥", self.ge), (">", self.gt), ("≤", self.le), ("<", self.lt)) if bound is not None]
        text = " and ".join(parts) or "a finite number"
        low = (self.ge, "≤") if self.ge is not None else (self.gt, "<")
        high = (self.le, "≤") if self.le is not None else (self.lt, "<")
        if self.ordered and low[0] is not None and high[0] is not None:
            text = (f"(low, high) with {_number(low[0])} {low[1]} low ≤ high {high[1]} "
                    f"{_number(high[0])}")
        elif self.ordered:
            text = f"(low, high) with each {text} and low ≤ high"
        return text + (f" ({self.note})" if self.note else "")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


class FieldError(ConfigError):
    """A field's value outside its declared range (or otherwise invalid).

    ``str()`` names the field as ``label``; ``from_dict`` re-words it for a file's key.

    Attributes:
        field: the dataclass field name.
        problem: "must be ≥ 1, got 0" (what is wrong, without the field's name).
    """

    def __init__(self, field: str, problem: str, label: str | None = None) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{label or field} {problem}")


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        text = ", ".join(_shown(v) for v in value[:8])
        return f"({text}{', ...' if len(value) > 8 else ''})"
    return printable(repr(value))[:60]


def _unwrap(annotation: Any) -> tuple[Any, Range | None]:
    """(the annotation without Annotated, its Range); a Range inside ``X | None`` is found."""
    if typing.get_origin(annotation) is Annotated:
        extras = [m for m in annotation.__metadata__ if isinstance(m, Range)]
        return annotation.__origin__, extras[0] if extras else None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [_unwrap(a) for a in typing.get_args(annotation)]
        ranges = [r for _, r in args if r is not None]
        plain = typing.Union[tuple(a for a, _ in args)]  # noqa: UP007 - built at run time
        return plain, ranges[0] if ranges else None
    return annotation, None


@functools.cache
def _fields(cls: type) -> dict[str, tuple[Any, Range | None]]:
    """Field name -> (plain type, Range or None) of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: _unwrap(hints[f.name]) for f in dataclasses.fields(cls)}


def field_label(cls: type, name: str) -> str:
    """How messages name field ``name`` of ``cls`` outside a file.

    Configs of a command's flags set ``FIELD_LABEL = "--"``: ``--image-size`` (or the Range's
    ``flag``). Others set a prefix such as ``"dino "`` (``dino teacher_temp``), or none.
    """
    prefix = getattr(cls, "FIELD_LABEL", "")
    if prefix == "--":
        found = _fields(cls).get(name, (None, None))[1]
        return (found.flag if found and found.flag else None) or "--" + name.replace("_", "-")
    return prefix + name


def check_value(name: str, value: Any, rng: Range, label: str | None = None) -> None:
    """Raise FieldError unless ``value`` (a number, or a tuple/list of numbers) is in ``rng``."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    numbers = [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
    bad = [v for v in numbers if not rng.holds(v)]
    if bad:
        rule = rng.rule()
        if any(isinstance(v, float) and not math.isfinite(v) for v in bad) and rng.finite:
            rule = "a finite number" + ("" if rule.startswith("a finite") else f", {rule}")
        raise FieldError(name, f"must be {rule}, got {_shown(value)}", label)
    if rng.ordered and any(a > b for a, b in zip(numbers, numbers[1:], strict=False)):
        raise FieldError(name, f"must be {rng.rule()}, got {_shown(value)}", label)


def check_fields(config: Any, label: typing.Callable[[str], str] | None = None) -> None:
    """Check every field of the dataclass instance ``config`` against its declared Range.

    Called first in each config's ``__post_init__``. ``label`` names a field in messages
    (default: ``field_label``).

    Raises:
        FieldError: for the first field out of range, NaN or infinite.
    """
    cls = type(config)
    for name, (_, rng) in _fields(cls).items():
        value = getattr(config, name)
        if rng is not None and value is not None:
            check_value(name, value, rng, label(name) if label else field_label(cls, name))


def _type_ok(value: Any, annotation: Any) -> bool:
    annotation = _unwrap(annotation)[0]
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
        if origin is tuple and args and Ellipsis not in args:  # tuple[float, float]: 2 items
            return len(value) == len(args) and all(map(_type_ok, value, args))
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


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if typing.get_origin(annotation) is None and hasattr(annotation, "__name__"):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def _as_float(value: Any, key: str, where: str) -> Any:
    """An int given for a float field as a float (an int too large for a float is an error)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return value
    try:
        return float(value)
    except OverflowError:
        raise ConfigError(f"{where}: key '{key}' must be a finite number, got an integer of "
                          f"{len(str(abs(value)))} digits") from None


def from_dict(cls: type[C], data: dict[str, Any], where: str = "config",
              flags: typing.Collection[str] = ()) -> C:
    """Build the frozen dataclass ``cls`` from ``data``, checking keys, types and ranges.

    Args:
        cls: the config dataclass.
        data: key -> value, e.g. a TOML table.
        where: where ``data`` came from, for messages ("recipe 'r.toml'").
        flags: keys whose value came from a command-line option: their errors name the
            option (``--image-size``) instead of ``where``'s key.

    Raises:
        ConfigError: on an unknown key (listing the valid keys), a missing required key, a
            value of the wrong type or out of its declared range, naming the key and ``where``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of key = value, got {type(data).__name__}")
    fields = _fields(cls)
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{printable(unknown[0])}'. Valid keys: "
            f"{', '.join(sorted(fields))}"
        )
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.init]
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f"{where}: missing key '{missing[0]}' (required: {', '.join(required)})")
    values: dict[str, Any] = {}
    for key, value in data.items():
        annotation = fields[key][0]
        if not _type_ok(value, annotation):
            raise ConfigError(f"{where}: key '{key}' must be {_type_name(annotation)}, got "
                              f"{type(value).__name__} {_shown(value)}")
        if typing.get_origin(annotation) is tuple:
            value = tuple(_as_float(v, key, where) if float in typing.get_args(annotation)
                          else v for v in value)
        elif annotation is float or float in typing.get_args(annotation):
            value = _as_float(value, key, where)
        values[key] = value
    try:
        return cls(**values)
    except FieldError as exc:
        if exc.field in flags:
            raise FieldError(exc.field, exc.problem, field_label(cls, exc.field)) from None
        raise FieldError(exc.field, exc.problem, f"{where}: key '{exc.field}'") from None
    except (TypeError, ValueError, OverflowError) as exc:  # from a __post_init__ check
        raise ConfigError(f"{where}: {exc}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning a missing or malformed file into a ConfigError."""
    path = Path(path)
    problem = file_problem(path)  # "does not exist", "is a folder, not a file", "is empty"
    if problem:
        raise ConfigError(f"config file '{path}' {problem}; pass the path to a .toml file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}' is not valid TOML: {exc}") from None
