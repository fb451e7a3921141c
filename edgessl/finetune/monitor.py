"""Is a fine-tune learning? The loss against chance while it runs, val top-1 at the end.

A classifier that has learned nothing predicts every class equally often, so its
cross-entropy is log(C) for C classes seen in training. Judged once half the epochs (and at
least two) are done, as pretraining is (``edgessl.ssl.monitor``): a loss within 3% of log(C),
or one above half of log(C) that has fallen by less than 2% since the first epoch, cannot
learn (a loss already near 0 after the first epoch has nothing left to fall). At the end, a val
top-1 within a tenth of 1/C, on at least 5 val images a class, says the model is no better
than a guess.
"""

from __future__ import annotations

import logging
import math

from edgessl.ssl.monitor import CHANCE_MARGIN, LEARNING_CHECK_FROM, MIN_LOSS_DROP

log = logging.getLogger("edgessl")

VAL_CHANCE_FACTOR = 1.1  # a val top-1 within a tenth of 1/C is at chance
MIN_VAL_PER_CLASS = 5  # fewer val images a class cannot tell chance from a weak model

FULL_ADVICE = ("check --lr (a loss stuck at chance: too low; one that jumps: too high), give it "
               "more --epochs, or start from a pretrained --backbone (without --backbone, "
               "finetune takes the best pretrained start installed)")
PROBE_ADVICE = ("the frozen backbone's features do not tell your classes apart: use another "
                "--backbone (a pretrained start, or SSL pretraining on your images), or check "
                "that the class folders hold what their names say")


def chance_loss(classes: int) -> float:
    """Cross-entropy of a classifier that gives each of ``classes`` classes 1/classes."""
    return math.log(classes)


def full_not_learning(history: list[dict], epochs: int, classes: int) -> str | None:
    """Why the epoch losses so far look unable to learn, or None (see the module doc)."""
    if classes < 2 or len(history) < max(2, math.ceil(LEARNING_CHECK_FROM * epochs)):
        return None
    first, last = history[0]["loss"], history[-1]["loss"]
    chance = chance_loss(classes)
    if not math.isfinite(last):
        return None  # a diverged run is refused after training, with what to change
    if last >= (1 - CHANCE_MARGIN) * chance:
        return (f"the training loss {last:.3f} is still at chance level ({chance:.3f} for "
                f"{classes} classes) after {history[-1]['epoch']} of {epochs} epochs")
    if last > 0.5 * chance and last > (1 - MIN_LOSS_DROP) * first:
        return (f"the training loss has not moved ({first:.3f} at epoch 1, {last:.3f} at "
                f"epoch {history[-1]['epoch']} of {epochs})")
    return None


def warn_if_full_not_learning(history: list[dict], epochs: int, classes: int,
                              warned: bool) -> str | None:
    """Why the full fine-tune's epoch losses (``history``: rows with ``epoch`` and ``loss``)
    look unable to learn, or None; the first time (``warned`` False) it is also logged as a
    ``NOT LEARNING WARNING`` with what to change."""
    reason = full_not_learning(history, epochs, classes)
    if reason is not None and not warned:
        log.warning("NOT LEARNING WARNING: the classifier is not learning: %s; %s", reason,
                    FULL_ADVICE)
    return reason


def probe_not_learning(train_loss: float, classes: int) -> str | None:
    """Why a solved linear probe learned nothing (its training loss at chance), or None."""
    if classes < 2 or not math.isfinite(train_loss):
        return None
    chance = chance_loss(classes)
    if train_loss >= (1 - CHANCE_MARGIN) * chance:
        return (f"the linear probe's training loss {train_loss:.3f} is at chance level "
                f"({chance:.3f} for {classes} classes)")
    return None


def val_at_chance(top1: float, classes: int, samples: int) -> str | None:
    """Why a val top-1 (a fraction, on ``samples`` images) is no better than a guess among
    ``classes``, or None: within a tenth of 1/C, on at least 5 val images a class (fewer
    say too little to call it)."""
    if classes < 2 or samples < MIN_VAL_PER_CLASS * classes or top1 > VAL_CHANCE_FACTOR / classes:
        return None
    return (f"val top-1 {100 * top1:.1f}% is at chance level ({100 / classes:.1f}% for "
            f"{classes} classes)")
