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
from edgessl.ssl.ddp import Distributed, resolve_device
from edgessl.ssl.history import history_files
from edgessl.ssl.monitor import KnnData, embedding_spread, knn_accuracy, warn_if_collapsed
from edgessl.ssl.optim import OPTIMIZERS, build_optimizer, scaled_lr
from edgessl.ssl.recipe import build_augment, build_method_config
from edgessl.training import (
    GracefulStop,
    cosine_with_warmup,
    progress_bar,
    rng_state,
    seed_everything,
    set_rng_state,
)

log = logging.getLogger("edgessl")

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of one pretraining run (flags of ``edgessl pretrain`` or a TOML recipe).

    Attributes:
        data: folder of unlabeled images (a labeled root's ``train/`` is used); None = digits.
        method: SSL method name (see ``edgessl.ssl.METHODS``).
        backbone: an edgessl or timm name (``timm:NAME``), an edgessl checkpoint folder to
            continue from, or a weights file; ``weights`` loads a file into a named backbone.
        weights, weights_key: an external weights file (.safetensors, or .pt/.pth read with
            weights_only) for ``backbone``, and which part of it to load.
        image_size: training resolution in pixels; ≤ 64 selects the small-image stem.
        epochs, batch_size: length of training and images per step (global under DDP).
        optimizer: "sgd" or "adamw"; None = the method's default (AdamW for ViT backbones).
        lr: peak learning rate; None = the method's base LR scaled by batch_size / 256.
        weight_decay: None = 1e-4 for SGD, 0.05 for AdamW; never on norms and biases.
        warmup_epochs: linear warm-up before the cosine decay.
        grad_clip: clip the gradient norm to this value (0 = off).
        seed: seeds data order, augmentations and initialisation.
        augment: replaces the method's augmentation preset (Python API).
        augment_overrides: fields of the preset to change (``--aug`` / ``[augment]``).
        method_options: the method's own settings (``--opt`` / ``[method_options]``).
        eval_data: labeled folder for the online kNN accuracy; None = no kNN.
        eval_every: epochs between kNN evaluations (the last epoch is always evaluated).
        knn_k: neighbours of the kNN classifier.
        device: "auto", "cpu", "cuda" or "cuda:N".
        precision: "auto" (bf16 autocast on GPUs that support it, fp32 elsewhere), "fp32"
            or "bf16".
        channels_last: NHWC memory layout; None = on for CNNs (faster on CPUs and GPUs).
        compile: ``torch.compile`` the backbone.
        sync_bn: SyncBatchNorm under DDP (batch statistics over the global batch).
        out: checkpoint folder; None = ``models/<method>-<backbone>``.
        force: replace an existing ``out``.
        resume: continue the unfinished run in ``out`` (same flags) from its last checkpoint.
    """

    data: str | None = None
    method: str = "simclr"
    backbone: str = "resnet_tiny"
    weights: str | None = None
    weights_key: str | None = None
    image_size: int = 32
    epochs: int = 30
    batch_size: int = 256
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    warmup_epochs: int = 2
    grad_clip: float = 0.0
    seed: int = 0
    augment: AugmentConfig | None = None
    augment_overrides: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=dict)
    eval_data: str | None = None
    eval_every: int = 1
    knn_k: int = 20
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    sync_bn: bool = False
    out: str | None = None
    force: bool = False
    resume: bool = False


@dataclass(frozen=True)
class PretrainResult:
    """Where the checkpoint went and how training went.

    Attributes:
        path: checkpoint folder.
        losses: mean loss per epoch.
        seconds: wall time of this call's training.
        images_per_second: training speed (global images).
        history: one dict per epoch (loss, lr, kNN top-1, embedding spread, ...).
    """

    path: Path
    losses: tuple[float, ...]
    seconds: float
    images_per_second: float
    history: tuple[dict, ...] = ()


def unlabeled_root(data: str | Path) -> Path:
    """The folder to pretrain on: a labeled root's ``train/`` (never val/, test/), else ``data``."""
    from edgessl.data.labeled import held_out_folder

    root = require_dir(data, "unlabeled data folder")
    if held_out_folder(root) is not None:
        return root / "train"
    return root


def _check(config: PretrainConfig) -> None:
    for name in ("epochs", "batch_size", "image_size", "eval_every", "knn_k"):
        if getattr(config, name) < 1:
            flag = name.replace("_", "-")
            raise ConfigError(f"--{flag} must be ≥ 1, got {getattr(config, name)}")
    if config.lr is not None and config.lr <= 0:
        raise ConfigError(f"--lr must be > 0, got {config.lr}")
    if config.warmup_epochs < 0 or config.grad_clip < 0:
        raise ConfigError("--warmup-epochs and --grad-clip must be ≥ 0")
    if config.weight_decay is not None and config.weight_decay < 0:
        raise ConfigError(f"--weight-decay must be ≥ 0, got {config.weight_decay}")
    if config.optimizer is not None:
        OPTIMIZERS.get(config.optimizer)
    if config.precision not in PRECISIONS:
        from edgessl.errors import unknown_choice

        raise unknown_choice("precision", config.precision, PRECISIONS)
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
    epoch_spread: float = 0.0  # embedding spread summed over the current epoch's batches
    history: list = field(default_factory=list)  # one dict per finished epoch
    seen: int = 0  # images this call trained on, for images/s (not saved)
    started: float = field(default_factory=time.perf_counter)

    @property
    def losses(self) -> list[float]:
        return [row["loss"] for row in self.history]

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "epoch": self.epoch,
                "batch": self.batch, "step": self.step, "epoch_loss": self.epoch_loss,
                "epoch_spread": self.epoch_spread, "history": list(self.history),
                "rng": rng_state()}

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.epoch_loss, self.epoch_spread = state["epoch_loss"], state["epoch_spread"]
        self.history = list(state["history"])
        set_rng_state(state["rng"])


def _output_folder(config: PretrainConfig, spec: BackboneSpec, dist: Distributed) -> Path:
    out = Path(config.out or Path("models") / f"{config.method}-{spec.name}")
    if config.resume:
        if not out.is_dir():
            raise CheckpointError(f"nothing to resume: '{out}' does not exist; "
                                  "start without --resume")
    elif out.exists() and not config.force:
        raise OutputExistsError(f"'{out}' exists; pass --force to overwrite it, --resume to "
                                "continue it, or choose --out")
    if dist.is_main:
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


def _initial_backbone(config: PretrainConfig):
    """A fresh backbone, or one with weights: a checkpoint folder, a weights file, ``--weights``.

    Returns:
        (backbone, spec, where the weights came from or None).
    """
    from edgessl.backbones.weights import WEIGHTS_SUFFIXES
    from edgessl.checkpoint import is_checkpoint

    path = Path(config.backbone).expanduser()
    if (config.weights is None and not is_checkpoint(path)
            and path.suffix.lower() not in WEIGHTS_SUFFIXES):
        spec = BackboneSpec.for_images(config.backbone, config.image_size)
        return create_backbone(spec), spec, None
    from edgessl.finetune.source import resolve_backbone

    if path.suffix.lower() in WEIGHTS_SUFFIXES:
        raise ConfigError(f"--backbone '{config.backbone}' is a weights file, which does not say "
                          "its architecture: pass --backbone NAME --weights FILE (e.g. "
                          f"--backbone timm:resnet18 --weights {path.name})")
    source = resolve_backbone(config.backbone, config.image_size, config.backbone,
                              weights=config.weights, weights_key=config.weights_key)
    log.info("starting from the weights in %s", source.source)
    return source.backbone, source.backbone.spec, source.source


def _is_vit(backbone) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    return isinstance(getattr(backbone, "model", None), VisionTransformer)


@dataclass(frozen=True)
class _Setup:
    """Resolved run settings (what the config leaves to defaults, decided once)."""

    device: torch.device
    bf16: bool
    channels_last: bool
    optimizer: str
    lr: float
    augment: AugmentConfig


def _setup(config: PretrainConfig, method_cls, backbone, dist: Distributed) -> _Setup:
    device = dist.device(resolve_device(config.device))
    if config.precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    else:
        bf16 = config.precision == "bf16"
    channels_last = (not _is_vit(backbone) if config.channels_last is None
                     else config.channels_last)
    optimizer, base_lr = config.optimizer or method_cls.optimizer, method_cls.lr
    if config.optimizer is None and optimizer == "sgd" and _is_vit(backbone):
        optimizer, base_lr = "adamw", method_cls.vit_lr  # the ViT recipes of these methods
    lr = config.lr if config.lr is not None else scaled_lr(base_lr, config.batch_size)
    base = config.augment or method_cls.augment
    return _Setup(device, bf16, channels_last, optimizer, lr,
                  build_augment(base, config.augment_overrides))


def _to_device(views: list[torch.Tensor], setup: _Setup, dist: Distributed) -> list:
    out = []
    for v in views:
        v = dist.shard(v).to(setup.device, non_blocking=True)
        if setup.channels_last:
            v = v.contiguous(memory_format=torch.channels_last)
        out.append(v)
    return out


def _train_epoch(run: _Run, trainer, method, loader, views: BatchViews, setup: _Setup,
                 total: int, bar, stop: GracefulStop, dist: Distributed,
                 grad_clip: float) -> bool:
    """The rest of the current epoch; returns False when a stop was requested mid-epoch."""
    for images, _ in loader:
        batch_views = _to_device(views(images), setup, dist)
        with torch.autocast(setup.device.type, dtype=torch.bfloat16, enabled=setup.bf16):
            loss, features = trainer(batch_views)
        if not torch.isfinite(loss):
            raise ConfigError(f"loss became {loss.item()} at step {run.step}; lower --lr or "
                              "set --grad-clip")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(method.parameters(), grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        run.step += 1
        method.after_step(run.step / total)
        value = dist.mean(loss.item())
        run.epoch_loss += value
        run.epoch_spread += embedding_spread(features)
        run.batch += 1
        run.seen += images.shape[0]
        rate = run.seen / max(time.perf_counter() - run.started, 1e-9)
        bar.set_postfix(loss=f"{value:.3f}", img_s=f"{rate:.0f}")
        bar.update(1)
        if dist.any(stop.requested is not None):
            return False
    return True


def _finish_epoch(run: _Run, method, config: PretrainConfig, knn: KnnData | None,
                  mean, std, setup: _Setup, dist: Distributed, start: float) -> None:
    """Close the epoch: its history row (with kNN top-1 when due) and the collapse check."""
    epoch = run.epoch + 1
    row = {"epoch": epoch, "loss": run.epoch_loss / max(1, run.batch),
           "lr": run.optimizer.param_groups[0]["lr"], "knn_top1": None,
           "embedding_spread": run.epoch_spread / max(1, run.batch)}
    row["collapsed"] = warn_if_collapsed(row["embedding_spread"], epoch)
    if knn is not None and dist.is_main and (epoch % config.eval_every == 0
                                             or epoch == config.epochs):
        row["knn_top1"] = round(knn_accuracy(method.export_backbone(), knn, mean, std,
                                             setup.device, config.knn_k), 2)
        log.info("epoch %d: loss %.4f, kNN top-1 %.2f%%", epoch, row["loss"], row["knn_top1"])
    elapsed = time.perf_counter() - start
    row["seconds"] = round(elapsed, 1)
    row["images_per_second"] = round(run.seen / max(elapsed, 1e-9), 1)
    run.history.append(row)
    run.epoch, run.batch, run.epoch_loss, run.epoch_spread = epoch, 0, 0.0, 0.0


def pretrain(config: PretrainConfig) -> PretrainResult:
    """Pretrain ``config.backbone`` with ``config.method`` and save a backbone checkpoint.

    A checkpoint (weights, card, history and ``train_state.pt``) is written atomically after
    every epoch, so a killed run loses at most one epoch; ``resume=True`` continues it with
    identical optimiser, schedule, EMA/teacher and RNG state. SIGINT/SIGTERM save a checkpoint
    and raise Interrupted. Launched by torchrun, it trains with DistributedDataParallel.
    """
    from edgessl.data.digits import default_digits_dir

    _check(config)
    method_cls = METHODS.get(config.method)
    root = unlabeled_root(config.data if config.data is not None else default_digits_dir())
    dist = Distributed.from_env(resolve_device(config.device))
    try:
        return _pretrain(config, method_cls, root, dist)
    finally:
        dist.close()


def _pretrain(config: PretrainConfig, method_cls, root: Path, dist: Distributed):
    paths = find_images(root, "unlabeled data folder")
    seed_everything(config.seed)
    backbone, spec, init_from = _initial_backbone(config)
    out = _output_folder(config, spec, dist)
    method_config = build_method_config(method_cls, config.method_options)
    if method_cls.needs_vit and not _is_vit(backbone):
        raise ConfigError(f"{config.method} needs a ViT backbone, not '{spec.name}'; pass "
                          "--backbone vit_tiny (or vit_small, vit_base, timm:vit_*)")
    setup = _setup(config, method_cls, backbone, dist)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    views = BatchViews(setup.augment, config.image_size, mean, std, method_cls.num_views)
    knn = KnnData.load(config.eval_data, config.image_size) if config.eval_data else None
    dataset = ImageDataset(paths, config.image_size)
    batch_size = min(config.batch_size, len(dataset))
    dist.check_batch(batch_size)
    steps_per_epoch = len(dataset) // batch_size
    method = method_cls(backbone, method_config).to(setup.device).train()
    if setup.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if config.compile:
        method.backbone.compile()
    trainer = dist.wrap(method, config.sync_bn)
    method = trainer.module if dist.enabled else method
    optimizer = build_optimizer(method, setup.optimizer, setup.lr, config.weight_decay)
    total = config.epochs * steps_per_epoch
    run = _Run(method, optimizer, cosine_with_warmup(optimizer, total,
                                                     config.warmup_epochs * steps_per_epoch))
    if config.resume:
        _resume(run, out, spec, config)

    def card(seconds: float, complete: bool) -> ModelCard:
        return ModelCard(
            kind="backbone", backbone=spec.to_dict(), method=config.method,
            training={"epochs": config.epochs, "epochs_done": run.epoch, "complete": complete,
                      "final_loss": run.losses[-1] if run.losses else None,
                      "batch_size": batch_size, "optimizer": setup.optimizer, "lr": setup.lr,
                      "weight_decay": config.weight_decay, "warmup_epochs": config.warmup_epochs,
                      "grad_clip": config.grad_clip, "seed": config.seed,
                      "loss_per_epoch": run.losses,
                      "knn_top1": next((r["knn_top1"] for r in reversed(run.history)
                                        if r.get("knn_top1") is not None), None),
                      "augment": dataclasses.asdict(setup.augment),
                      "method_options": dataclasses.asdict(method_config),
                      "device": str(setup.device), "processes": dist.world_size,
                      "precision": "bf16" if setup.bf16 else "fp32",
                      "channels_last": setup.channels_last, "initialised_from": init_from,
                      "seconds": round(seconds, 1)},
            data={"path": str(root.resolve()), "fingerprint": fingerprint(paths),
                  "images": len(paths)})

    if dist.is_main:
        log.info("pretraining %s on %d images from %s (%s, %d px, %d epochs, batch %d, %s lr "
                 "%.4g, %s%s, %d process%s)", config.method, len(dataset), root, spec.name,
                 config.image_size, config.epochs, batch_size, setup.optimizer, setup.lr,
                 setup.device, ", bf16" if setup.bf16 else "", dist.world_size,
                 "es" if dist.world_size > 1 else "")
    start = time.perf_counter()
    title = f"{config.method} on {spec.name}, {config.image_size} px"
    with GracefulStop() as stop, progress_bar(total, f"pretrain {config.method}",
                                              disable=not dist.is_main) as bar:
        bar.update(run.step)
        while run.epoch < config.epochs:
            loader = epoch_loader(dataset, batch_size, config.seed, run.epoch, run.batch)
            finished = _train_epoch(run, trainer, method, loader, views, setup, total, bar,
                                    stop, dist, config.grad_clip)
            if finished:
                _finish_epoch(run, method, config, knn, mean, std, setup, dist, start)
            done = run.epoch == config.epochs
            if dist.is_main:
                save_model(method.export_backbone(), card(time.perf_counter() - start, done),
                           out, force=True, train_state=None if done else run.state(),
                           extra_files=history_files(run.history, title))
            dist.barrier()
            if not finished:
                raise Interrupted(f"{stop.requested or 'stopped'}: saved a checkpoint at epoch "
                                  f"{run.epoch + 1}, batch {run.batch} to {out}; continue with "
                                  "--resume")
    seconds = time.perf_counter() - start
    rate = run.seen / max(seconds, 1e-9)
    if dist.is_main:
        log.info("saved %s (final loss %.4f, %.0f images/s)", out, run.losses[-1], rate)
    return PretrainResult(out, tuple(run.losses), seconds, rate, tuple(run.history))
