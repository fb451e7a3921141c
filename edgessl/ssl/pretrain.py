"""``edgessl pretrain``: self-supervised pretraining of a backbone on unlabeled images."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.checkpoint import IMAGENET_MEAN, IMAGENET_STD, ModelCard, read_card
from edgessl.data.images import find_images, require_dir
from edgessl.data.labeled import fingerprint
from edgessl.data.tensors import ImageDataset
from edgessl.errors import CheckpointError, ConfigError, Interrupted, OutputExistsError
from edgessl.io import check_output_path
from edgessl.models import load_train_state, save_model
from edgessl.ssl import METHODS
from edgessl.ssl.augment import AugmentConfig, BatchViews
from edgessl.training import (
    GracefulStop,
    cosine_with_warmup,
    param_groups,
    progress_bar,
    rng_state,
    seed_everything,
    set_rng_state,
)

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
        resume: continue the unfinished run in ``out`` (same flags) from its last epoch.
        method_options: the method's own settings (fields of its ``Config``).
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
    resume: bool = False
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
    if config.resume and config.force:
        raise ConfigError("--resume continues the run in --out and --force replaces it; "
                          "pass only one of them")


@dataclass
class _Run:
    """Everything a pretraining run carries from epoch to epoch (saved for --resume)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current epoch
    step: int = 0
    epoch_loss: float = 0.0  # loss summed over the current epoch's batches
    losses: list = field(default_factory=list)
    seen: int = 0  # images this process trained on, for images/s (not saved)
    started: float = field(default_factory=time.perf_counter)

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch,
                "batch": self.batch, "step": self.step, "epoch_loss": self.epoch_loss,
                "losses": list(self.losses), "rng": rng_state()}

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.epoch_loss, self.losses = state["epoch_loss"], list(state["losses"])
        set_rng_state(state["rng"])


def _output_folder(config: PretrainConfig, spec: BackboneSpec) -> Path:
    out = Path(config.out or Path("models") / f"{config.method}-{spec.name}")
    if config.resume:
        if not out.is_dir():
            raise CheckpointError(f"nothing to resume: '{out}' does not exist; "
                                  "start without --resume")
    elif out.exists() and not config.force:
        raise OutputExistsError(f"'{out}' exists; pass --force to overwrite it, --resume to "
                                "continue it, or choose --out")
    check_output_path(out)
    return out


def _resume(run: _Run, out: Path, spec: BackboneSpec, config: PretrainConfig) -> None:
    card = read_card(out)
    if card.training.get("epochs") != config.epochs:
        raise CheckpointError(f"cannot resume '{out}': it was started with --epochs "
                              f"{card.training.get('epochs')}, not {config.epochs}; "
                              "resume with the same flags")
    if card.backbone != spec.to_dict() or card.method != config.method:
        raise CheckpointError(
            f"cannot resume '{out}': it holds {card.method} on {card.backbone['name']} at "
            f"{card.backbone['image_size']} px, not {config.method} on {spec.name} at "
            f"{spec.image_size} px; use the same flags or start a new --out")
    run.restore(load_train_state(out))
    log.info("resuming %s at epoch %d (batch %d) of %d", out, run.epoch + 1, run.batch,
             config.epochs)


def epoch_loader(dataset, batch_size: int, seed: int, epoch: int, skip: int):
    """The epoch's batches in a seeded order, without the first ``skip`` (done before a stop).

    The order depends only on (seed, epoch), so a resumed run sees the same batches as an
    uninterrupted one; incomplete last batches are dropped (contrastive losses want full ones).
    """
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(
        seed * 100_003 + epoch)).tolist()
    batches = [order[i * batch_size:(i + 1) * batch_size]
               for i in range(skip, len(dataset) // batch_size)]
    # Its own generator: creating the iterator must not draw from the global RNG, which the
    # augmentations use and --resume restores.
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches,
                                       generator=torch.Generator().manual_seed(seed))


def _train_epoch(run: _Run, loader, augment: BatchViews, total: int, bar,
                 stop: GracefulStop) -> bool:
    """The rest of the current epoch; returns False when a stop was requested mid-epoch."""
    for images, _ in loader:
        views = augment(images)
        loss, _features = run.model.training_step(views)
        if not torch.isfinite(loss):
            raise ConfigError(f"loss became {loss.item()} at step {run.step}; lower --lr")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        run.step += 1
        run.model.after_step(run.step / total)
        run.epoch_loss += loss.item()
        run.batch += 1
        run.seen += views[0].shape[0]
        rate = run.seen / max(time.perf_counter() - run.started, 1e-9)
        bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{rate:.0f}")
        bar.update(1)
        if stop.requested:
            return False
    run.losses.append(run.epoch_loss / max(1, run.batch))
    run.epoch, run.batch, run.epoch_loss = run.epoch + 1, 0, 0.0
    return True


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Pretrain ``config.backbone`` with ``config.method`` and save a backbone checkpoint.

    A checkpoint (weights, card and ``train_state.pt``) is written atomically after every
    epoch, so a killed run loses at most one epoch; ``resume=True`` continues it with identical
    optimiser, schedule and RNG state. SIGINT/SIGTERM save a checkpoint and raise Interrupted.
    """
    from edgessl.data.digits import default_digits_dir

    _check(config)
    method_cls = METHODS.get(config.method)
    root = unlabeled_root(config.data if config.data is not None else default_digits_dir())
    spec = BackboneSpec.for_images(config.backbone, config.image_size)
    out = _output_folder(config, spec)
    paths = find_images(root, "unlabeled data folder")
    seed_everything(config.seed)
    augment = config.augment or method_cls.augment
    views = BatchViews(augment, config.image_size, IMAGENET_MEAN, IMAGENET_STD,
                       method_cls.num_views)
    dataset = ImageDataset(paths, config.image_size)
    batch_size = min(config.batch_size, len(dataset))
    steps_per_epoch = len(dataset) // batch_size
    try:
        method_config = method_cls.Config(**config.method_options)
    except TypeError as exc:
        raise ConfigError(f"bad option for method '{config.method}': {exc}") from None
    model = method_cls(create_backbone(spec), method_config).train()
    optimizer = torch.optim.SGD(param_groups(model, config.weight_decay), lr=config.lr,
                                momentum=0.9)
    total = config.epochs * steps_per_epoch
    run = _Run(model, optimizer, cosine_with_warmup(optimizer, total,
                                                    config.warmup_epochs * steps_per_epoch))
    if config.resume:
        _resume(run, out, spec, config)

    def card(seconds: float, complete: bool) -> ModelCard:
        return ModelCard(
            kind="backbone", backbone=spec.to_dict(), method=config.method,
            training={"epochs": config.epochs, "epochs_done": run.epoch, "complete": complete,
                      "final_loss": run.losses[-1] if run.losses else None,
                      "batch_size": batch_size, "lr": config.lr, "seed": config.seed,
                      "loss_per_epoch": run.losses, "augment": dataclasses.asdict(augment),
                      "seconds": round(seconds, 1),
                      "method_options": dataclasses.asdict(method_config)},
            data={"path": str(root.resolve()), "fingerprint": fingerprint(paths),
                  "images": len(paths)})

    log.info("pretraining %s on %d images from %s (%s, %d px, %d epochs, batch %d)",
             config.method, len(dataset), root, spec.name, config.image_size, config.epochs,
             batch_size)
    start = time.perf_counter()
    with GracefulStop() as stop, progress_bar(total, f"pretrain {config.method}") as bar:
        bar.update(run.step)
        while run.epoch < config.epochs:
            loader = epoch_loader(dataset, batch_size, config.seed, run.epoch, run.batch)
            finished = _train_epoch(run, loader, views, total, bar, stop)
            done = run.epoch == config.epochs
            save_model(model.backbone, card(time.perf_counter() - start, done), out,
                       force=True, train_state=None if done else run.state())
            if not finished:
                raise Interrupted(f"{stop.requested}: saved a checkpoint at epoch {run.epoch + 1}, "
                                  f"batch {run.batch} to {out}; continue with --resume")
    seconds = time.perf_counter() - start
    rate = run.seen / max(seconds, 1e-9)
    log.info("saved %s (final loss %.4f, %.0f images/s)", out, run.losses[-1], rate)
    return PretrainResult(out, tuple(run.losses), seconds, rate)
