"""Quality signals while pretraining: online kNN accuracy and embedding-collapse detection.

kNN top-1 (Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination"): the frozen backbone embeds a labeled folder's train split (the memory bank)
and its val split; each val image takes the similarity-weighted vote of its k nearest bank
images (cosine similarity, weights exp(s / 0.07)). It needs no training, so it can run every
few epochs and tracks linear-probe accuracy closely.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

log = logging.getLogger("edgessl")

# Mean per-dimension std of L2-normalised embeddings, times sqrt(D): about 1 for embeddings
# spread over the sphere, 0 when every image maps to the same point.
COLLAPSE_THRESHOLD = 0.1


def embedding_spread(features: torch.Tensor) -> float:
    """std across the batch of the L2-normalised features, averaged over dims, times sqrt(D).

    Used by SimSiam (Chen & He 2021, Fig. 2) to show collapse: ~1 when healthy, 0 collapsed.
    """
    if features.shape[0] < 2:
        return float("nan")
    z = F.normalize(features.float().flatten(1), dim=1)
    return float(z.std(0).mean() * math.sqrt(z.shape[1]))


def warn_if_collapsed(spread: float, epoch: int, threshold: float = COLLAPSE_THRESHOLD) -> bool:
    """Log a loud warning when the spread is below ``threshold`` or not finite; returns
    whether it was.

    A spread that is NaN or infinite (features that are, or a batch of one) is a collapse:
    a metric that cannot be measured is never reported as healthy.
    """
    if not math.isfinite(spread):
        log.warning("COLLAPSE WARNING at epoch %d: the embeddings' spread is %s, not a number "
                    "(the features are not finite, or a batch held one image): the backbone "
                    "is unusable. Lower --lr, set --grad-clip or use a batch of two or more "
                    "images", epoch, spread)
        return True
    if spread >= threshold:
        return False
    log.warning("COLLAPSE WARNING at epoch %d: the embeddings' spread is %.3f (below %.2f; "
                "healthy is near 1, collapsed is 0): the backbone maps all images to nearly "
                "the same point. Lower --lr, raise the batch size or use stronger "
                "augmentations; a collapsed backbone is useless for fine-tuning",
                epoch, spread, threshold)
    return True


# A run "cannot learn" when, past LEARNING_CHECK_FROM of its epochs, the loss is within
# CHANCE_MARGIN of the chance level (contrastive methods), has fallen less than MIN_LOSS_DROP
# from its first epoch (any method), or the kNN top-1 is under KNN_CHANCE_FACTOR x chance.
# A loss that fell below LEARNED_FRACTION of its untrained level (the first step's loss, or
# the chance level) has learned, and a flat loss after that is a converged run, not a stuck one.
LEARNING_CHECK_FROM = 0.5
CHANCE_MARGIN = 0.03
MIN_LOSS_DROP = 0.02
KNN_CHANCE_FACTOR = 1.25
LEARNED_FRACTION = 0.5
NOT_LEARNING_ADVICE = (
    "the backbone is not learning: give it more steps (more --epochs or --budget; a smaller "
    "--batch-size gives more steps per epoch), check --lr, weaken the augmentations "
    "(--aug crop_scale=0.3,1), or start from pretrained weights (--backbone "
    "efficientnet_lite0.in1k)")


def not_learning(history: list[dict], epochs: int, chance_loss: float | None,
                 classes: int | None) -> str | None:
    """Why a run looks unable to learn, or None; judged once half the epochs (and at least
    two) are done.

    Args:
        history: the rows so far (``loss``, ``knn_top1`` in %), the last one the newest.
        epochs: the run's planned epochs.
        chance_loss: the method's loss when nothing is learned, or None.
        classes: classes of the kNN data, or None without kNN.
    """
    if len(history) < max(2, math.ceil(LEARNING_CHECK_FROM * epochs)):
        return None  # a run of one epoch, or too early in a longer one, is not judged
    last, first = history[-1], history[0]
    loss = last.get("loss")
    if loss is None or not math.isfinite(loss):
        return None
    if chance_loss is not None and loss >= (1 - CHANCE_MARGIN) * chance_loss:
        return (f"the loss {loss:.3f} is still at chance level ({chance_loss:.3f}) after "
                f"{last['epoch']} of {epochs} epochs")
    if _has_not_moved(loss, first, chance_loss):
        return (f"the loss has not moved ({first['loss']:.3f} at epoch 1, {loss:.3f} at epoch "
                f"{last['epoch']} of {epochs})")
    knn = last.get("knn_top1")
    if knn is not None and classes and knn <= KNN_CHANCE_FACTOR * 100 / classes:
        return (f"the kNN top-1 {knn:.1f}% is at chance ({100 / classes:.1f}% for {classes} "
                f"classes) after {last['epoch']} of {epochs} epochs")
    return None


def _has_not_moved(loss: float, first: dict, chance_loss: float | None) -> bool:
    """Whether ``loss`` has fallen less than MIN_LOSS_DROP from the first epoch's mean, in a
    run that had not already learned: a first epoch that ended far below the first step's
    loss, or a loss far below chance, had something to learn and learned it."""
    if loss <= (1 - MIN_LOSS_DROP) * first["loss"]:
        return False
    start = first.get("first_step_loss")
    if start is not None and math.isfinite(start) and first["loss"] < LEARNED_FRACTION * start:
        return False
    return chance_loss is None or loss > LEARNED_FRACTION * chance_loss


def warn_if_not_learning(history: list[dict], epochs: int, chance_loss: float | None,
                         classes: int | None, warned: bool) -> bool:
    """Log ``NOT LEARNING WARNING`` (once a run) when ``not_learning`` finds a reason;
    returns whether the newest epoch looks unable to learn."""
    reason = not_learning(history, epochs, chance_loss, classes)
    if reason is not None and not warned:
        log.warning("NOT LEARNING WARNING: %s; %s", reason, NOT_LEARNING_ADVICE)
    return reason is not None


@dataclass(frozen=True)
class KnnData:
    """A labeled folder loaded once: bank (train) and query (val) images as uint8 tensors."""

    bank: torch.Tensor
    bank_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor
    classes: tuple[str, ...]

    @staticmethod
    def check(root) -> None:
        """Refuse an ``--eval-data`` folder that is no labeled set, from its listing alone.

        Raises:
            DataError: what ``load`` would refuse for the layout, naming the flag.
        """
        from edgessl.data.labeled import check_labeled_layout
        from edgessl.errors import DataError

        try:
            check_labeled_layout(root)
        except DataError as exc:
            raise DataError(f"--eval-data: {exc}") from None

    @classmethod
    def load(cls, root, image_size: int, seed: int = 0) -> KnnData:
        """``root`` as ``edgessl finetune`` reads it: train/ + val/ (or test/), or one folder."""
        from edgessl.data.labeled import load_labeled
        from edgessl.data.tensors import load_uint8
        from edgessl.errors import DataError

        try:
            data = load_labeled(root, seed=seed)
        except DataError as exc:  # name the flag: DATA is another folder
            raise DataError(f"--eval-data: {exc}") from None
        if not data.train or not data.val:
            raise DataError(f"--eval-data '{root}' needs labeled images in both a train and a "
                            "val split; pass a folder of class subfolders or train/ + val/")

        def stack(samples):
            return (torch.stack([load_uint8(p, image_size) for p, _ in samples]),
                    torch.tensor([y for _, y in samples]))

        bank, bank_labels = stack(data.train)
        query, query_labels = stack(data.val)
        return cls(bank, bank_labels, query, query_labels, tuple(data.classes))


@torch.no_grad()
def embed(backbone, images: torch.Tensor, mean, std, device, batch_size: int = 256):
    """L2-normalised backbone features of uint8 images [N, 3, S, S] (eval mode, no augment)."""
    was_training = backbone.training
    backbone.eval()
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device).float() / 255
        out.append(F.normalize(backbone((x - m) / s).float(), dim=1).cpu())
    backbone.train(was_training)
    return torch.cat(out)


def knn_top1(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor,
             query_labels: torch.Tensor, k: int = 20, temperature: float = 0.07) -> float:
    """Weighted kNN top-1 accuracy (%) of normalised ``query`` features against the bank."""
    k = min(k, len(bank))
    classes = int(max(bank_labels.max(), query_labels.max())) + 1
    correct = 0
    for i in range(0, len(query), 1024):
        sims, idx = (query[i:i + 1024] @ bank.t()).topk(k, dim=1)
        votes = torch.zeros(len(idx), classes)
        votes.scatter_add_(1, bank_labels[idx], (sims / temperature).exp())
        correct += int((votes.argmax(1) == query_labels[i:i + 1024]).sum())
    return 100.0 * correct / len(query)


def knn_accuracy(backbone, data: KnnData, mean, std, device, k: int = 20) -> float:
    """kNN top-1 (%) of ``backbone`` on ``data``'s val split with its train split as bank."""
    bank = embed(backbone, data.bank, mean, std, device)
    query = embed(backbone, data.query, mean, std, device)
    return knn_top1(bank, data.bank_labels, query, data.query_labels, k)
