"""Building, saving and loading edgessl models (backbones and classifiers) from checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

from edgessl.backbones import Backbone, BackboneSpec, create_backbone
from edgessl.checkpoint import (
    CARD_FILE,
    LABELS_FILE,
    TRAIN_STATE_FILE,
    WEIGHTS_FILE,
    ModelCard,
    read_card,
)
from edgessl.errors import CheckpointError
from edgessl.io import atomic_dir, write_json


class Classifier(torch.nn.Module):
    """Backbone plus linear head: images [N, 3, H, W] -> logits [N, num_classes]."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = torch.nn.Linear(backbone.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_model(card: ModelCard) -> torch.nn.Module:
    """The architecture a card describes, with fresh weights (Backbone or Classifier)."""
    backbone = create_backbone(BackboneSpec(**card.backbone))
    if card.kind == "classifier":
        return Classifier(backbone, len(card.labels))
    return backbone


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a truncated or foreign file becomes a CheckpointError."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"'{path}' is missing; the checkpoint is incomplete")
    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({exc}); "
                              "the checkpoint is damaged, re-create it") from None


def load_model(path: str | Path) -> tuple[torch.nn.Module, ModelCard]:
    """Load an edgessl checkpoint folder into its model, in eval mode.

    Raises:
        CheckpointError: if the folder is not an edgessl checkpoint or weights do not match.
    """
    path = Path(path).expanduser()
    card = read_card(path)
    model = build_model(card)
    state = load_state(path / WEIGHTS_FILE)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"weights in '{path}' do not match backbone '{card.backbone['name']}' "
            f"({len(missing)} missing, {len(unexpected)} unexpected keys, {len(shapes)} of "
            "another shape); the card and the weights come from different models"
        )
    model.load_state_dict(state, strict=True)
    return model.eval(), card


def save_model(model: torch.nn.Module, card: ModelCard, out: str | Path, force: bool = False,
               extra_json: dict[str, object] | None = None,
               train_state: dict | None = None,
               extra_files: dict[str, bytes] | None = None) -> Path:
    """Write ``model`` and ``card`` as a checkpoint folder, atomically.

    Args:
        extra_json: more files to write, name -> JSON-serialisable data.
        extra_files: more files to write, name -> raw bytes (history CSV, plots).
        train_state: optimiser/scheduler/RNG state for ``--resume``, saved as
            ``train_state.pt`` (tensors and plain Python only: loadable with weights_only).
    """
    from safetensors.torch import save_file

    out = Path(out)
    with atomic_dir(out, force=force) as tmp:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        write_json(tmp / CARD_FILE, card.to_dict())
        if card.labels:
            write_json(tmp / LABELS_FILE, list(card.labels))
        for name, data in (extra_json or {}).items():
            write_json(tmp / name, data)
        for name, raw in (extra_files or {}).items():
            (tmp / name).write_bytes(raw)
        if train_state is not None:
            torch.save(train_state, tmp / TRAIN_STATE_FILE)
    return out


def load_train_state(path: Path) -> dict:
    """Read ``train_state.pt`` with ``weights_only=True``: no code in it is ever executed."""
    file = Path(path) / TRAIN_STATE_FILE
    if not file.is_file():
        raise CheckpointError(f"'{path}' has no {TRAIN_STATE_FILE}: the run finished or was not "
                              "started by edgessl pretrain; nothing to resume")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise CheckpointError(f"'{file}' cannot be loaded safely ({type(exc).__name__}); "
                              "it is damaged or not from edgessl: start again without --resume"
                              ) from None
