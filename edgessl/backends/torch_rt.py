"""The PyTorch runtime: runs an edgessl checkpoint folder (``card.json`` + ``model.safetensors``).

It is the reference the exported artifacts are compared with, so it runs the checkpoint
exactly as trained: fp32, eval mode, no compilation.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgessl.artifact import ArtifactMeta
from edgessl.backends.base import ExecutionInfo, ThreadedThroughput
from edgessl.checkpoint import CARD_FILE, ModelCard
from edgessl.errors import ConfigError, DeviceUnavailableError, unknown_choice
from edgessl.runtime_specs import RUNTIME_SPECS

DEVICES = RUNTIME_SPECS.get("pytorch").devices


def accepts(path: Path) -> bool:
    """True when ``path`` is a checkpoint folder (it holds ``card.json``)."""
    path = Path(path)
    return path.is_dir() and (path / CARD_FILE).is_file()


def meta_from_card(card: ModelCard) -> ArtifactMeta:
    """The ArtifactMeta a checkpoint would carry once exported.

    A backbone checkpoint has no labels: its task is "embed" and it outputs [N, D] embeddings.
    ``extra`` keeps the card's data info (val_fraction, seed) so evaluation uses the same split.
    """
    return ArtifactMeta(
        labels=tuple(card.labels),
        image_size=card.image_size,
        mean=tuple(card.mean),
        std=tuple(card.std),
        task="classify" if card.kind == "classifier" else "embed",
        format="pytorch",
        precision="fp32",
        edgessl_version=card.edgessl_version,
        extra={"kind": card.kind, "backbone": card.backbone.get("name"),
               "method": card.method, "data": dict(card.data)},
    )


def _resolve_device(device: str):
    """Map the user's device name to a torch.device and the ExecutionInfo fields.

    Raises:
        ConfigError: for a device name PyTorch runtime does not know.
        DeviceUnavailableError: for CUDA on a host without a usable CUDA GPU.
    """
    import torch

    wanted = device.strip().upper()
    if wanted == "CPU":
        return torch.device("cpu"), "cpu", f"torch CPU ({torch.get_num_threads()} threads)"
    if wanted in ("CUDA", "GPU") or wanted.startswith(("CUDA:", "GPU:")):
        number = wanted.split(":", 1)[1].strip() if ":" in wanted else "0"
        if not number.isdigit() or not number.isascii():  # "cuda:x", "cuda:", "cuda:-1"
            raise ConfigError(f"device '{device}' names no GPU: write CUDA, or CUDA:<n> with "
                              "n = 0, 1, ... (the GPU's index)")
        index = int(number)
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device '{device}' was asked for, but PyTorch sees no CUDA GPU on this host "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
                "use --device CPU or run on a machine with a CUDA GPU"
            )
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device '{device}' does not exist; this host has {torch.cuda.device_count()} "
                "CUDA GPU(s), numbered from 0"
            )
        name = torch.cuda.get_device_name(index)
        return torch.device("cuda", index), f"cuda:{index}", f"torch CUDA: {name}"
    raise unknown_choice("PyTorch device", device, DEVICES)


class TorchModel(ThreadedThroughput):
    """A checkpoint loaded in PyTorch: float32 [N, 3, S, S] -> logits [N, C] or embeddings [N, D].

    Attributes:
        path: the checkpoint folder.
        meta: labels, input size and normalisation from the card.
        execution: what runs the model (runtime "pytorch", device "cpu" or "cuda:<i>").
        load_seconds: time to read the weights and move them to the device, in s.
    """

    def __init__(self, path: Path, module, torch_device, meta: ArtifactMeta,
                 execution: ExecutionInfo, load_seconds: float) -> None:
        self.path = path
        self.meta = meta
        self.execution = execution
        self.load_seconds = load_seconds
        self.module = module
        self._device = torch_device

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one float32 batch [N, 3, S, S]; returns float32 numpy [N, C] (or [N, D])."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._device)
        with torch.inference_mode():
            out = self.module(x)
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        return out.float().cpu().numpy()


def load(path: Path, device: str = "CPU") -> TorchModel:
    """Load the checkpoint folder ``path`` on ``device`` ("CPU" or "CUDA"/"CUDA:<i>").

    Raises:
        CheckpointError: if ``path`` is not a readable edgessl checkpoint.
        DeviceUnavailableError: if CUDA is asked for and this host has none.
    """
    import torch

    from edgessl.models import load_model

    path = Path(path)
    torch_device, device_name, provider = _resolve_device(device)
    start = time.perf_counter()
    module, card = load_model(path)
    module = module.to(torch_device)
    load_seconds = time.perf_counter() - start
    execution = ExecutionInfo(runtime="pytorch", device=device_name, provider=provider,
                              version=torch.__version__)
    return TorchModel(path, module, torch_device, meta_from_card(card), execution, load_seconds)
