"""Multi-process pretraining: ``torchrun --nproc_per_node N -m edgessl pretrain ...``.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; ``Distributed.from_env`` joins the process group
(gloo on CPU, nccl on GPU). Every process reads the same seeded batches and augments the whole
global batch with the same RNG stream, then trains on its own slice: augmentation is a few
percent of a step, and this keeps the views, the RNG state and ``--resume`` identical to a
single-process run on the same global batch. Losses that compare samples gather across
processes (``edgessl.ssl.distributed.gather``), and SyncBatchNorm (``--sync-bn``) makes batch
statistics global too, so the loss equals one process's loss on the global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from edgessl.errors import ConfigError, DeviceUnavailableError


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job (world_size 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> Distributed:
        """Join the torchrun job described by the environment, if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        return cls(rank, world, local)

    def device(self, device: str) -> torch.device:
        """The device this process trains on (``cuda:LOCAL_RANK`` for GPU jobs)."""
        if device.startswith("cuda") and self.enabled:
            return torch.device("cuda", self.local_rank)
        return torch.device(device)

    def check_batch(self, batch_size: int) -> int:
        """Images per process; the global batch must split evenly."""
        if batch_size % self.world_size:
            raise ConfigError(f"--batch-size {batch_size} does not split over {self.world_size} "
                              f"processes; use a multiple of {self.world_size}")
        return batch_size // self.world_size

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global batch tensor."""
        n = x.shape[0] // self.world_size
        return x[self.rank * n:(self.rank + 1) * n]

    def wrap(self, model: torch.nn.Module, sync_bn: bool) -> torch.nn.Module:
        """DDP around ``model`` (SyncBatchNorm first when asked); the model itself otherwise."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        on_gpu = next(model.parameters()).is_cuda
        if sync_bn:
            if not on_gpu:  # DDP refuses SyncBatchNorm on CPU with a bare ValueError
                raise ConfigError("--sync-bn needs CUDA GPUs: PyTorch's SyncBatchNorm does not "
                                  "run on CPU; drop --sync-bn (each process then normalises "
                                  "over its own slice of the batch)")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [self.local_rank] if on_gpu else None
        # Methods that leave some parameters without a gradient in some steps (DINO freezes
        # its last layer at first) need DDP to look for them; it costs a graph walk per step.
        unused = bool(getattr(model, "ddp_find_unused_parameters", False))
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False,
                                       find_unused_parameters=unused)

    def mean(self, value: float) -> float:
        """``value`` averaged over processes (for logging the loss)."""
        if not self.enabled:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t) / self.world_size

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is set in any process (a stop signal reaching one of them)."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0])
        dist.all_reduce(t)
        return bool(t.item())

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def resolve_device(name: str) -> str:
    """``auto`` -> cuda when available, else cpu; a named device that is absent is an error.

    Case does not matter (``CPU``, as benchmark and predict spell OpenVINO's devices).
    """
    name = name.strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"--device {name}: no CUDA GPU is visible to PyTorch "
                                     f"(torch {torch.__version__}); use --device cpu")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"unknown --device '{name}'; choose auto, cpu, cuda or cuda:N")
    return name
