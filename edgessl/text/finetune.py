"""Few-label text classifiers: a linear probe, SetFit, or full fine-tuning (``MODES``).

- ``probe``: the encoder stays frozen; its pooled embeddings are standardised and an
  L2-regularised logistic regression is solved to convergence, with C chosen by stratified
  cross-validation on the labeled examples (``edgessl.finetune.train.choose_probe_c``, as for
  images). The standardisation is folded into the linear head.
- ``full``: encoder and head trained end to end with AdamW (a small learning rate for the
  encoder, a larger one for the head, linear warm-up then cosine decay). The head starts from
  the probe's solution ("LP-FT", Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
  Features and Underperform Out-of-Distribution"): a random head's large early gradients
  would otherwise pull the pretrained features apart before the head is any good, which
  matters most with a handful of labels. Training stops early at ``max_steps`` or
  ``max_seconds`` (a CPU budget); the card says when such a cap cut it short.
- ``setfit``: SetFit-style contrastive fine-tuning of the encoder's top layers on pairs of
  the labeled sentences (``edgessl.text.setfit``, capped by ``pairs`` and the same
  ``max_steps`` / ``max_seconds``), then the probe's logistic regression on the new
  embeddings.

``MODES`` is the registry of these modes; the CLI takes its choices from it.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch

from edgessl import __version__
from edgessl.config import MAX_BATCH, MAX_EPOCHS, MAX_LR, MAX_SEED, Range, check_fields
from edgessl.errors import ConfigError, printable
from edgessl.finetune.monitor import probe_not_learning, val_at_chance
from edgessl.registry import Registry
from edgessl.text.data import TextSample, TextSet
from edgessl.text.encoders import DEFAULT_TEXT_START, LoadedEncoder, load_encoder
from edgessl.text.model import CARD_FORMAT, TextClassifier, choose_length, save_text_classifier
from edgessl.text.runtime import MAX_SEQUENCE
from edgessl.text.setfit import contrastive_tune

log = logging.getLogger("edgessl")


@dataclass(frozen=True)
class TextFinetuneConfig:
    """Settings of one text fine-tune.

    Attributes:
        encoder: a text start (``all-minilm-l6-v2``) or a local Hugging Face folder.
        mode: "probe", "setfit" or "full" (see the module docstring; ``MODES``).
        labels_per_class: K labeled examples of each class (stratified, seeded); None = all.
        seed: seeds the label subset, the head and the training order.
        max_length: L in tokens, at most the encoder's ``max_length`` (more is a
            ConfigError); None = the longest training-split text, rounded up to 8, at most
            that.
        probe_c: the probe's inverse L2 strength; None = chosen by cross-validation.
        epochs, batch_size, lr, head_lr, weight_decay: full fine-tuning's AdamW (SetFit
            uses ``batch_size`` and ``weight_decay``; the CLI's --epochs and --lr set its
            ``pair_iterations`` and ``pair_lr``: ``edgessl.text.workflow.MODE_FLAGS``). The
            defaults (20 epochs, 5e-5 for the encoder, as in BERT's own recipes, 1e-3 for the
            head) take about 30 s for 80 short texts with MiniLM on 2 CPU cores.
        max_steps, max_seconds: caps on full and SetFit fine-tuning (None = none).
        pairs: SetFit's cap on sentence pairs trained on (a CPU budget: 256 pairs take
            about a minute with MiniLM on 2 cores).
        pair_iterations: SetFit's rounds of pair sampling (each gives every sentence one
            positive and one negative partner; SetFit's default 20).
        top_layers: SetFit trains this many transformer layers from the top (0 = all).
        pair_lr: SetFit's AdamW learning rate (batches of ``batch_size`` pairs).
    """

    encoder: str = DEFAULT_TEXT_START
    mode: str = "probe"
    labels_per_class: Annotated[int | None, Range(ge=1, le=1_000_000)] = None
    seed: Annotated[int, Range(ge=0, le=MAX_SEED)] = 0
    max_length: Annotated[int | None, Range(ge=4, le=MAX_SEQUENCE, note="tokens")] = None
    probe_c: Annotated[float | None, Range(gt=0, le=1e6)] = None
    epochs: Annotated[int, Range(ge=1, le=MAX_EPOCHS)] = 20
    batch_size: Annotated[int, Range(ge=1, le=MAX_BATCH)] = 16
    lr: Annotated[float, Range(gt=0, le=MAX_LR)] = 5e-5
    head_lr: Annotated[float, Range(gt=0, le=MAX_LR)] = 1e-3
    weight_decay: Annotated[float, Range(ge=0, le=1)] = 0.01
    max_steps: Annotated[int | None, Range(ge=1, le=10**9)] = None
    max_seconds: Annotated[float | None, Range(gt=0, note="seconds")] = 600.0
    pairs: Annotated[int, Range(ge=1, le=10**7)] = 256
    pair_iterations: Annotated[int, Range(ge=1, le=10_000)] = 20
    top_layers: Annotated[int, Range(ge=0, le=1000, note="0 = all")] = 2
    pair_lr: Annotated[float, Range(gt=0, le=MAX_LR)] = 1e-4

    def __post_init__(self) -> None:
        check_fields(self)
        MODES.get(self.mode)  # an unknown mode is a ConfigError with a suggestion


TEXT_ADVICE = ("the encoder's embeddings do not tell your classes apart: try --mode setfit or "
               "full, another --encoder, more labels, or check that each text has its label")


def fit_probe(model: TextClassifier, samples: list[TextSample], cfg: TextFinetuneConfig) -> dict:
    """Solve the head as a logistic regression on standardised frozen embeddings.

    Returns:
        What the card records: the C used and the training log-loss.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from edgessl.finetune.train import choose_probe_c, standardise
    from edgessl.io import require_finite

    feats = model.embed([t for t, _ in samples]).double().numpy()
    require_finite(feats, f"the encoder's embeddings of {len(feats)} texts", "the encoder "
                   "holds NaN or infinite weights: use another encoder", ConfigError)
    labels = np.array([y for _, y in samples])
    mu, sigma = standardise(feats)
    z = (feats - mu) / sigma
    c = cfg.probe_c if cfg.probe_c is not None else choose_probe_c(z, labels, cfg.seed)
    clf = LogisticRegression(C=c, max_iter=5000).fit(z, labels)
    weight, bias = clf.coef_, clf.intercept_
    if weight.shape[0] == 1:  # two classes: one logit z -> softmax([-z/2, z/2]) == sigmoid(z)
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    full_w = np.zeros((len(model.labels), z.shape[1]))
    full_b = np.full(len(model.labels), -1e4)  # a class absent from training never wins
    full_w[clf.classes_], full_b[clf.classes_] = weight, bias
    with torch.no_grad():  # W((x - mu) / sigma) + b == (W / sigma) x + (b - W mu / sigma)
        model.head.weight.copy_(torch.from_numpy(full_w / sigma))
        model.head.bias.copy_(torch.from_numpy(full_b - (full_w / sigma) @ mu))
    loss = log_loss(labels, clf.predict_proba(z), labels=clf.classes_)
    reason = probe_not_learning(float(loss), len(clf.classes_))
    if reason is not None:
        log.warning("NOT LEARNING WARNING: %s; %s", reason, TEXT_ADVICE)
    return {"probe_c": c, "train_loss": float(loss),
            **({"not_learning": reason} if reason else {})}


def fit_full(model: TextClassifier, samples: list[TextSample], cfg: TextFinetuneConfig) -> dict:
    """Train encoder and head end to end, starting from the probe's head (LP-FT).

    Returns:
        What the card records: the probe's C, steps done and planned, the final loss, and
        ``capped_by`` ("max_steps", "max_seconds" or None) when a cap ended training early.
    """
    from edgessl.training import cosine_with_warmup, param_groups, seed_everything

    probe = fit_probe(model, samples, cfg)
    generator = seed_everything(cfg.seed)
    batch = min(cfg.batch_size, len(samples))
    planned = cfg.epochs * math.ceil(len(samples) / batch)
    groups = [{**g, "lr": cfg.lr} for g in param_groups(model.encoder, cfg.weight_decay)]
    groups += [{**g, "lr": cfg.head_lr} for g in param_groups(model.head, cfg.weight_decay)]
    opt = torch.optim.AdamW(groups)
    sched = cosine_with_warmup(opt, planned, max(1, planned // 10))
    start, steps, capped_by, loss = time.perf_counter(), 0, None, float("nan")
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(samples), generator=generator).tolist()
        for i in range(0, len(order), batch):
            chunk = [samples[j] for j in order[i:i + batch]]
            ids, mask = model.tokenize([t for t, _ in chunk])
            out = torch.nn.functional.cross_entropy(model(ids, mask),
                                                    torch.tensor([y for _, y in chunk]))
            opt.zero_grad(set_to_none=True)
            out.backward()
            opt.step()
            sched.step()
            steps, loss = steps + 1, float(out.item())
            if cfg.max_steps is not None and steps >= cfg.max_steps:
                capped_by = "max_steps"
            elif cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds:
                capped_by = "max_seconds"
            if capped_by:
                break
        if capped_by:
            break
    model.eval()
    seconds = time.perf_counter() - start
    if capped_by and steps < planned:
        log.warning("full fine-tuning stopped by %s after %d of %d steps (%.0f s)", capped_by,
                    steps, planned, seconds)
    return {"probe_c": probe["probe_c"], "steps": steps, "planned_steps": planned,
            "capped_by": capped_by if steps < planned else None, "train_seconds": seconds,
            "final_loss": loss}


def fit_setfit(model: TextClassifier, samples: list[TextSample],
               cfg: TextFinetuneConfig) -> dict:
    """SetFit: contrastive fine-tuning on sentence pairs, then the probe on new embeddings.

    Returns:
        What the card records: the pair training's report (``edgessl.text.setfit``) and
        the probe's C and training loss.
    """
    tuned = contrastive_tune(model, samples, cfg)
    return {**tuned, **fit_probe(model, samples, cfg)}


MODES: Registry[Callable[[TextClassifier, list, TextFinetuneConfig], dict]] = Registry(
    "text fine-tune mode")
MODES.register("probe", fit_probe)
MODES.register("full", fit_full)
MODES.register("setfit", fit_setfit)
TEXT_MODES = MODES  # the name the CLI imports


def evaluate_text(model: TextClassifier, samples) -> dict:
    """Top-1 accuracy of ``model`` on (text, label) samples."""
    if not samples:
        return {"top1": None, "examples": 0}
    predicted = model.logits([t for t, _ in samples]).argmax(1).numpy()
    truth = np.array([y for _, y in samples])
    return {"top1": float((predicted == truth).mean()), "examples": len(samples)}


@dataclass
class TextFinetuneResult:
    """The trained classifier and its card (``save`` writes both)."""

    model: TextClassifier
    card: dict

    def save(self, out: str | Path, force: bool = False) -> Path:
        return save_text_classifier(self.model, self.card, out, force=force)


def finetune_text(cfg: TextFinetuneConfig, data: TextSet,
                  encoder: LoadedEncoder | None = None) -> TextFinetuneResult:
    """Train a text classifier on ``data``'s training split as ``cfg`` says; score it on val.

    Args:
        cfg: the settings.
        data: the labeled text set.
        encoder: an already loaded encoder (saves loading it again); it is copied, never
            changed. None = ``load_encoder(cfg.encoder)``.
    """
    begin = time.perf_counter()
    train = data.labels_per_class(cfg.labels_per_class, cfg.seed)
    loaded = encoder if encoder is not None else load_encoder(cfg.encoder)
    limit = loaded.record["max_length"]
    if cfg.max_length is not None and cfg.max_length > limit:
        raise ConfigError(f"max_length {cfg.max_length} is over the {limit} tokens that "
                          f"encoder '{printable(cfg.encoder)}' reads; give {limit} or less, or "
                          "None to fit the longest training text")
    length = cfg.max_length or choose_length(loaded.tokenizer, [t for t, _ in data.train], limit)
    torch.manual_seed(cfg.seed)
    model = TextClassifier(copy.deepcopy(loaded.encoder), data.classes, length, loaded.pad_id,
                           loaded.tokenizer)
    training = MODES.get(cfg.mode)(model, train, cfg)
    metrics = evaluate_text(model, data.val)
    at_chance = (val_at_chance(metrics["top1"], len(data.classes), metrics["examples"])
                 if metrics["top1"] is not None else None)
    if at_chance is not None:
        log.warning("NOT LEARNING WARNING: %s; %s", at_chance, TEXT_ADVICE)
        training = {**training, "not_learning": "; ".join(
            r for r in (training.get("not_learning"), at_chance) if r)}
    card = {
        "format": CARD_FORMAT, "kind": "text-classifier", "mode": cfg.mode,
        "labels": list(data.classes), "max_length": length, "pad_id": loaded.pad_id,
        "encoder": loaded.record, "load_report": loaded.load_report,
        "training": {**training, "labels_per_class": cfg.labels_per_class,
                     "train_examples": len(train), "config": asdict(cfg),
                     "seconds": time.perf_counter() - begin},
        "data": data.summary(), "metrics": metrics, "edgessl_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return TextFinetuneResult(model, card)
