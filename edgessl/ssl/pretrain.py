"""``edgessl pretrain``: self-supervised pretraining of a backbone on unlabeled images."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import torch

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.backbones.pretrained import find_start
from edgessl.checkpoint import IMAGENET_MEAN, IMAGENET_STD, ModelCard, read_card
from edgessl.config import (
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_LR,
    MAX_SEED,
    MIN_TRAIN_SIDE,
    Range,
    check_fields,
)
from edgessl.data.images import find_images, require_dir
from edgessl.data.labeled import fingerprint
from edgessl.data.tensors import ImageDataset
from edgessl.errors import CheckpointError, ConfigError, Interrupted, OutputExistsError
from edgessl.io import check_outputs, output_lock
from edgessl.limits import MAX_IMAGE_SIDE
from edgessl.models import load_train_state, save_model
from edgessl.ssl import METHODS
from edgessl.ssl.augment import AugmentConfig, BatchViews, build_augment
from edgessl.ssl.base import build_method_config
from edgessl.ssl.ddp import Distributed, resolve_device
from edgessl.ssl.history import history_files
from edgessl.ssl.monitor import (
    KnnData,
    embedding_spread,
    knn_accuracy,
    warn_if_collapsed,
    warn_if_not_learning,
)
from edgessl.ssl.optim import DEFAULT_WEIGHT_DECAY, OPTIMIZERS, build_optimizer, scaled_lr
from edgessl.ssl.plan import (
    CONTINUE_FREEZE,
    CONTINUE_LR_FACTOR,
    choose_batch,
    epochs_for_budget,
    freeze_early,
    hold_norm_statistics,
    parse_budget,
    time_steps,
    warmup_steps,
)
from edgessl.ssl.preflight import (
    diverged,
    finite_weights,
    require_batch,
    require_image_size,
    require_same_run,
)
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
DEFAULT_EPOCHS = 30


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
        epochs: passes over the data; None = 30, or with ``budget`` as many as fit (given
            with ``budget``, the most there may be).
        batch_size: images per step (global under DDP); None = 256, halved while an epoch
            would have fewer than 16 steps (not below 32; see ``edgessl.ssl.plan``).
        budget: a time budget ("20m", "1.5h"): the epochs that fit it are picked from a
            measured step time (at most ``epochs``).
        optimizer: "sgd" or "adamw"; None = the method's default (AdamW for ViT backbones).
        lr: peak learning rate; None = the method's base LR scaled by the batch used / 256,
            times 0.02 when continuing from pretrained weights.
        freeze: share of the backbone's parameter tensors, earliest first, kept frozen; None =
            0.75 when continuing from pretrained weights (a pretrained start, a checkpoint or
            ``weights``), else 0. Continuing also holds the norm layers' running statistics
            at the pretrained ones (see ``hold_norm_stats``).
        hold_norm_stats: normalise with the backbone's running (pretrained) BatchNorm
            statistics and never update them (``edgessl.ssl.plan.hold_norm_statistics``);
            None = on when continuing from pretrained weights, off from scratch.
        weight_decay: None = 1e-4 for SGD, 0.05 for AdamW; never on norms and biases.
        warmup_epochs: linear warm-up before the cosine decay (at most 20% of the steps).
        grad_clip: clip the gradient norm to this value (0 = off).
        seed: seeds data order, augmentations and initialisation, and the val split below.
        exclude_val: for a single folder of class folders, leave out the images ``finetune``
            holds out as val with the same ``seed`` (so its val top-1 stays clean).
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
        resume: continue the unfinished run in ``out`` from its last checkpoint. Every
            setting that changes what is learned must be as saved (data, method, backbone,
            image size, epochs, batch, optimiser, LR, weight decay, warm-up, clipping, seed,
            augmentations, method options); device, processes, precision, memory layout,
            compile and the kNN settings may change.
    """

    FIELD_LABEL = "--"  # messages name fields as the flags of edgessl pretrain

    data: str | None = None
    method: str = "simclr"
    backbone: str = "resnet_tiny"
    weights: str | None = None
    weights_key: str | None = None
    image_size: Annotated[int, Range(ge=MIN_TRAIN_SIDE, le=MAX_IMAGE_SIDE, note="pixels")] = 32
    epochs: Annotated[int, Range(ge=1, le=MAX_EPOCHS)] | None = None
    batch_size: Annotated[int, Range(ge=1, le=MAX_BATCH)] | None = None
    budget: str | None = None
    optimizer: str | None = None
    lr: Annotated[float | None, Range(gt=0, le=MAX_LR)] = None
    weight_decay: Annotated[float | None, Range(ge=0, le=1)] = None
    freeze: Annotated[float, Range(ge=0, lt=1)] | None = None
    hold_norm_stats: bool | None = None
    warmup_epochs: Annotated[int, Range(ge=0, le=MAX_EPOCHS)] = 2
    grad_clip: Annotated[float, Range(ge=0, note="0 = off")] = 0.0
    seed: Annotated[int, Range(ge=0, le=MAX_SEED)] = 0
    exclude_val: bool = True
    augment: AugmentConfig | None = None
    augment_overrides: dict = field(default_factory=dict)
    method_options: dict = field(default_factory=dict)
    eval_data: str | None = None
    eval_every: Annotated[int, Range(ge=1, le=MAX_EPOCHS)] = 1
    knn_k: Annotated[int, Range(ge=1, le=10_000)] = 20
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    sync_bn: bool = False
    out: str | None = None
    force: bool = False
    resume: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


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
    """Names and combinations; the numbers are checked when the config is made."""
    if config.optimizer is not None:
        OPTIMIZERS.get(config.optimizer)
    if config.precision not in PRECISIONS:
        from edgessl.errors import unknown_choice

        raise unknown_choice("precision", config.precision, PRECISIONS)
    if config.resume and config.force:
        raise ConfigError("--resume continues the run in --out and --force replaces it; "
                          "pass only one of them")
    # --aug and --opt values are checked now, before any image or backbone is loaded (the
    # ViT-dependent preset is resolved later, but its fields are the same).
    method_cls = METHODS.get(config.method)
    build_augment(config.augment or method_cls.augment, config.augment_overrides)
    build_method_config(method_cls, config.method_options)


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
    first_loss: float | None = None  # the very first step's loss: the untrained level
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
                "epoch_spread": self.epoch_spread, "first_loss": self.first_loss,
                "history": list(self.history), "rng": rng_state()}

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.epoch_loss, self.epoch_spread = state["epoch_loss"], state["epoch_spread"]
        self.first_loss = state.get("first_loss")  # absent from older saved states
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
        backbone = Path(config.backbone).expanduser()
        check_outputs({"--out": out}, {"DATA": config.data, "--weights": config.weights,
                                       "--backbone": backbone if backbone.exists() else None,
                                       "--eval-data": config.eval_data}, force=True)
    return out


def _saved_epochs(out: Path) -> int:
    """The epochs a run to ``out`` planned (a resumed --budget run keeps its plan); ``out``
    exists (``_output_folder`` checked it)."""
    return int(read_card(out).training["epochs"])


def _resume(run: _Run, out: Path, state: dict, new_card: ModelCard,
            config: PretrainConfig) -> None:
    """Continue ``out`` from its saved ``state``: the whole saved card must match the run's
    (``require_same_run``)."""
    require_same_run(out, read_card(out), new_card)
    run.restore(state)
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


def _check_image_size(config: PretrainConfig, method_cls) -> None:
    """Refuse an image size the backbone or the augmentations cannot take, before building.

    A checkpoint folder as ``--backbone`` fixes the size (it trained at it), and a weights
    file as ``--backbone`` is refused by ``_initial_backbone``; a pretrained start is checked
    as its architecture.
    """
    from edgessl.backbones.weights import WEIGHTS_SUFFIXES
    from edgessl.checkpoint import is_checkpoint

    path = Path(config.backbone).expanduser()
    if is_checkpoint(path) or path.suffix.lower() in WEIGHTS_SUFFIXES:
        return
    start = find_start(config.backbone)
    augment = build_augment(config.augment or method_cls.augment, config.augment_overrides)
    require_image_size(f"timm:{start.arch}" if start else config.backbone, config.image_size,
                       augment, method_cls.num_views)


@dataclass(frozen=True)
class _Init:
    """The backbone a run starts from and what it inherits.

    Attributes:
        backbone: the module; spec: what was built.
        source: where the weights came from (None = random initialisation).
        mean, std: the input normalisation the weights expect.
        pretrained: the pretrained start the weights descend from (its record), or None.
    """

    backbone: torch.nn.Module
    spec: BackboneSpec
    source: str | None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    pretrained: dict | None = None


def _initial_backbone(config: PretrainConfig) -> _Init:
    """A fresh backbone, or one with weights: a pretrained start, a checkpoint folder, or
    ``--weights`` (a weights file alone does not say its architecture and is refused)."""
    from edgessl.backbones.weights import WEIGHTS_SUFFIXES
    from edgessl.checkpoint import is_checkpoint

    path = Path(config.backbone).expanduser()
    if (config.weights is None and not is_checkpoint(path) and find_start(config.backbone) is None
            and path.suffix.lower() not in WEIGHTS_SUFFIXES):
        backbone = create_backbone(BackboneSpec.for_images(config.backbone, config.image_size))
        return _Init(backbone, backbone.spec, None)
    from edgessl.backbone_source import resolve_backbone

    if path.suffix.lower() in WEIGHTS_SUFFIXES:
        raise ConfigError(f"--backbone '{config.backbone}' is a weights file, which does not say "
                          "its architecture: pass --backbone NAME --weights FILE (e.g. "
                          f"--backbone timm:resnet18 --weights {path.name})")
    source = resolve_backbone(config.backbone, config.image_size, config.backbone,
                              weights=config.weights, weights_key=config.weights_key)
    log.info("starting from the weights in %s", source.source)
    return _Init(source.backbone, source.backbone.spec, source.source, tuple(source.mean),
                 tuple(source.std), source.pretrained)


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
    freeze: float
    batch_size: int


def _setup(config: PretrainConfig, method_cls, backbone, dist: Distributed, batch_size: int,
           continued: bool) -> _Setup:
    """Defaults decided once: precision, layout, optimiser, LR from the batch actually used
    (a fiftieth of it when continuing from pretrained weights) and the frozen share."""
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
    if continued:
        base_lr *= CONTINUE_LR_FACTOR
    lr = config.lr if config.lr is not None else scaled_lr(base_lr, batch_size)
    freeze = config.freeze if config.freeze is not None else (
        CONTINUE_FREEZE if continued else 0.0)
    base = config.augment or method_cls.augment
    return _Setup(device, bf16, channels_last, optimizer, lr,
                  build_augment(base, config.augment_overrides), freeze, batch_size)


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
                 grad_clip: float, out: Path) -> bool:
    """The rest of the current epoch; returns False when a stop was requested mid-epoch."""
    for images, _ in loader:
        batch_views = _to_device(views(images), setup, dist)
        with torch.autocast(setup.device.type, dtype=torch.bfloat16, enabled=setup.bf16):
            loss, features = trainer(batch_views)
        value = loss.item()
        if dist.any(not math.isfinite(value)):  # every process stops, none saves
            raise diverged(f"the loss became {value}", run.epoch + 1, run.step + 1,
                           run.optimizer.param_groups[0]["lr"], out, out.is_dir())
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(method.parameters(), grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        run.step += 1
        method.after_step(run.step / total)
        value = dist.mean(value)
        if run.first_loss is None:
            run.first_loss = value
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
    if epoch == 1 and run.first_loss is not None:
        row["first_step_loss"] = run.first_loss
    row["collapsed"] = warn_if_collapsed(row["embedding_spread"], epoch)
    if knn is not None and dist.is_main and (epoch % config.eval_every == 0
                                             or epoch == config.epochs):
        row["knn_top1"] = round(knn_accuracy(method.export_backbone(), knn, mean, std,
                                             setup.device, config.knn_k), 2)
        log.info("epoch %d: loss %.4f, kNN top-1 %.2f%%", epoch, row["loss"], row["knn_top1"])
    if dist.is_main:
        warned = any(r.get("not_learning") for r in run.history)
        row["not_learning"] = warn_if_not_learning(
            [*run.history, row], config.epochs, method.chance_loss(setup.batch_size),
            len(knn.classes) if knn is not None else None, warned)
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


def _training_images(config: PretrainConfig, root: Path) -> tuple[list[Path], int]:
    """The images to pretrain on, and how many finetune's val split took out of them.

    Only a data folder that ``finetune`` would split itself (class folders, no val/) loses
    images; a train/ + val/ root already keeps val/ out (``unlabeled_root``)."""
    from edgessl.data.labeled import DEFAULT_VAL_FRACTION, finetune_val_images

    paths = find_images(root, "unlabeled data folder")
    if not config.exclude_val:
        return paths, 0
    given = Path(config.data).expanduser() if config.data is not None else root
    held_out = set(finetune_val_images(given, paths, DEFAULT_VAL_FRACTION, config.seed))
    if not held_out:
        return paths, 0
    kept = [p for p in paths if p not in held_out]
    log.info("left out the %d images that finetune holds out as val from this folder (same "
             "seeded split, --seed %d), so its val top-1 stays clean; --include-val trains on "
             "them too", len(paths) - len(kept), config.seed)
    return kept, len(paths) - len(kept)


def _budget_epochs(config: PretrainConfig, budget_s: float, method, views, setup,
                   dataset, batch_size: int, steps_per_epoch: int, dist: Distributed) -> int:
    """The epochs that fit ``budget_s``, from the time of a few steps on a copy of the model
    (the run itself, its random state and its weights are untouched)."""
    import copy

    from edgessl.training import rng_state, set_rng_state

    if dist.enabled:
        raise ConfigError("--budget is measured in one process; under torchrun pass --epochs")
    state = rng_state()
    probe = copy.deepcopy(method)
    optimizer = build_optimizer(probe, setup.optimizer, setup.lr, config.weight_decay)
    batch = torch.stack([dataset[i][0] for i in range(batch_size)])

    def step() -> None:
        loss, _ = probe(_to_device(views(batch), setup, dist))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        probe.after_step(0.0)

    seconds = time_steps(step)
    set_rng_state(state)
    epochs = epochs_for_budget(budget_s, seconds, steps_per_epoch,
                               config.epochs or MAX_EPOCHS)
    log.info("budget %s: %.2f s a step x %d steps an epoch -> %d epoch%s", config.budget,
             seconds, steps_per_epoch, epochs, "" if epochs == 1 else "s")
    if seconds * steps_per_epoch > budget_s:
        log.warning("BUDGET WARNING: one epoch takes about %.0f s, more than --budget %s; "
                    "training one epoch anyway. To fit the budget, pretrain on fewer images "
                    "or at a lower --image-size",
                    seconds * steps_per_epoch, config.budget)
    return epochs


def _pretrain(config: PretrainConfig, method_cls, root: Path, dist: Distributed):
    budget_s = parse_budget(config.budget)  # a flag: before any image is read
    if config.eval_data:  # its layout from a listing, before minutes of decoding
        KnnData.check(config.eval_data)
    _check_image_size(config, method_cls)
    seed_everything(config.seed)
    init = _initial_backbone(config)
    backbone, spec, init_from = init.backbone, init.spec, init.source
    # the output is checked before the images are decoded (minutes on a large folder): a
    # rerun into an existing folder is refused at once
    out = _output_folder(config, spec, dist)
    # a finished run (nothing to resume) or a damaged state is refused before the images
    saved_state = load_train_state(out) if config.resume else None
    method_config = build_method_config(method_cls, config.method_options)
    if method_cls.needs_vit and not _is_vit(backbone):
        raise ConfigError(f"{config.method} needs a ViT backbone, not '{spec.name}'; pass "
                          "--backbone vit_tiny (or vit_small, vit_base, timm:vit_*)")
    paths, excluded = _training_images(config, root)
    mean, std = init.mean, init.std
    # split with the run's seed: with --eval-data DATA, its val images are then the ones left
    # out of pretraining (``_training_images``), not images the backbone trained on
    knn = (KnnData.load(config.eval_data, config.image_size, seed=config.seed)
           if config.eval_data else None)
    dataset = ImageDataset(paths, config.image_size)
    batch_size = require_batch(method_cls, len(dataset),
                               choose_batch(config.batch_size, len(dataset), dist.world_size),
                               dist.world_size, root, given=config.batch_size is not None)
    dist.check_batch(batch_size)
    setup = _setup(config, method_cls, backbone, dist, batch_size, init_from is not None)
    frozen = freeze_early(backbone, setup.freeze)
    hold = (init_from is not None if config.hold_norm_stats is None
            else config.hold_norm_stats)
    held = hold_norm_statistics(backbone) if hold else 0
    from edgessl.memory import check_training_memory

    # after freezing: a frozen start's early layers keep no activations for backward
    check_training_memory(backbone, batch_size // dist.world_size, config.image_size,
                          setup.device, views=method_cls.num_views)
    if init_from is not None:
        log.info("continuing from pretrained weights: the first %d of %d backbone tensors are "
                 "frozen (--freeze %.2f), lr %.4g, the running statistics of %d norm layers "
                 "held", frozen, len(list(backbone.parameters())), setup.freeze, setup.lr, held)
    views = BatchViews(setup.augment, config.image_size, mean, std, method_cls.num_views)
    steps_per_epoch = len(dataset) // batch_size
    method = method_cls(backbone, method_config).to(setup.device).train()
    if setup.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if config.compile:
        method.backbone.compile()
    trainer = dist.wrap(method, config.sync_bn)
    method = trainer.module if dist.enabled else method
    epochs = config.epochs or DEFAULT_EPOCHS
    if budget_s is not None:
        epochs = (_saved_epochs(out) if config.resume else
                  _budget_epochs(config, budget_s, method, views, setup, dataset,
                                 batch_size, steps_per_epoch, dist))
    optimizer = build_optimizer(method, setup.optimizer, setup.lr, config.weight_decay)
    total = epochs * steps_per_epoch
    warmup = warmup_steps(config.warmup_epochs, steps_per_epoch, total)
    run = _Run(method, optimizer, cosine_with_warmup(optimizer, total, warmup))
    config = dataclasses.replace(config, epochs=epochs)

    def card(seconds: float, complete: bool) -> ModelCard:
        return ModelCard(
            kind="backbone", backbone=spec.to_dict(), method=config.method,
            training={"epochs": config.epochs, "epochs_done": run.epoch, "complete": complete,
                      "final_loss": run.losses[-1] if run.losses else None,
                      "batch_size": batch_size, "optimizer": setup.optimizer, "lr": setup.lr,
                      "weight_decay": (DEFAULT_WEIGHT_DECAY[setup.optimizer]
                                       if config.weight_decay is None else config.weight_decay),
                      "warmup_epochs": config.warmup_epochs, "warmup_steps": warmup,
                      "budget": config.budget, "freeze": setup.freeze, "frozen_tensors": frozen,
                      "norm_statistics_held": held,
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
                  "images": len(paths), "excluded_val_images": excluded,
                  **({"excluded_val": {"val_fraction": 0.2, "seed": config.seed}}
                     if excluded else {})},
            mean=mean, std=std, pretrained=init.pretrained)

    if config.resume:
        _resume(run, out, saved_state, card(0.0, False), config)

    if dist.is_main:
        log.info("pretraining %s on %d images from %s (%s, %d px, %d epochs, batch %d, %s lr "
                 "%.4g, %s%s, %d process%s)", config.method, len(dataset), root, spec.name,
                 config.image_size, config.epochs, batch_size, setup.optimizer, setup.lr,
                 setup.device, ", bf16" if setup.bf16 else "", dist.world_size,
                 "es" if dist.world_size > 1 else "")
    start = time.perf_counter()
    title = f"{config.method} on {spec.name}, {config.image_size} px"
    # the output is this run's until it ends (locked: a second run to it fails at once)
    claim = (output_lock(out, force=config.force or config.resume) if dist.is_main
             else contextlib.nullcontext())
    with claim, GracefulStop() as stop, progress_bar(total, f"pretrain {config.method}",
                                                     disable=not dist.is_main) as bar:
        bar.update(run.step)
        while run.epoch < config.epochs:
            loader = epoch_loader(dataset, batch_size, config.seed, run.epoch, run.batch)
            finished = _train_epoch(run, trainer, method, loader, views, setup, total, bar,
                                    stop, dist, config.grad_clip, out)
            if not finite_weights(method):  # a last step of inf gradients: never save those
                raise diverged("the weights stopped being finite", run.epoch + 1, run.step,
                               run.optimizer.param_groups[0]["lr"], out, out.is_dir())
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
