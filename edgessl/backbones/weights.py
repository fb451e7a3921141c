"""Backbone weights from a file someone else made: safetensors, or a PyTorch file without code.

A ``.pt``/``.pth``/``.th`` file is a pickle, and unpickling can run any code its author put in
it. It is read only with ``torch.load(weights_only=True)``, whose unpickler builds tensors and
plain containers and refuses everything else; such a refusal becomes a CheckpointError, and the
payload never runs. Safetensors files hold no code at all and are preferred.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from edgessl.errors import CheckpointError

log = logging.getLogger("edgessl")

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".th", ".bin")
WEIGHTS_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES
# Keys under which training scripts commonly nest the weights.
NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")


def is_weights_file(path: str | Path) -> bool:
    """True for an existing file with a weights suffix (.safetensors, .pt, .pth, .th, .bin)."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in WEIGHTS_SUFFIXES


def _load_pickle(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler raises several types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(
            f"refusing to load '{path}': it is not plain weights ({first}); a PyTorch file can "
            "carry code, so only tensors are accepted: convert it to .safetensors where it was "
            "made, from a source you trust") from None


def _tensors(obj: object, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):  # {"state_dict": {...}} or {"model": {"module": {...}}}
        if isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            nested = next((obj[k] for k in NESTED_KEYS if isinstance(obj.get(k), dict)), None)
            if nested is None:
                break
            obj = nested
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"'{path}' holds no weights (a {type(obj).__name__}); pass a "
                              "state dict saved as .safetensors or .pt")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"'{path}' holds no tensors; pass a state dict of weights")
    if len(tensors) < len(obj):
        log.info("ignored %d non-tensor entries in %s", len(obj) - len(tensors), path)
    return tensors


def load_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file without ever executing code from it.

    Args:
        path: ``.safetensors`` (preferred), or ``.pt``/``.pth``/``.th``/``.bin`` read with
            ``torch.load(weights_only=True)``.

    Returns:
        Parameter name -> tensor (nesting under ``state_dict``/``model`` is unwrapped).

    Raises:
        CheckpointError: a missing, truncated or foreign file, or a pickle that carries code.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file '{path}' does not exist; check the path")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise CheckpointError(f"'{path}' is not a readable safetensors file ({exc}); it is "
                                  "truncated or not safetensors") from None
    if suffix in PICKLE_SUFFIXES:
        return _tensors(_load_pickle(path), path)
    raise CheckpointError(f"'{path}' is not a weights file; pass .safetensors (preferred) or "
                          f"{', '.join(PICKLE_SUFFIXES)}")


def load_into_backbone(backbone, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into an edgessl Backbone, with or without its ``model.`` prefix.

    Weights of a classifier layer the backbone does not have (``fc.``, ``head.``) are ignored;
    anything else that does not fit is a CheckpointError naming the first mismatch.
    """
    inner = backbone.model
    own = inner.state_dict()
    if not any(k in own for k in state) and any(k.startswith("model.") for k in state):
        state = {k.removeprefix("model."): v for k, v in state.items()}
    classifier = str((getattr(inner, "pretrained_cfg", None) or {}).get("classifier") or "fc")
    extra = [k for k in state if k not in own]
    dropped = [k for k in extra if k.split(".")[0] in (classifier, "fc", "head", "classifier")]
    state = {k: v for k, v in state.items() if k not in dropped}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in extra if k not in dropped]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        first = (f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'"
                 if unexpected else f"shape of '{shapes[0]}' is {list(state[shapes[0]].shape)}, "
                 f"not {list(own[shapes[0]].shape)}")
        raise CheckpointError(
            f"weights in '{where}' do not fit backbone '{backbone.spec.name}' ({len(missing)} "
            f"missing, {len(unexpected)} unexpected, {len(shapes)} wrong shapes; {first}); "
            "pass the --arch they were trained with")
    if dropped:
        log.info("ignored %d classifier weights in %s", len(dropped), where)
    inner.load_state_dict(state, strict=True)
