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
from typing import Annotated, Any

from edgessl import __version__
from edgessl.config import MAX_SEED, FieldError, Range, check_fields, check_value
from edgessl.config import from_dict as config_from_dict
from edgessl.errors import CheckpointError, ConfigError, printable
from edgessl.limits import MAX_CLASSES, MAX_IMAGE_SIDE, MAX_LABEL_CHARS

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
TRAIN_STATE_FILE = "train_state.pt"
CARD_FORMAT = "edgessl-checkpoint/1"
# edgessl's text models (edgessl.text), named when one is given where an image checkpoint is
# needed: what it is, and what to run instead
TEXT_CARDS = {
    "edgessl-text-classifier/1": (
        "an edgessl text classifier, not an image checkpoint: export it first ('edgessl "
        "export {folder}'), then predict, benchmark or deploy the exported folder"),
    "edgessl-text-encoder/1": (
        "an edgessl text encoder (from pretrain on texts), not an image checkpoint: fine-tune "
        "a text classifier from it ('edgessl finetune TEXTS --backbone {folder}') and export "
        "that"),
}

CARD_KINDS = ("backbone", "classifier")

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
        backbone: the BackboneSpec as a dict (name, image_size, small_stem, features).
        method: SSL method for a pretrained backbone; for a classifier, its backbone's origin.
        mean, std: per-channel normalisation of inputs in [0, 1].
        labels: class names, index = logit position (classifiers only).
        training: epochs, final loss, mode, labels per class and similar.
        data: the training data's path, fingerprint and image count.
        source: the checkpoint this one started from, if any.
        pretrained: the pretrained start its weights descend from (name, version, sha256,
            licence, trained_on; see ``edgessl.backbones.pretrained``), None = none.
    """

    kind: str
    backbone: dict
    method: str
    mean: Annotated[tuple[float, float, float], Range(ge=-1e3, le=1e3)] = IMAGENET_MEAN
    std: Annotated[tuple[float, float, float], Range(gt=0, le=1e3, note="zero would divide "
                                                                       "by zero")] = IMAGENET_STD
    labels: tuple[str, ...] = ()
    training: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    source: str | None = None
    pretrained: dict | None = None
    command: str = field(default_factory=current_command)
    edgessl_version: str = __version__
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )
    format: str = CARD_FORMAT

    def __post_init__(self) -> None:
        check_fields(self)
        if self.kind not in CARD_KINDS:
            raise FieldError("kind", f"must be one of {', '.join(CARD_KINDS)}, got "
                                     f"{printable(repr(self.kind))[:40]}")
        check_backbone_field(self.backbone)
        check_data_field(self.data)
        if self.kind == "classifier" and not self.labels:
            raise FieldError("labels", "must list the classifier's class names, got none")
        if len(self.labels) > MAX_CLASSES:
            raise FieldError("labels", f"must list at most {MAX_CLASSES} classes, got "
                                       f"{len(self.labels)}")
        if any(len(label) > MAX_LABEL_CHARS for label in self.labels):
            raise FieldError("labels", f"must be names of at most {MAX_LABEL_CHARS} characters")

    @property
    def image_size(self) -> int:
        return int(self.backbone["image_size"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> ModelCard:
        """The card in ``data`` (read from the file ``where``), every field checked.

        Keys this version does not know are ignored (a card of a newer edgessl).

        Raises:
            CheckpointError: for another format, or a field that is missing, of the wrong
                type or out of range, naming the file and the field.
        """
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            folder = printable(str(Path(where).parent))
            if found in TEXT_CARDS:  # edgessl's own text model where an image one is needed
                raise CheckpointError(f"'{folder}' is {TEXT_CARDS[found].format(folder=folder)}")
            raise CheckpointError(f"'{where}' is not an edgessl model card (format "
                                  f"{printable(repr(found))[:60]}); pass a folder made by "
                                  "edgessl")
        names = {f.name for f in fields(cls)}
        try:
            return config_from_dict(cls, {k: v for k, v in data.items() if k in names},
                                    where=f"model card '{where}'")
        except ConfigError as exc:
            raise CheckpointError(f"{exc}; the checkpoint is damaged: re-create it") from None


def check_backbone_field(backbone: dict) -> None:
    """A card's ``backbone``: {"name": str, "image_size": int in [1, MAX_IMAGE_SIDE], ...}.

    Raises:
        FieldError: naming ``backbone.name`` or ``backbone.image_size``.
    """
    name, size = backbone.get("name"), backbone.get("image_size")
    if not isinstance(name, str) or not name:
        raise FieldError("backbone.name", f"must be the backbone's name, got "
                                          f"{printable(repr(name))[:40]}")
    if isinstance(size, bool) or not isinstance(size, int):
        raise FieldError("backbone.image_size", f"must be an integer (pixels), got "
                                                f"{printable(repr(size))[:40]}")
    check_value("backbone.image_size", size, Range(ge=1, le=MAX_IMAGE_SIDE, note="pixels"))
    # the card's backbone is rebuilt as BackboneSpec(**backbone): its fields and no others
    from edgessl.backbones.factory import BackboneSpec  # torch: only where a card is read

    known = [f.name for f in fields(BackboneSpec)]
    if not isinstance(backbone.get("small_stem"), bool):
        raise FieldError("backbone.small_stem", "must be true or false, got "
                                                f"{printable(repr(backbone.get('small_stem')))[:40]}")
    features = backbone.get("features", "final")
    from edgessl.backbones.pooling import FEATURE_POOLS

    if not isinstance(features, str) or features not in FEATURE_POOLS:
        raise FieldError("backbone.features", f"must be one of {', '.join(FEATURE_POOLS.names())}"
                                              f", got {printable(repr(features))[:40]}")
    unknown = sorted(str(k) for k in backbone if k not in known)
    if unknown:
        raise FieldError(f"backbone.{printable(unknown[0])[:40]}",
                         f"is not a backbone field (valid: {', '.join(known)})")


# The card's ``data`` keys that later commands use (export splits val/ as training did).
DATA_FIELDS = {"path": (str, None), "val_fraction": (float, Range(gt=0, lt=1)),
               "seed": (int, Range(ge=0, le=MAX_SEED)), "images": (int, Range(ge=0))}


def check_data_field(data: dict) -> None:
    """A card's ``data``: the keys of DATA_FIELDS, where present, of their type and range.

    Raises:
        FieldError: naming ``data.<key>``.
    """
    for key, (kind, rng) in DATA_FIELDS.items():
        value = data.get(key)
        if value is None:
            continue
        number = kind is not str and isinstance(value, (int, float)) and not isinstance(
            value, bool) and (kind is float or isinstance(value, int))
        if not (isinstance(value, str) if kind is str else number):
            raise FieldError(f"data.{key}", f"must be {kind.__name__}, got "
                                            f"{printable(repr(value))[:40]}")
        if rng is not None:
            check_value(f"data.{key}", value, rng)


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
