"""Backbone weights from a file someone else made: safetensors, or a PyTorch file without code.

What a file is is decided by its CONTENT, never by its name (Lightning and solo-learn save
``.ckpt``, others ``.pt``, ``.pth``, ``.bin`` or ``.tar``):

- a safetensors header (8-byte length, then JSON): read with ``safetensors``; it holds no code
  and is preferred;
- a zip archive (what ``torch.save`` writes since PyTorch 1.6): read only with
  ``torch.load(weights_only=True)``, whose unpickler builds tensors and plain containers and
  refuses everything else; a refusal becomes a CheckpointError in edgessl's words, with torch's
  warnings kept off stderr, and the payload never runs;
- PyTorch's legacy format (``torch.save`` before 1.6, still common for published weights):
  read with the same restricted unpickler, which applies to it as well (torch >= 2.6);
- anything else, a raw ``pickle.dump`` included, is refused without being unpickled at all.

Checkpoints of the common SSL codebases nest the weights and prefix their names; both are
undone here (see ``NESTED_KEYS`` and ``load_into_backbone``):

- nesting: ``{"teacher": ...}`` (DINO, iBOT), ``{"target_encoder": ...}`` (I-JEPA, MSN),
  ``{"state_dict": ...}`` (MoCo, SimSiam, SwAV, Lightning/solo-learn), ``{"model": ...}`` (MAE,
  VICReg, Barlow Twins, DeiT), ``{"encoder_state_dict": ...}``, ...
- prefixes: whichever prefix makes the most names match the backbone's own, so ``module.``,
  ``backbone.``, ``encoder.``, ``model.``, ``module.backbone.``, ``teacher.backbone.``,
  ``module.encoder_q.``, ``module.base_encoder.``, ... need no list.
- heads (``head``, ``fc``, ``projector``, ``predictor``, ``prototypes``, ``decoder*``, ...)
  that the backbone does not have are dropped and reported.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from edgessl.errors import CheckpointError, ConfigError, printable

log = logging.getLogger("edgessl")

# Names under which weights files travel: used to tell a file argument from a backbone name
# (``--backbone w.ckpt`` vs ``--backbone resnet18``), never to decide how a file is read.
WEIGHTS_SUFFIXES = (".safetensors", ".pt", ".pth", ".th", ".bin", ".ckpt", ".tar")
# How to turn a legacy pickle of tensors into safetensors, where the file came from.
CONVERT = ("python -c \"import torch; from safetensors.torch import save_file; "
           "sd = torch.load('IN', map_location='cpu', weights_only=True); "
           "save_file({k: v.contiguous() for k, v in sd.get('state_dict', sd).items()}, "
           "'OUT.safetensors')\"")
# Keys under which training scripts nest the weights, in order of preference. Where a file
# holds both a teacher/target (EMA) network and a student/online one, the teacher comes
# first: DINO, iBOT and I-JEPA evaluate the teacher (I-JEPA calls it ``target_encoder``).
# Another part is picked with ``key`` (``--weights-key student``).
NESTED_KEYS = ("teacher", "target_encoder", "state_dict", "model", "model_state_dict", "module",
               "encoder_state_dict", "encoder", "backbone", "online_network", "network", "net",
               "student")
# A backbone must find at least this share of its tensors in the file. Different
# architectures share few names (or differ in shape, which is refused anyway); a file of the
# right architecture lacks at most a norm or two (e.g. MAE's ``fc_norm``), so 0.9 separates
# the two while a ResNet-18 file for a ResNet-34 (about 60% of names) is still refused.
MIN_MATCH_FRACTION = 0.9
# Name parts of heads that SSL and classification checkpoints carry and backbones do not.
HEAD_PARTS = {"head", "heads", "fc", "classifier", "projector", "projection", "predictor",
              "prototypes", "last_layer", "pre_logits", "dino_head", "ibot_head", "mask_token"}
# BatchNorm's step counter: not a weight, and many files omit it.
COUNTERS = ("num_batches_tracked",)
# Plain containers that full training checkpoints of DINO, MAE and DeiT hold (their ``args``);
# building one runs no code, so allowing it lets such a file load as it is.
SAFE_GLOBALS = [argparse.Namespace]


def is_weights_file(path: str | Path) -> bool:
    """True for an existing file named like weights (.safetensors, .pt, .pth, .ckpt, ...)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in WEIGHTS_SUFFIXES


@dataclass(frozen=True)
class LoadReport:
    """What loading a weights file into a backbone matched, and what it left out.

    Attributes:
        source: the file (or a description of where the weights came from).
        matched: tensors of the backbone found in the file (BN counters not counted).
        total: tensors of the backbone (BN counters not counted).
        missing: backbone tensors the file lacks (they keep their initial values).
        unexpected: file tensors the backbone has no place for, heads excluded.
        dropped_heads: file tensors of heads (fc, head, projector, ...) that were dropped.
        prefix: the prefix stripped from the file's names ("" = none).
        nested_key: the nested dict the weights came from ("teacher", "state_dict", ...).
        alternatives: other nested dicts or prefixes that would also have fitted.
    """

    source: str
    matched: int
    total: int
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    dropped_heads: tuple[str, ...] = ()
    prefix: str = ""
    nested_key: str | None = None
    alternatives: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line: counts, where the weights were found, and the first few names left out."""
        where = "/".join(p for p in (self.nested_key, self.prefix.rstrip(".")) if p) or "top"
        parts = [f"loaded {self.matched}/{self.total} backbone tensors from '{self.source}' "
                 f"(at '{where}')"]
        for label, names in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("heads dropped", self.dropped_heads)):
            if names:
                parts.append(f"{len(names)} {label} ({_first(names)})")
        if self.alternatives:
            parts.append(f"also in the file: {', '.join(self.alternatives)} (--weights-key)")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def _first(names, n: int = 3) -> str:
    names = list(names)
    return ", ".join(printable(k) for k in names[:n]) + (", ..." if len(names) > n else "")


def weights_format(path: Path) -> str:
    """What ``path`` holds, from its first bytes: "safetensors", "torch-zip", "pickle" or
    "unknown". Its name plays no part."""
    with open(path, "rb") as f:
        head = f.read(9)
        size = os.fstat(f.fileno()).st_size
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol 2+: torch's legacy format, pickle.dump
        return "pickle"
    return "unknown"


def _load_torch_file(path: Path, kind: str) -> object:
    """``torch.load(weights_only=True)`` of a zip archive or a legacy torch.save file, any
    refusal in edgessl's words."""
    try:
        # torch warns on stderr about its own options and the storage it builds; a file from
        # elsewhere gets one line from edgessl instead
        # (an open file, not the path: torch would pick a reader by the name's suffix)
        with (warnings.catch_warnings(), torch.serialization.safe_globals(SAFE_GLOBALS),
              open(path, "rb") as f):
            warnings.simplefilter("ignore")
            return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler raises several types
        # torch's message runs to pages (cut mid-word, escape codes); only the name of what
        # its unpickler refused is kept from it
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None and kind == "pickle":
            raise CheckpointError(
                f"refusing to load '{path}': it is a plain pickle, not a PyTorch file of "
                "tensors; only tensors are accepted, from safetensors or torch.save. Convert "
                "it where it was made, from a source you trust: " + CONVERT) from None
        if found is None:
            raise CheckpointError(f"refusing to load '{path}': it is not a readable PyTorch "
                                  f"archive of tensors ({type(exc).__name__}); it is damaged or "
                                  "truncated: copy it again, or pass .safetensors") from None
        raise CheckpointError(
            f"refusing to load '{path}': it contains code or Python objects beyond tensors (a "
            f"pickled '{printable(found.group(1))}'), which could run when loaded; only tensors "
            "are accepted. Save only the weights where it was made, from a source you trust: "
            "from safetensors.torch import save_file; save_file(model.state_dict(), "
            "'weights.safetensors')") from None


def _unnest(obj: object, key: str | None) -> tuple[object, list[str], list[str]]:
    """Descend into nested dicts: ``key`` where present, else the first of NESTED_KEYS.

    Returns the innermost object, the keys taken and the nested keys passed over.
    """
    taken: list[str] = []
    others: list[str] = []
    for _ in range(4):  # {"model": {"module": {...}}} at most a few levels deep
        if not isinstance(obj, dict):
            break
        nested = [k for k in obj if isinstance(k, str) and isinstance(obj[k], dict) and obj[k]
                  and (k == key or k in NESTED_KEYS)]
        if not nested:
            break
        pick = key if key in nested else min(nested, key=NESTED_KEYS.index)
        others += [k for k in nested if k != pick]
        taken.append(pick)
        obj = obj[pick]
    return obj, taken, others


def read_weights(path: str | Path, key: str | None = None) -> tuple[dict[str, torch.Tensor],
                                                                   str | None, list[str]]:
    """Read a weights file, unwrapping nested dicts; see ``load_weights_file``.

    Returns:
        (name -> tensor, the nested keys taken joined by "/" or None, nested keys passed over).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file '{path}' does not exist; check the path")
    try:
        kind = weights_format(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read weights file '{path}': {exc.strerror}") from None
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), None, []
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise CheckpointError(f"'{path}' is not a readable safetensors file ({exc}); it is "
                                  "truncated or not safetensors") from None
    if kind not in ("torch-zip", "pickle"):
        raise CheckpointError(f"'{path}' is not a weights file edgessl can read: not safetensors "
                              "(or truncated) and not a PyTorch zip archive; pass .safetensors "
                              "(preferred) or a file saved by torch.save")
    obj, taken, others = _unnest(_load_torch_file(path, kind), key)
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"'{path}' holds no weights (a {type(obj).__name__}); pass a "
                              "state dict saved as .safetensors or .pt")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"'{path}' holds no tensors; pass a state dict of weights (it "
                              f"has: {_first([str(k) for k in obj], 6)})")
    if len(tensors) < len(obj):
        log.info("ignored %d non-tensor entries in %s", len(obj) - len(tensors), path)
    return tensors, "/".join(taken) or None, others


def load_weights_file(path: str | Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a weights file without ever executing code from it.

    Args:
        path: safetensors (preferred), or a ``torch.save`` zip archive (``.pt``, ``.pth``,
            ``.ckpt``, any name) read with ``torch.load(weights_only=True)``.
        key: nested dict to take (e.g. "student"); None = the first of ``NESTED_KEYS``.

    Returns:
        Parameter name -> tensor, with nesting (``state_dict``, ``model``, ``teacher``, ...)
        unwrapped; name prefixes are left for ``load_into_backbone``.

    Raises:
        CheckpointError: a missing, truncated or foreign file, or a pickle that carries code.
    """
    return read_weights(path, key)[0]


def _prefix_counts(names, own) -> Counter:
    """For each prefix p, how many names are p + (a name of the backbone)."""
    counts: Counter = Counter()
    for name in names:
        parts = name.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in own:
                counts[".".join(parts[:i]) + ("." if i else "")] += 1
    return counts


def _preference(prefix: str) -> int:
    """Tie-break between equally good prefixes: the teacher, the query/online encoder."""
    if "teacher" in prefix or "target_encoder" in prefix:
        return 1
    return -1 if any(w in prefix for w in ("student", "momentum", "encoder_k", "ema")) else 0


def _is_head(name: str, classifier: str) -> bool:
    return any(p in HEAD_PARTS or p == classifier or p.startswith("decoder")
               or p.endswith("_head") for p in name.split("."))


def _weights(names) -> list[str]:
    return [k for k in names if not k.endswith(COUNTERS)]


def _pick_prefix(state, own, key: str | None, where: str,
                 nested: tuple[str, ...]) -> tuple[str, list[str]]:
    """The prefix that matches most backbone names, and others that match (almost) as well."""
    counts = _prefix_counts(_weights(state), own)
    if key is not None:
        scope = key.rstrip(".") + "."
        if not any(k.startswith(scope) for k in state):
            top = max(counts.values(), default=0)
            parts = [p.rstrip(".") for p, n in counts.most_common() if p and n >= top / 2]
            raise CheckpointError(
                f"--weights-key '{printable(key)}' is neither a nested dict nor a name prefix "
                f"in '{where}'; it has: {_first([*nested, *parts], 8) or 'no known part'}")
    scoped = Counter({p: n for p, n in counts.items() if p.startswith(scope)}) if key else counts
    if not scoped:
        return "", []
    best = max(scoped, key=lambda p: (scoped[p], _preference(p), -len(p)))
    near = [p.rstrip(".") for p, n in counts.most_common()
            if p and p != best and n >= MIN_MATCH_FRACTION * counts[best]]
    return best, near


def load_into_backbone(backbone, state: dict[str, torch.Tensor], where: str,
                       key: str | None = None, min_fraction: float = MIN_MATCH_FRACTION,
                       nested_key: str | None = None,
                       alternatives: tuple[str, ...] = ()) -> LoadReport:
    """Load ``state`` into an edgessl Backbone, whatever prefix its names carry.

    The prefix is the one that makes most names fit the backbone's own (``module.``,
    ``teacher.backbone.``, ``model.`` of a Backbone, ...); between equally good ones the
    teacher and the query/online encoder win. Heads the backbone lacks are dropped.

    Args:
        backbone: an edgessl ``Backbone`` (its ``model`` receives the weights).
        state: name -> tensor, e.g. from ``load_weights_file``.
        where: the file, for messages.
        key: only names under this prefix (e.g. "module.momentum_encoder") are considered.
        min_fraction: share of the backbone's tensors that must be found (BN counters aside).
        nested_key, alternatives: where ``state`` was found in its file, for the report.

    Returns:
        The LoadReport, also logged (a warning where tensors are missing).

    Raises:
        CheckpointError: fewer than ``min_fraction`` found, or a found tensor of another shape.
        ConfigError: ``min_fraction`` outside (0, 1].
    """
    if not 0 < min_fraction <= 1:
        raise ConfigError(f"min_fraction must be in (0, 1], got {min_fraction}")
    inner = backbone.model
    own = inner.state_dict()
    classifier = str((getattr(inner, "pretrained_cfg", None) or {}).get("classifier") or "fc")
    prefix, near = _pick_prefix(state, own, key, where, alternatives)
    found = {k: state[prefix + k] for k in own if prefix + k in state}
    used = {prefix + k for k in found}
    # names of an equally good part (the student, the momentum encoder) are not "unexpected"
    extra = [k for k in state if k not in used and not k.startswith(tuple(p + "." for p in near))]
    heads = tuple(k for k in extra if _is_head(k.removeprefix(prefix), classifier))
    total = _weights(own)
    report = LoadReport(
        source=where, matched=len(_weights(found)), total=len(total),
        missing=tuple(k for k in total if k not in found),
        unexpected=tuple(k for k in extra if k not in heads), dropped_heads=heads,
        prefix=prefix, nested_key=nested_key, alternatives=(*alternatives, *near))
    _check(report, backbone, found, own, min_fraction)
    inner.load_state_dict(found, strict=False)
    (log.warning if report.missing else log.info)("%s", report.summary())
    return report


def _check(report: LoadReport, backbone, found, own, min_fraction: float) -> None:
    name = backbone.spec.name
    fix = ("pass the architecture they were trained with (--arch, or --backbone NAME with "
           "--weights)")
    shapes = [k for k in found if tuple(found[k].shape) != tuple(own[k].shape)]
    if shapes:
        k = shapes[0]
        raise CheckpointError(
            f"weights in '{report.source}' do not fit backbone '{name}' ({len(shapes)} of "
            f"{report.matched} tensors have another shape; '{printable(k)}' is "
            f"{list(found[k].shape)}, not {list(own[k].shape)}); {fix}")
    if report.total == 0:
        raise CheckpointError(f"backbone '{name}' has no weights to load from "
                              f"'{report.source}'")
    if report.matched < min_fraction * report.total:
        pick = (f"or pick the part with --weights-key (also in the file: "
                f"{', '.join(report.alternatives)})" if report.alternatives else
                "or pick the part with --weights-key")
        raise CheckpointError(
            f"weights in '{report.source}' do not fit backbone '{name}': only "
            f"{report.matched} of {report.total} tensors found (need "
            f"{100 * min_fraction:.0f}%; prefix '{report.prefix}', missing "
            f"{_first(report.missing)}); {fix}, {pick}")


def load_backbone_weights(backbone, path: str | Path, key: str | None = None,
                          min_fraction: float = MIN_MATCH_FRACTION) -> LoadReport:
    """Read ``path`` (see ``load_weights_file``) and load it into ``backbone``.

    Args:
        backbone: an edgessl ``Backbone``.
        path: safetensors, or a torch.save zip archive holding tensors only (any name).
        key: a nested dict ("student") or a name prefix ("module.momentum_encoder") to take.
        min_fraction: share of the backbone's tensors that must be found.

    Returns:
        The LoadReport (matched, missing, unexpected, dropped heads, prefix, nested key).
    """
    state, nested, others = read_weights(path, key)
    scope = None if key is None or (nested and key in nested.split("/")) else key
    return load_into_backbone(backbone, state, str(path), key=scope, min_fraction=min_fraction,
                              nested_key=nested, alternatives=tuple(others))
