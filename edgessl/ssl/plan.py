"""How a pretraining run is laid out on small data and short budgets.

Recipes published for ImageNet assume hundreds of steps per epoch. On a few thousand images a
batch of 256 gives a handful of steps an epoch, a two-epoch warm-up can eat a third of a short
run, and a linear LR scaled from a batch the data cannot fill is wrong. The rules here:

- ``choose_batch``: the default batch (256) halves until an epoch has at least
  ``MIN_STEPS_PER_EPOCH`` steps, never below ``MIN_AUTO_BATCH`` (contrastive losses need
  negatives); a batch the user gives is kept.
- ``warmup_steps``: warm-up in steps, at most ``MAX_WARMUP_FRACTION`` of the run.
- the LR follows the batch actually used (``scaled_lr`` in the caller).
- ``parse_budget`` and ``epochs_for_budget``: ``--budget 20m`` picks the epochs that fit, from
  a measured step time.
- continued SSL from pretrained weights (domain-adaptive pretraining): a much lower LR
  (``CONTINUE_LR_FACTOR`` of the method's), the earliest layers frozen (``CONTINUE_FREEZE``
  of the backbone's tensors, in order), and every norm layer's running statistics held at
  the pretrained ones (``hold_norm_statistics``), so a few epochs on a small set adapt the
  later layers without washing out the general early features. Measured on cifar10-subset
  (EfficientNet-Lite0, 96 px, 2,000 unlabeled images, SimCLR; linear probe at 10 labels per
  class, ``benchmarks/results/continued_ssl.md``): the previous defaults (freeze 0.25, a
  tenth of the LR) took the frozen start's 55.0% to 42.6% in 2 epochs; freeze 0.75 gives
  57.8% (2 epochs) and 57.3% (5), and so does a 6x lower LR. Re-estimating the statistics
  on the target images alone (AdaBN) took the frozen start to 35.8%, hence the held
  statistics.
"""

from __future__ import annotations

import logging
import math
import re

import torch

from edgessl.errors import ConfigError

log = logging.getLogger("edgessl")

DEFAULT_BATCH = 256
MIN_AUTO_BATCH = 32
MIN_STEPS_PER_EPOCH = 16
MAX_WARMUP_FRACTION = 0.2
# Continued pretraining moves pretrained weights a little. A tenth of SimCLR's LR gained at
# batch 64 (lr 0.0125) but lost 2.3 points at batch 256 (lr 0.05, cifar10-subset, 128 px);
# lr 0.002 at batch 64 gained as much as 0.0125 (benchmarks/results/continued_ssl.md).
CONTINUE_LR_FACTOR = 0.02
CONTINUE_FREEZE = 0.75
# A budget is met with this share of it for training; the rest covers evaluation and saving.
BUDGET_TRAINING_SHARE = 0.85


def choose_batch(requested: int | None, images: int, processes: int = 1) -> int:
    """The batch to train with: ``requested`` as given, else the default made small enough
    for ``MIN_STEPS_PER_EPOCH`` steps an epoch (a multiple of ``processes``)."""
    if requested is not None:
        return requested
    batch = DEFAULT_BATCH
    while batch > MIN_AUTO_BATCH and images // batch < MIN_STEPS_PER_EPOCH:
        batch //= 2
    return max(processes, batch - batch % processes)


def warmup_steps(warmup_epochs: int, steps_per_epoch: int, total: int) -> int:
    """Warm-up in steps: ``warmup_epochs`` epochs, at most ``MAX_WARMUP_FRACTION`` of the run."""
    return min(warmup_epochs * steps_per_epoch, int(MAX_WARMUP_FRACTION * total))


_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(text: str | None) -> float | None:
    """Seconds from "90s", "20m", "1.5h" or "1h30m" (None stays None).

    Raises:
        ConfigError: anything else, or a budget under 10 seconds or over a week.
    """
    if text is None:
        return None
    parts = re.fullmatch(r"\s*((?:\d+(?:\.\d+)?\s*[smh]\s*)+)", str(text).lower())
    if not parts:
        raise ConfigError(f"--budget '{text}' is not a duration; write e.g. 90s, 20m, 1.5h or "
                          "1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*([smh])",
                                                                parts.group(1)))
    if not 10 <= seconds <= 7 * 24 * 3600:
        raise ConfigError(f"--budget '{text}' must be between 10s and 168h")
    return seconds


def epochs_for_budget(budget_s: float, step_s: float, steps_per_epoch: int,
                      max_epochs: int) -> int:
    """The most epochs of ``steps_per_epoch`` steps of ``step_s`` seconds that fit the budget
    (at least 1, at most ``max_epochs``)."""
    epoch_s = max(step_s * steps_per_epoch, 1e-6)
    return max(1, min(max_epochs, math.floor(BUDGET_TRAINING_SHARE * budget_s / epoch_s)))


def freeze_early(backbone: torch.nn.Module, fraction: float) -> int:
    """Freeze the first ``fraction`` of ``backbone``'s parameter tensors (in definition order,
    which is input-to-output for timm and torchvision models), and the running statistics of
    the norm layers among them. Returns the number of tensors frozen."""
    if fraction <= 0:
        return 0
    params = list(backbone.named_parameters())
    count = int(len(params) * fraction)
    frozen = {name for name, _ in params[:count]}
    for _, p in params[:count]:
        p.requires_grad_(False)
    for name, module in backbone.named_modules():
        own = {f"{name}.{p}" if name else p for p, _ in module.named_parameters(recurse=False)}
        if own and own <= frozen and isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.0  # its statistics stay the pretrained ones
    return count


def _hold(module: torch.nn.Module, args) -> None:
    module.training = False  # use (and keep) the running statistics, whatever .train() said


def hold_norm_statistics(backbone: torch.nn.Module) -> int:
    """Make every batch-norm layer of ``backbone`` normalise with its running (pretrained)
    statistics and never update them, also in training mode: the affine weights still train
    unless frozen. Survives ``.train()`` and ``copy.deepcopy`` (EMA teachers), and leaves the
    state dict unchanged. Returns the number of layers held."""
    held = 0
    for module in backbone.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_hold)
            module.training = False
            held += 1
    return held


def time_steps(step, steps: int = 3) -> float:
    """Seconds per call of ``step()``: one untimed call, then the mean of ``steps`` calls."""
    import time

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps
