"""The starting points ``edgessl compare`` measures, one small function each (registry ``ARMS``).

Each arm trains a classifier on one fold's training images and returns its top-1 on the fold's
held-out images, through the same ``finetune`` a user would run, so the number describes the
model the user would ship. Arms that need SSL pretraining do it once per comparison (``prepare``)
on the unlabeled pool, never on labels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgessl.data.labeled import LabeledData
from edgessl.registry import Registry

log = logging.getLogger("edgessl")


@dataclass
class ArmContext:
    """What every arm of one comparison shares.

    Attributes:
        config: the CompareConfig.
        work: folder for the arms' checkpoints (``<out>/work``).
        unlabeled: folder of unlabeled images for the SSL arms.
        checkpoints: SSL checkpoints made by ``prepare`` (arm name -> folder).
        seconds: time spent in ``prepare`` per arm.
    """

    config: object
    work: Path
    unlabeled: Path
    checkpoints: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Arm:
    """One starting point of the comparison.

    Attributes:
        name: short key in tables and JSON.
        title: what it is, in words.
        backbone: what would be shipped as the backbone ("none", "scratch", "SSL", ...).
        simplicity: rank for ties (lower = simpler to make and to ship).
        fold: trains on ``data.train`` and returns top-1 on ``data.val`` (a fraction).
        prepare: one-off work before the folds (SSL pretraining), or None.
    """

    name: str
    title: str
    backbone: str
    simplicity: int
    fold: Callable[[ArmContext, LabeledData, int], float]
    prepare: Callable[[ArmContext], None] | None = None


def _finetune(ctx: ArmContext, data: LabeledData, fold: int, name: str, **kwargs) -> float:
    from edgessl.finetune.train import FinetuneConfig, finetune

    cfg = ctx.config
    result = finetune(FinetuneConfig(out=str(ctx.work / name / f"fold{fold}"), force=True,
                                     seed=cfg.seed, hflip=cfg.hflip, **kwargs), data)
    return float(result.metrics["top1"])


def _pixels(ctx: ArmContext, data: LabeledData, fold: int) -> float:
    from edgessl.finetune.baseline import pixel_logistic_regression

    return pixel_logistic_regression(data, None, ctx.config.seed, ctx.config.image_size)


def _scratch(ctx: ArmContext, data: LabeledData, fold: int) -> float:
    cfg = ctx.config
    return _finetune(ctx, data, fold, "scratch", backbone=f"scratch:{cfg.arch}", mode="full",
                     image_size=cfg.image_size, epochs=cfg.full_epochs)


def _pretrain(ctx: ArmContext, arm: str, backbone: str, image_size: int | None,
              epochs: int) -> None:
    import time

    from edgessl.ssl.pretrain import PretrainConfig, pretrain

    cfg = ctx.config
    start = time.perf_counter()
    result = pretrain(PretrainConfig(
        data=str(ctx.unlabeled), method=cfg.ssl_method, backbone=backbone,
        image_size=image_size, epochs=epochs, batch_size=cfg.ssl_batch_size, seed=cfg.seed,
        out=str(ctx.work / arm / "ssl"), force=True))
    ctx.checkpoints[arm] = result.path
    ctx.seconds[arm] = time.perf_counter() - start


def _prepare_ssl(ctx: ArmContext) -> None:
    cfg = ctx.config
    _pretrain(ctx, "ssl", cfg.arch, cfg.image_size, cfg.ssl_epochs)


def _ssl(ctx: ArmContext, data: LabeledData, fold: int) -> float:
    return _finetune(ctx, data, fold, "ssl", backbone=str(ctx.checkpoints["ssl"]),
                     mode="linear")


def _pretrained(ctx: ArmContext, data: LabeledData, fold: int) -> float:
    cfg = ctx.config
    return _finetune(ctx, data, fold, "pretrained", backbone=cfg.start, mode="linear",
                     image_size=cfg.pretrained_size)


def _pretrained_full(ctx: ArmContext, data: LabeledData, fold: int) -> float:
    cfg = ctx.config
    return _finetune(ctx, data, fold, "pretrained_full", backbone=cfg.start, mode="full",
                     image_size=cfg.pretrained_size, epochs=cfg.full_epochs,
                     lr=cfg.pretrained_full_lr)


def _prepare_pretrained_ssl(ctx: ArmContext) -> None:
    cfg = ctx.config
    _pretrain(ctx, "pretrained_ssl", cfg.start, cfg.pretrained_size, cfg.continued_epochs)


def _pretrained_ssl(ctx: ArmContext, data: LabeledData, fold: int) -> float:
    return _finetune(ctx, data, fold, "pretrained_ssl",
                     backbone=str(ctx.checkpoints["pretrained_ssl"]), mode="linear")


ARMS: Registry[Arm] = Registry("comparison arm")
ARMS.register("pixels", Arm("pixels", "raw pixels + logistic regression", "none", 0, _pixels))
ARMS.register("scratch", Arm("scratch", "random init, full fine-tune", "scratch", 2, _scratch))
ARMS.register("ssl", Arm("ssl", "SSL from scratch on your images + linear probe", "SSL", 4,
                         _ssl, _prepare_ssl))
ARMS.register("pretrained", Arm("pretrained", "pretrained start, frozen + linear probe",
                                "pretrained", 1, _pretrained))
ARMS.register("pretrained_full", Arm("pretrained_full", "pretrained start, full fine-tune",
                                     "pretrained", 3, _pretrained_full))
ARMS.register("pretrained_ssl", Arm(
    "pretrained_ssl", "pretrained start + SSL continued on your images + linear probe",
    "pretrained + SSL", 5, _pretrained_ssl, _prepare_pretrained_ssl))

# The order of the table: the floor, then from the cheapest start to the most involved.
ORDER = ("pixels", "scratch", "ssl", "pretrained", "pretrained_full", "pretrained_ssl")
