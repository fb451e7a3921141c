"""Shared training utilities: seeding, optimiser groups, cosine schedule, progress bars."""

from __future__ import annotations

import math
import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a generator for data loaders."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights of convs and linears only, not on norms and biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def cosine_with_warmup(optimizer, total_steps: int, warmup_steps: int):
    """LambdaLR: linear warm-up to the base LR, then cosine decay to 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def progress_bar(total: int, desc: str):
    """A tqdm bar on stderr (disabled when stderr is not a terminal and EDGESSL_PROGRESS=0)."""
    import os

    from tqdm.auto import tqdm

    disable = os.environ.get("EDGESSL_PROGRESS", "1") == "0"
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, leave=False,
                disable=disable)
