"""Shared training utilities: seeding, optimiser groups, cosine schedule, progress bars."""

from __future__ import annotations

import math
import random

import numpy as np
import torch

# The training loops' signal handling is the one every command runs under (edgessl.interrupt):
# deferred here, so that a stop saves a checkpoint first.
from edgessl.interrupt import GracefulStop

__all__ = ["GracefulStop", "cosine_with_warmup", "param_groups", "progress_bar", "rng_state",
           "seed_everything", "set_rng_state"]


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


def progress_bar(total: int, desc: str, disable: bool = False):
    """A tqdm bar on stderr (disabled when stderr is not a terminal and EDGESSL_PROGRESS=0)."""
    import os

    from tqdm.auto import tqdm

    disable = disable or os.environ.get("EDGESSL_PROGRESS", "1") == "0"
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, leave=False,
                disable=disable)


def rng_state() -> dict:
    """Python, numpy and torch RNG states, in a form ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` captured."""
    random.setstate(tuple(state["python"][:1]) + (tuple(state["python"][1]),)
                    + tuple(state["python"][2:]))
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
