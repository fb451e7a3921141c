"""Will a training batch fit in memory? Measured on the meta device before the first step.

A flag inside its documented range can still ask for more memory than the machine has
(``--image-size 4096`` with a batch of 64 is tens of GiB of activations): the kernel then kills
the process with no message, and can take other jobs with it. ``check_training_memory`` runs
one forward pass of the real batch shape on PyTorch's meta device (shapes only, no memory, no
arithmetic), adds up what every layer outputs (what backward keeps), and refuses a batch that
cannot fit in the memory the device has free.
"""

from __future__ import annotations

import copy
import logging
import os

import torch

from edgessl.errors import ConfigError

log = logging.getLogger("edgessl")

# Backward keeps the layers' outputs; in-place activations share theirs, and gradients are
# freed as backward goes. The kept outputs once, plus the largest output once more (a
# gradient in flight), came to 1.05 to 1.26 times the real growth of one training step
# (``benchmarks/memory_estimate.py``: EfficientNet-Lite0 and resnet_tiny, every layer
# training), so that sum is the estimate.
BACKWARD_FACTOR = 1.0
# Share of the free memory a batch may be estimated to need before it is refused. The
# estimate runs up to a quarter high, so only a batch that clearly cannot fit is refused,
# never a tight one (which may still fit, or may be killed: no estimate is exact).
USABLE_SHARE = 1.0
GIB = 1 << 30


def activation_bytes(model: torch.nn.Module,
                     shape: tuple[int, ...]) -> tuple[int, int] | None:
    """Bytes of the leaf modules' outputs for one forward pass of an input of ``shape``:
    (the sum of those backward needs, the largest of all).

    Backward needs the outputs that require a gradient: those of trainable layers and of
    every layer after one. The layers of a frozen start (``--freeze``) before the first
    trainable one keep nothing, only their largest output is alive at a time.

    Returns None when the model cannot run on the meta device (an op that needs values).
    """
    total = largest = 0

    def add(_module, _inputs, output) -> None:
        nonlocal total, largest
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                size = t.numel() * t.element_size()
                largest = max(largest, size)
                total += size if t.requires_grad else 0

    try:
        meta = copy.deepcopy(model).to("meta")
        hooks = [m.register_forward_hook(add) for m in meta.modules()
                 if not any(True for _ in m.children())]
        try:
            meta(torch.empty(shape, device="meta"))
        finally:
            for hook in hooks:
                hook.remove()
    except Exception as exc:  # noqa: BLE001 - an estimate that cannot be made is skipped
        log.debug("no memory estimate for %s: %s", type(model).__name__, exc)
        return None
    return total, largest


def free_bytes(device: str | torch.device = "cpu") -> int | None:
    """Memory free for a new allocation on ``device``, or None where it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") + _reclaimable()
    except (ValueError, OSError, AttributeError):  # not on this platform
        return None


def _reclaimable() -> int:
    """The page cache Linux would give back (``MemAvailable - MemFree``), else 0."""
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return max(0, info["MemAvailable"] - info["MemFree"])
    except (OSError, KeyError, ValueError, IndexError):
        return 0


def check_training_memory(model: torch.nn.Module, batch: int, image_size: int,
                          device: str | torch.device = "cpu", views: int = 1,
                          training: bool = True) -> None:
    """Refuse a batch whose activations alone would not fit in free memory.

    Args:
        model: the module run (its forward takes [N, 3, S, S]).
        batch: images a step; ``views`` of each go through the model (2 for SimCLR).
        image_size: side S in pixels.
        device: where it runs.
        training: a training step (every layer's output is kept for backward), or a pass
            without gradients (frozen features: about the largest layer's input and output).

    Raises:
        ConfigError: naming the estimate, the free memory and the flags to lower.
    """
    sizes = activation_bytes(model, (batch * views, 3, image_size, image_size))
    free = free_bytes(device)
    if sizes is None or free is None:
        return
    total, largest = sizes
    need = int(total * BACKWARD_FACTOR) + largest if training else 3 * largest
    if need > USABLE_SHARE * free:
        step = "a training step" if training else "a batch of features"
        raise ConfigError(
            f"{step} at {image_size} px with a batch of {batch}"
            f"{f' ({views} views each)' if views > 1 else ''} needs about {need / GIB:.1f} GiB "
            f"for activations alone, and {torch.device(device).type} has {free / GIB:.1f} GiB "
            "free: lower --image-size or --batch-size")
