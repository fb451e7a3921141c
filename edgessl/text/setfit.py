"""SetFit-style contrastive fine-tuning of a sentence encoder on a few labeled sentences.

Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts" (SetFit): from K
labeled sentences per class, draw pairs of the same class (target similarity 1) and of two
classes (target 0), fine-tune the encoder so that the cosine similarity of each pair's
pooled embeddings meets its target (mean squared error, sentence-transformers'
``CosineSimilarityLoss``), then fit a logistic-regression head on the new embeddings
(``edgessl.text.finetune.fit_probe``, composed in the ``setfit`` mode there).

Pairs follow SetFit's sampling: each of ``pair_iterations`` rounds gives every sentence one
positive and one negative partner, 2 x rounds x N pairs in all (SetFit's default is 20
rounds). On 2 CPU cores that is far too many for MiniLM (3,200 pairs for 80 sentences, about
10 minutes), so training is capped by ``pairs`` (default 256, a seeded shuffle of them all)
and by ``max_seconds`` / ``max_steps``, and only the top ``top_layers`` transformer layers
(default 2 of MiniLM's 6) are trained: the embeddings and lower layers stay frozen, which
ends the backward pass at the top layers and keeps the general-purpose features that a few
hundred pairs could otherwise pull apart. The result says which cap bit (``capped_by``).
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F

from edgessl.errors import ConfigError

if TYPE_CHECKING:
    from edgessl.text.model import TextClassifier

log = logging.getLogger("edgessl")


class SetFitSettings(Protocol):
    """What SetFit reads of its config (``edgessl.text.finetune.TextFinetuneConfig`` has it
    all; this module does not import that one, which imports this)."""

    pairs: int
    pair_iterations: int
    top_layers: int
    pair_lr: float
    batch_size: int
    weight_decay: float
    seed: int
    max_steps: int | None
    max_seconds: float | None

Pair = tuple[int, int, float]  # (index, index, target cosine similarity)
LAYER_LISTS = ("encoder.layer", "h", "layers")  # BERT/RoBERTa, GPT-2, others


def sample_pairs(labels: list[int], iterations: int, seed: int) -> list[Pair]:
    """SetFit's pairs: per round, each sentence with one same-class and one other-class
    partner; all rounds shuffled together (seeded)."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    pairs: list[Pair] = []
    for _ in range(iterations):
        for i, y in enumerate(labels):
            same = [j for j in by_class[y] if j != i] or [i]
            other = [j for c, idx in by_class.items() if c != y for j in idx]
            pairs.append((i, rng.choice(same), 1.0))
            if other:
                pairs.append((i, rng.choice(other), 0.0))
    rng.shuffle(pairs)
    return pairs


def transformer_layers(base: torch.nn.Module) -> torch.nn.ModuleList:
    """The base model's stack of transformer layers (``encoder.layer`` for BERT, ``h`` for
    GPT-2).

    Raises:
        ConfigError: no such stack is found.
    """
    for path in LAYER_LISTS:
        found = base
        for part in path.split("."):
            found = getattr(found, part, None)
        if isinstance(found, torch.nn.ModuleList):
            return found
    raise ConfigError(f"cannot find the transformer layers of a {type(base).__name__}; pass "
                      "top_layers=0 to train all of it")


def train_top_layers(encoder: torch.nn.Module, top_layers: int) -> int:
    """Freeze the embeddings and all but the top ``top_layers`` layers (0 = train all);
    returns the trainable tensors."""
    base = encoder.model
    for p in base.parameters():
        p.requires_grad_(True)
    if top_layers:
        layers = transformer_layers(base)
        frozen = [base.get_input_embeddings(), *layers[:max(0, len(layers) - top_layers)]]
        for extra in ("embeddings", "wpe"):  # position embeddings, LayerNorm of BERT's input
            if isinstance(getattr(base, extra, None), torch.nn.Module):
                frozen.append(getattr(base, extra))
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)
    return sum(p.requires_grad for p in base.parameters())


def pair_loss(model: TextClassifier, texts: list[str], pairs: list[Pair]) -> torch.Tensor:
    """Mean squared error between cos(u, v) and each pair's target; each distinct sentence of
    the batch is encoded once."""
    used = sorted({i for a, b, _ in pairs for i in (a, b)})
    where = {i: n for n, i in enumerate(used)}
    emb = model.encoder(*model.tokenize([texts[i] for i in used]))
    u = emb[torch.tensor([where[a] for a, _, _ in pairs])]
    v = emb[torch.tensor([where[b] for _, b, _ in pairs])]
    target = torch.tensor([t for _, _, t in pairs], dtype=emb.dtype)
    return F.mse_loss(F.cosine_similarity(u, v), target)


def _cap(cfg: SetFitSettings, steps: int, begin: float) -> str | None:
    if cfg.max_steps is not None and steps >= cfg.max_steps:
        return "max_steps"
    if cfg.max_seconds is not None and time.perf_counter() - begin > cfg.max_seconds:
        return "max_seconds"
    return None


def contrastive_tune(model: TextClassifier, samples: list, cfg: SetFitSettings) -> dict:
    """Fine-tune ``model.encoder`` on SetFit pairs of ``samples`` (see the module docstring).

    Returns:
        What the card records: pairs drawn by SetFit's sampling, pairs trained, steps,
        ``capped_by`` ("pairs", "max_steps", "max_seconds" or None), trainable tensors,
        seconds and the final loss.
    """
    from edgessl.training import cosine_with_warmup, param_groups, seed_everything

    texts, labels = [t for t, _ in samples], [y for _, y in samples]
    drawn = sample_pairs(labels, cfg.pair_iterations, cfg.seed)
    pairs = drawn[:cfg.pairs]
    seed_everything(cfg.seed)
    trainable = train_top_layers(model.encoder, cfg.top_layers)
    batch = min(cfg.batch_size, len(pairs))
    planned = math.ceil(len(pairs) / batch)
    opt = torch.optim.AdamW(
        [{**g, "lr": cfg.pair_lr} for g in param_groups(model.encoder, cfg.weight_decay)])
    sched = cosine_with_warmup(opt, planned, max(1, planned // 10))
    begin, steps, capped_by, loss = time.perf_counter(), 0, None, float("nan")
    model.train()
    try:
        for start in range(0, len(pairs), batch):
            out = pair_loss(model, texts, pairs[start:start + batch])
            opt.zero_grad(set_to_none=True)
            out.backward()
            opt.step()
            sched.step()
            steps, loss = steps + 1, float(out.item())
            capped_by = _cap(cfg, steps, begin)
            if capped_by:
                break
    finally:
        model.eval()
        train_top_layers(model.encoder, 0)  # everything trainable again, as it came
    seconds = time.perf_counter() - begin
    trained = min(len(pairs), steps * batch)
    if capped_by is None and len(pairs) < len(drawn):
        capped_by = "pairs"
    if capped_by:
        log.warning("SetFit trained %d of the %d pairs that %d rounds draw (capped by %s; "
                    "top %s layers trained, %.0f s)", trained, len(drawn), cfg.pair_iterations,
                    capped_by, cfg.top_layers or "all", seconds)
    return {"pairs_drawn": len(drawn), "pairs_trained": trained, "pair_steps": steps,
            "capped_by": capped_by, "top_layers": cfg.top_layers,
            "trainable_tensors": trainable, "pair_seconds": seconds, "pair_loss": loss}
