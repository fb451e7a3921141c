"""``edgessl pretrain``: self-supervised pretraining of a backbone on unlabeled images."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.checkpoint import IMAGENET_MEAN, IMAGENET_STD, ModelCard
from edgessl.data.images import find_images, require_dir
from edgessl.data.labeled import fingerprint
from edgessl.data.tensors import ImageDataset
from edgessl.errors import ConfigError
from edgessl.models import save_model
from edgessl.ssl import METHODS
from edgessl.ssl.augment import AugmentConfig, MultiView, view_transform
from edgessl.training import cosine_with_warmup, param_groups, progress_bar, seed_everything

log = logging.getLogger("edgessl")


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of one pretraining run (flags of ``edgessl pretrain``).

    Attributes:
        data: folder of unlabeled images (a labeled root's ``train/`` is used); None = digits.
        method: SSL method name (see ``edgessl.ssl.METHODS``).
        backbone: edgessl or timm backbone name.
        image_size: training resolution in pixels; ≤ 64 selects the small-image stem.
        epochs, batch_size: length of training and images per step.
        lr, weight_decay, warmup_epochs: SGD (momentum 0.9) with cosine decay after warm-up.
        seed: seeds data order, augmentations and initialisation.
        augment: view augmentations; None = the method's preset.
        out: checkpoint folder; None = ``models/<method>-<backbone>``.
        force: replace an existing ``out``.
    """

    data: str | None = None
    method: str = "simclr"
    backbone: str = "resnet_tiny"
    image_size: int = 32
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.5
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    seed: int = 0
    augment: AugmentConfig | None = None
    out: str | None = None
    force: bool = False
    method_options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PretrainResult:
    """Where the checkpoint went and how training went (loss per epoch, speed in images/s)."""

    path: Path
    losses: tuple[float, ...]
    seconds: float
    images_per_second: float


def unlabeled_root(data: str | Path) -> Path:
    """The folder to pretrain on: a labeled root's ``train/`` (never its val/), else ``data``."""
    root = require_dir(data, "unlabeled data folder")
    if (root / "train").is_dir() and (root / "val").is_dir():
        return root / "train"
    return root


def _check(config: PretrainConfig) -> None:
    for name in ("epochs", "batch_size", "image_size"):
        if getattr(config, name) < 1:
            flag = name.replace("_", "-")
            raise ConfigError(f"--{flag} must be ≥ 1, got {getattr(config, name)}")
    if config.lr <= 0:
        raise ConfigError(f"--lr must be > 0, got {config.lr}")


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Pretrain ``config.backbone`` with ``config.method`` and save a backbone checkpoint."""
    from edgessl.data.digits import default_digits_dir

    _check(config)
    method_cls = METHODS.get(config.method)
    root = unlabeled_root(config.data if config.data is not None else default_digits_dir())
    spec = BackboneSpec.for_images(config.backbone, config.image_size)
    out = Path(config.out or Path("models") / f"{config.method}-{spec.name}")
    if out.exists() and not config.force:
        from edgessl.errors import OutputExistsError

        raise OutputExistsError(f"'{out}' exists; pass --force to overwrite it or choose --out")
    paths = find_images(root, "unlabeled data folder")
    generator = seed_everything(config.seed)
    augment = config.augment or method_cls.augment
    transform = MultiView(view_transform(augment, config.image_size, IMAGENET_MEAN, IMAGENET_STD),
                          method_cls.num_views)
    dataset = ImageDataset(paths, config.image_size, transform=transform)
    batch_size = min(config.batch_size, len(dataset))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         drop_last=True, generator=generator)
    try:
        method_config = method_cls.Config(**config.method_options)
    except TypeError as exc:
        raise ConfigError(f"bad option for method '{config.method}': {exc}") from None
    model = method_cls(create_backbone(spec), method_config)
    model.train()
    optimizer = torch.optim.SGD(param_groups(model, config.weight_decay), lr=config.lr,
                                momentum=0.9)
    total = config.epochs * len(loader)
    scheduler = cosine_with_warmup(optimizer, total, config.warmup_epochs * len(loader))
    log.info("pretraining %s on %d images from %s (%s, %d px, %d epochs, batch %d)",
             config.method, len(dataset), root, spec.name, config.image_size, config.epochs,
             batch_size)
    losses, seen, start, step = [], 0, time.perf_counter(), 0
    with progress_bar(total, f"pretrain {config.method}") as bar:
        for _epoch in range(config.epochs):
            epoch_loss, batches = 0.0, 0
            for views, _ in loader:
                loss, _features = model.training_step(views)
                if not torch.isfinite(loss):
                    raise ConfigError(f"loss became {loss.item()} at step {step}; lower --lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                step += 1
                model.after_step(step / total)
                epoch_loss += loss.item()
                batches += 1
                seen += views[0].shape[0]
                rate = seen / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{rate:.0f}")
                bar.update(1)
            losses.append(epoch_loss / max(1, batches))
    seconds = time.perf_counter() - start
    card = ModelCard(
        kind="backbone",
        backbone=spec.to_dict(),
        method=config.method,
        training={"epochs": config.epochs, "final_loss": losses[-1], "batch_size": batch_size,
                  "lr": config.lr, "seed": config.seed, "loss_per_epoch": losses,
                  "augment": dataclasses.asdict(augment), "seconds": round(seconds, 1),
                  "method_options": dataclasses.asdict(method_config)},
        data={"path": str(root.resolve()), "fingerprint": fingerprint(paths),
              "images": len(paths)},
    )
    save_model(model.backbone, card, out, force=config.force)
    log.info("saved %s (final loss %.4f, %.0f images/s)", out, losses[-1], seen / seconds)
    return PretrainResult(out, tuple(losses), seconds, seen / seconds)
