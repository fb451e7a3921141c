"""Optimisers for pretraining: SGD (CNN recipes) or AdamW (ViT recipes), by name."""

from __future__ import annotations

import torch

from edgessl.registry import Registry
from edgessl.training import param_groups

OPTIMIZERS: Registry = Registry("optimizer")
OPTIMIZERS.register("sgd", lambda groups, lr: torch.optim.SGD(groups, lr=lr, momentum=0.9))
OPTIMIZERS.register("adamw", lambda groups, lr: torch.optim.AdamW(groups, lr=lr,
                                                                   betas=(0.9, 0.95)))
# Weight decay when --weight-decay is not given: SimCLR/BYOL CIFAR recipes and DINO/MAE's.
DEFAULT_WEIGHT_DECAY = {"sgd": 1e-4, "adamw": 0.05}


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): the base LR is for a batch of 256."""
    return base_lr * batch_size / 256


def build_optimizer(model: torch.nn.Module, name: str, lr: float,
                    weight_decay: float | None) -> torch.optim.Optimizer:
    """``name`` over the trainable parameters; no weight decay on norms and biases."""
    factory = OPTIMIZERS.get(name)
    wd = DEFAULT_WEIGHT_DECAY[name] if weight_decay is None else weight_decay
    return factory(param_groups(model, wd), lr)
