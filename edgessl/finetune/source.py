"""Where a fine-tune's backbone comes from: an edgessl checkpoint, timm weights, or scratch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgessl.backbones import Backbone, BackboneSpec, create_backbone
from edgessl.checkpoint import IMAGENET_MEAN, IMAGENET_STD, is_checkpoint
from edgessl.errors import CheckpointError, unknown_choice


@dataclass
class BackboneSource:
    """A ready backbone and where it came from.

    Attributes:
        backbone: the module (weights loaded).
        method: "scratch", "timm-pretrained" or the SSL method of the checkpoint.
        mean, std: normalisation the backbone was trained with.
        source: checkpoint path or hub name, None for scratch.
    """

    backbone: Backbone
    method: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str | None


def _from_checkpoint(path: Path, image_size: int | None) -> BackboneSource:
    from edgessl.models import Classifier, load_model

    model, card = load_model(path)
    if image_size is not None and image_size != card.image_size:
        raise CheckpointError(f"checkpoint '{path}' was trained at {card.image_size} px but "
                              f"--image-size {image_size} was given; omit --image-size")
    backbone = model.backbone if isinstance(model, Classifier) else model
    return BackboneSource(backbone, card.method, card.mean, card.std, str(path.resolve()))


def _from_weights_file(path: Path, image_size: int | None, arch: str) -> BackboneSource:
    """``arch`` with weights from a .safetensors/.pt file (never unpickling code)."""
    from edgessl.backbones.weights import load_into_backbone, load_weights_file

    state = load_weights_file(path)
    backbone = create_backbone(BackboneSpec.for_images(arch, image_size or 32))
    load_into_backbone(backbone, state, str(path))
    return BackboneSource(backbone, "weights-file", IMAGENET_MEAN, IMAGENET_STD,
                          str(path.resolve()))


def _from_timm_hub(name: str, image_size: int) -> BackboneSource:
    import timm

    if not timm.is_model(name):
        raise unknown_choice("backbone", name, ["scratch", *timm.list_models(name[:4] + "*")])
    spec = BackboneSpec.for_images(name, image_size)
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types
        raise CheckpointError(
            f"could not get pretrained weights for timm model '{name}' ({type(exc).__name__}); "
            "they come from the Hugging Face hub (cache: $HF_HOME or ~/.cache/huggingface): "
            f"run once with network access, or use 'scratch:{name}' for random initialisation"
        ) from None
    from edgessl.backbones.factory import apply_small_image_stem

    if spec.small_stem:
        apply_small_image_stem(model)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    return BackboneSource(Backbone(model, spec), "timm-pretrained", mean, std, f"timm:{name}")


def resolve_backbone(text: str, image_size: int | None, arch: str) -> BackboneSource:
    """Turn ``--backbone`` into a backbone.

    Args:
        text: a checkpoint folder, a weights file for ``arch`` (.safetensors, or .pt/.pth/.th
            holding tensors only), ``scratch`` (random ``arch``), ``scratch:NAME``, or a timm
            model name (``timm:NAME`` or ``NAME``) whose pretrained weights are loaded.
        image_size: input side in pixels; None = the checkpoint's, or 32.
        arch: architecture for plain ``scratch``.
    """
    from edgessl.backbones.weights import WEIGHTS_SUFFIXES

    path = Path(text).expanduser()
    if is_checkpoint(path):
        return _from_checkpoint(path, image_size)
    if path.suffix.lower() in WEIGHTS_SUFFIXES:
        return _from_weights_file(path, image_size, arch)
    if path.exists() or "/" in text:
        raise CheckpointError(f"'{text}' is not an edgessl checkpoint (no card.json); pass a "
                              "folder made by edgessl pretrain, a timm name, or 'scratch'")
    size = image_size or 32
    if text == "scratch" or text.startswith("scratch:"):
        name = text.partition(":")[2] or arch
        backbone = create_backbone(BackboneSpec.for_images(name, size))
        return BackboneSource(backbone, "scratch", IMAGENET_MEAN, IMAGENET_STD, None)
    return _from_timm_hub(text.removeprefix("timm:"), size)
