"""``edgessl compare``: which start to ship, measured by cross-validation on the user's labels.

Raw pixels, a backbone from scratch, SSL from scratch, a pretrained start (frozen and
fine-tuned) and the pretrained start with SSL continued on the user's images are each trained
on the same stratified folds of the labeled images and scored on the held-out fold. Nothing
else is used for scoring: no separate test set is needed, and none is touched.

The SSL arms pretrain once on an unlabeled pool: ``unlabeled`` when given, else the images of
the data folder that are not among the labeled images being compared (with
``labels_per_class`` the rest of each class). Only when no other image is left do they
pretrain on the compared images themselves (their pixels, never their labels), and the result
says so (``ssl_pool``).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

from edgessl.backbones import BACKBONES, list_backbones
from edgessl.backbones.pretrained import DEFAULT_START, PRETRAINED, find_start
from edgessl.compare.arms import ARMS, ORDER, ArmContext
from edgessl.compare.result import ArmResult, CompareResult
from edgessl.config import MAX_BATCH, MAX_EPOCHS, MAX_SEED, MIN_TRAIN_SIDE, Range, check_fields
from edgessl.data.images import require_dir
from edgessl.data.labeled import LabeledData, Sample
from edgessl.errors import ConfigError, DataError, unknown_choice
from edgessl.limits import MAX_IMAGE_SIDE
from edgessl.ssl import METHODS

log = logging.getLogger("edgessl")


@dataclass(frozen=True)
class CompareConfig:
    """Settings of one comparison (flags of ``edgessl compare``).

    Attributes:
        data: labeled images (class folders, or train/ + val/ roots whose images are pooled);
            None = the built-in digits.
        unlabeled: a folder of unlabeled images for the SSL arms; None = see the module doc.
        labels_per_class: K labeled images of each class to compare at (seeded); None = all.
        folds: stratified cross-validation folds (≤ the smallest class's count).
        arms: which arms to run (see ``edgessl.compare.ARMS``).
        start: the pretrained start of the pretrained arms.
        arch: the architecture of the scratch and SSL-from-scratch arms.
        image_size: side (px) for pixels, scratch and SSL from scratch.
        pretrained_size: side (px) for the pretrained arms; None = the side ``finetune``
            gives the start (``default_size``: its training size), so the recommended start is
            measured as it would be shipped.
        ssl_method, ssl_epochs, ssl_batch_size: SSL from scratch.
        continued_epochs: epochs of SSL continued from the pretrained start.
        full_epochs: epochs of each full fine-tune.
        pretrained_full_lr: peak learning rate of the pretrained full fine-tune.
        hflip: flip probability during full fine-tunes (0 for digits, text, ...).
        seed: seeds the label subset, the folds and training.
        out: folder for compare.json, compare.md, compare.png and the arms' checkpoints.
        force: replace an existing ``out``.
    """

    FIELD_LABEL = "--"

    data: str | None = None
    unlabeled: str | None = None
    labels_per_class: Annotated[int, Range(ge=1, le=1_000_000)] | None = None
    folds: Annotated[int, Range(ge=2, le=20)] = 3
    arms: tuple[str, ...] = ORDER
    start: str = DEFAULT_START
    arch: str = "resnet_tiny_s2"
    image_size: Annotated[int, Range(ge=MIN_TRAIN_SIDE, le=MAX_IMAGE_SIDE)] = 32
    pretrained_size: Annotated[int, Range(ge=MIN_TRAIN_SIDE, le=MAX_IMAGE_SIDE)] | None = None
    ssl_method: str = "simclr"
    ssl_epochs: Annotated[int, Range(ge=1, le=MAX_EPOCHS)] = 30
    ssl_batch_size: Annotated[int, Range(ge=2, le=MAX_BATCH)] = 128
    continued_epochs: Annotated[int, Range(ge=1, le=MAX_EPOCHS)] = 5
    full_epochs: Annotated[int, Range(ge=1, le=MAX_EPOCHS)] = 30
    pretrained_full_lr: Annotated[float, Range(gt=0, le=1)] = 5e-4
    hflip: Annotated[float, Range(ge=0, le=1)] = 0.5
    seed: Annotated[int, Range(ge=0, le=MAX_SEED)] = 0
    out: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.arms:
            raise ConfigError(f"--arms is empty; choose from: {', '.join(ORDER)}")
        for name in self.arms:
            ARMS.get(name)
        if self.labels_per_class is not None and self.labels_per_class < self.folds:
            raise ConfigError(f"--folds {self.folds} needs at least {self.folds} labeled images "
                              f"of each class, and --labels-per-class is {self.labels_per_class}:"
                              f" lower --folds or raise --labels-per-class")
        twice = sorted({name for name in self.arms if self.arms.count(name) > 1})
        if twice:  # each arm runs once: a repeat is a typo, never silently dropped
            raise ConfigError(f"--arms names {', '.join(twice)} more than once; name each arm "
                              f"once (choose from: {', '.join(ORDER)})")
        # names that only the later arms use fail now, not after minutes of the first ones
        if find_start(self.start) is None:
            raise unknown_choice("pretrained start", self.start, PRETRAINED.names())
        METHODS.get(self.ssl_method)
        arch = self.arch.removeprefix("timm:")
        if arch not in BACKBONES:
            import timm

            if not timm.is_model(arch):
                raise unknown_choice("backbone", arch, list_backbones(arch))


def make_folds(samples: list[Sample], folds: int, seed: int,
               classes: tuple[str, ...]) -> list[list[Sample]]:
    """Stratified, seeded folds: each class's images dealt round-robin after a shuffle.

    Raises:
        DataError: a class with fewer images than folds.
    """
    rng = random.Random(seed)
    out: list[list[Sample]] = [[] for _ in range(folds)]
    for label in sorted({y for _, y in samples}):
        items = sorted(s for s in samples if s[1] == label)
        if len(items) < folds:
            raise DataError(f"class '{classes[label]}' has {len(items)} labeled "
                            f"image{'s' if len(items) != 1 else ''}, fewer "
                            f"than --folds {folds}; lower --folds or add labels")
        rng.shuffle(items)
        for i, sample in enumerate(items):
            out[i % folds].append(sample)
    return out


def _labeled_pool(cfg: CompareConfig) -> tuple[LabeledData, list[Sample], list[Path]]:
    """(the dataset, the labeled samples compared, the other images of the data folder)."""
    from edgessl.data.digits import default_digits_dir
    from edgessl.data.labeled import labels_per_class, load_labeled

    root = cfg.data if cfg.data is not None else default_digits_dir()
    data = load_labeled(root, 0.2, cfg.seed)
    every = list(data.train) + list(data.val)
    chosen = labels_per_class(every, cfg.labels_per_class, cfg.seed, data.classes)
    picked = {p for p, _ in chosen}
    rest = [p for p, _ in every if p not in picked]
    return data, chosen, rest


def _link_pool(files: list[Path], folder: Path) -> Path:
    """A folder of links to ``files`` (the SSL arms' unlabeled pool)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        (folder / f"{i:06d}{path.suffix.lower()}").symlink_to(Path(path).resolve())
    return folder


def _ssl_pool(cfg: CompareConfig, rest: list[Path], chosen: list[Sample],
              work: Path) -> tuple[Path, str]:
    if cfg.unlabeled is not None:
        return require_dir(cfg.unlabeled, "unlabeled data folder"), f"'{cfg.unlabeled}'"
    if rest:
        return (_link_pool(rest, work / "unlabeled"),
                f"{len(rest)} images of the data folder outside the compared labels")
    return (_link_pool([p for p, _ in chosen], work / "unlabeled"),
            f"the {len(chosen)} compared images themselves (pixels only, no labels: pass "
            "--unlabeled for a clean pool)")


def recommend(results: list[ArmResult]) -> tuple[str, str]:
    """The arm to ship and why: the best mean top-1, unless a simpler arm is within noise.

    "Within noise" is one standard error of the difference between two arms' fold scores
    (at least 1 point): the simpler arm (by ``Arm.simplicity``) is then recommended.
    """
    candidates = [r for r in results if r.name != "pixels"] or results
    best = max(candidates, key=lambda r: r.top1_mean)
    simplest = best
    for r in sorted(candidates, key=lambda r: ARMS.get(r.name).simplicity):
        n = max(len(r.top1_per_fold), 1)
        noise = max(0.01, ((r.top1_std ** 2 + best.top1_std ** 2) / n) ** 0.5)
        if best.top1_mean - r.top1_mean <= noise:
            simplest = r
            break
    reason = (f"{simplest.title}: {100 * simplest.top1_mean:.1f}% ± "
              f"{100 * simplest.top1_std:.1f} cross-validated top-1")
    if simplest is best:
        runner_up = sorted(candidates, key=lambda r: -r.top1_mean)[1:2]
        if runner_up:
            reason += (f", {100 * (best.top1_mean - runner_up[0].top1_mean):.1f} points above "
                       f"the next ({runner_up[0].title})")
    else:
        reason += (f", within noise of the best ({best.title}, {100 * best.top1_mean:.1f}%) "
                   "and simpler to make and ship")
    pixels = next((r for r in results if r.name == "pixels"), None)
    if pixels is not None and simplest is not pixels and simplest.top1_mean <= pixels.top1_mean:
        reason += ("; WARNING: it does not beat raw pixels: these images may be too few or "
                   "too unlike what the backbones learned from")
    return simplest.name, reason


def _settings(cfg: CompareConfig) -> dict:
    """What the arms were run with (the report's record; paths left out)."""
    keep = ("arms", "start", "arch", "image_size", "pretrained_size", "ssl_method",
            "ssl_epochs", "continued_epochs", "full_epochs", "pretrained_full_lr", "seed")
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(cfg).items() if k in keep}


def _start_side(cfg: CompareConfig) -> int:
    """The side ``finetune`` gives ``cfg.start``."""
    from edgessl.backbones.pretrained import default_size

    return default_size(find_start(cfg.start))


def _check_unlabeled(cfg: CompareConfig) -> int | None:
    """--unlabeled before any arm runs: an existing folder with images, used by an arm;
    returns how many images it holds (None when no arm reads it).

    Raises:
        DataError: not a folder, or no image in it (listed by name, nothing decoded).
    """
    from edgessl.data.images import image_files_or_fail

    if cfg.unlabeled is None:
        return None
    root = require_dir(cfg.unlabeled, "unlabeled data folder")
    if not any(ARMS.get(name).prepare is not None for name in cfg.arms):
        log.warning("--unlabeled is used only by the SSL arms (ssl, pretrained_ssl), and "
                    "--arms has none: it is ignored")
        return None
    try:
        return len(image_files_or_fail(root, "--unlabeled"))
    except DataError as exc:
        raise DataError(f"{exc}, or leave --unlabeled out to pretrain on the data folder's "
                        "other images") from None


def _check_ssl_pool(cfg: CompareConfig, rest: list[Path], chosen: list[Sample],
                    unlabeled: int | None) -> None:
    """Refuse, before any arm runs, an SSL pool too small for one step of the SSL method
    (it would fail only after the arms before it had run for minutes); ``unlabeled``: the
    images ``_check_unlabeled`` found in --unlabeled.

    Raises:
        DataError: fewer images in the pool than the method's smallest batch.
    """
    ssl_arms = [name for name in cfg.arms if ARMS.get(name).prepare is not None]
    if not ssl_arms:
        return
    if unlabeled is not None:
        where, count = f"--unlabeled '{cfg.unlabeled}'", unlabeled
    elif rest:
        where, count = "the data folder's images outside the compared labels", len(rest)
    else:
        where, count = "the compared images", len(chosen)
    method = METHODS.get(cfg.ssl_method)
    if count < method.min_batch:
        raise DataError(f"the SSL arms ({', '.join(ssl_arms)}) pretrain on {where}: "
                        f"{count} image{'s' if count != 1 else ''}, and {cfg.ssl_method} needs "
                        f"at least {method.min_batch} a step; pass --unlabeled with more images "
                        f"(hundreds or more), or leave {', '.join(ssl_arms)} out of --arms")


def compare(cfg: CompareConfig) -> CompareResult:
    """Run every arm of ``cfg`` on the same folds and write compare.json/.md/.png.

    Raises:
        DataError: unusable data, or a class with fewer labeled images than folds.
        OutputExistsError: ``out`` exists and ``force`` is False.
    """
    from edgessl.compare.report import write_report
    from edgessl.io import atomic_dir, check_outputs

    out = Path(cfg.out or "compare")
    check_outputs({"--out": out}, {"DATA": cfg.data, "--unlabeled": cfg.unlabeled},
                  force=cfg.force)
    unlabeled = _check_unlabeled(cfg)
    data, chosen, rest = _labeled_pool(cfg)
    if cfg.pretrained_size is None:
        cfg = dataclasses.replace(cfg, pretrained_size=_start_side(cfg))
        if any(name.startswith("pretrained") for name in cfg.arms):  # else not worth a line
            log.info("pretrained arms at %d px (finetune's size for %s)", cfg.pretrained_size,
                     cfg.start)
    folds = make_folds(chosen, cfg.folds, cfg.seed, data.classes)
    _check_ssl_pool(cfg, rest, chosen, unlabeled)
    with atomic_dir(out, force=cfg.force) as tmp:
        work = tmp / "work"
        pool, pool_text = _ssl_pool(cfg, rest, chosen, work)
        ctx = ArmContext(cfg, work, pool)
        log.info("comparing %d starts on %d labeled images (%s per class), %d folds",
                 len(cfg.arms), len(chosen), cfg.labels_per_class or "all", cfg.folds)
        results = [_run_arm(ctx, name, data, folds) for name in ORDER if name in cfg.arms]
        name, reason = recommend(results)
        result = CompareResult(tuple(results), name, reason, cfg.labels_per_class, cfg.folds,
                               len(chosen), pool_text, out, settings=_settings(cfg))
        write_report(result, tmp)
    log.info("recommended: %s", reason)
    return result


def _run_arm(ctx: ArmContext, name: str, data: LabeledData,
             folds: list[list[Sample]]) -> ArmResult:
    arm = ARMS.get(name)
    start = time.perf_counter()
    if arm.prepare is not None:
        arm.prepare(ctx)
    scores = []
    for i, held_out in enumerate(folds):
        train = [s for j, f in enumerate(folds) if j != i for s in f]
        fold = LabeledData(data.root, data.classes, tuple(train), tuple(held_out),
                           f"fold {i + 1}/{len(folds)}")
        scores.append(arm.fold(ctx, fold, i))
    seconds = time.perf_counter() - start
    mean = statistics.fmean(scores)
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    log.info("%-16s %.1f%% ± %.1f  (%.0f s)", name, 100 * mean, 100 * std, seconds)
    return ArmResult(name, arm.title, arm.backbone, mean, std, tuple(scores), seconds)
