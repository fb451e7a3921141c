"""edgessl checkpoints: a folder with ``model.safetensors`` and a JSON model card ``card.json``.

A backbone checkpoint (from ``edgessl pretrain``) holds the backbone's weights; a classifier
checkpoint (from ``edgessl finetune``) holds backbone and linear head, plus ``labels.json`` and
``metrics.json``. Weights are safetensors only: loading never unpickles.
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgessl import __version__
from edgessl.errors import CheckpointError

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
TRAIN_STATE_FILE = "train_state.pt"
CARD_FORMAT = "edgessl-checkpoint/1"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def current_command() -> str:
    """The command line that is running, for the model card."""
    return shlex.join(["edgessl", *sys.argv[1:]]) if sys.argv else "edgessl"


@dataclass(frozen=True)
class ModelCard:
    """What a checkpoint is and how it was made (written as ``card.json``).

    Attributes:
        kind: "backbone" or "classifier".
        backbone: the BackboneSpec as a dict (name, image_size, small_stem).
        method: SSL method for a pretrained backbone; for a classifier, its backbone's origin.
        mean, std: per-channel normalisation of inputs in [0, 1].
        labels: class names, index = logit position (classifiers only).
        training: epochs, final loss, mode, labels per class and similar.
        data: the training data's path, fingerprint and image count.
        source: the checkpoint this one started from, if any.
    """

    kind: str
    backbone: dict
    method: str
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    labels: tuple[str, ...] = ()
    training: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    source: str | None = None
    command: str = field(default_factory=current_command)
    edgessl_version: str = __version__
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )
    format: str = CARD_FORMAT

    @property
    def image_size(self) -> int:
        return int(self.backbone["image_size"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> ModelCard:
        names = {f.name for f in fields(cls)}
        if data.get("format") != CARD_FORMAT:
            raise CheckpointError(f"'{where}' is not an edgessl model card (format "
                                  f"{data.get('format')!r}); pass a folder made by edgessl")
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("mean", "std", "labels"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise CheckpointError(f"'{where}' is a damaged model card: {exc}") from None


def _require_checkpoint_dir(path: str | Path) -> Path:
    from edgessl.io import recover_replaced

    path = Path(path).expanduser()
    recover_replaced(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint '{path}' does not exist; pass a folder made by "
                              "edgessl pretrain or edgessl finetune")
    if not path.is_dir() or not (path / CARD_FILE).is_file():
        raise CheckpointError(f"'{path}' is not an edgessl checkpoint (no {CARD_FILE}); pass a "
                              "folder made by edgessl pretrain or edgessl finetune")
    return path


def read_card(path: str | Path) -> ModelCard:
    """Read the model card of the checkpoint folder ``path``."""
    path = _require_checkpoint_dir(path)
    try:
        data = json.loads((path / CARD_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"'{path / CARD_FILE}' is not valid JSON ({exc}); "
                              "the checkpoint is damaged") from None
    return ModelCard.from_dict(data, str(path / CARD_FILE))


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / CARD_FILE).is_file()
