"""Collective helpers for DistributedDataParallel pretraining (identity in a single process).

``torchrun --nproc_per_node N -m edgessl pretrain ...`` starts N processes; each trains on its
slice of the global batch. Losses that compare samples with each other (contrastive negatives,
VICReg's batch statistics) call ``gather`` so every process computes the loss of the *global*
batch, exactly as one process would: ``torch.distributed.nn.all_gather`` carries gradients back
to the process that owns each slice.
"""

from __future__ import annotations

import torch


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if is_distributed() else 0


def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` [n, ...] of all processes along dim 0, in rank order, with gradients.

    In a single process this returns ``x`` itself. When every process computes the same
    global loss from gathered tensors, the backward of ``all_gather`` sums the N identical
    gradients of each slice and DDP divides by N: the two cancel, so no rescaling is needed.
    """
    if not is_distributed():
        return x
    import torch.distributed.nn.functional as dist_nn

    return torch.cat(dist_nn.all_gather(x), 0)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over processes, without gradients (for statistics such as DINO's centre)."""
    if not is_distributed():
        return x
    import torch.distributed as dist

    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()
