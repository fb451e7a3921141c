"""The interface every runtime implements: load an artifact, run batches, say what ran."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgessl.artifact import ArtifactMeta


@dataclass(frozen=True)
class ExecutionInfo:
    """Who actually executed the model (never assumed from what was asked for).

    Attributes:
        runtime: "pytorch", "onnxruntime" or "openvino".
        device: the device that ran, as the runtime reports it ("CPU", "cpu").
        provider: provider/plugin detail ("CPUExecutionProvider", "OpenVINO CPU: <name>").
        version: the runtime's version.
    """

    runtime: str
    device: str
    provider: str
    version: str


class LoadedModel(Protocol):
    """A model ready to run: float32 [N, 3, H, W] normalised inputs -> float32 [N, C] outputs."""

    path: Path
    meta: ArtifactMeta
    execution: ExecutionInfo
    load_seconds: float

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def compile_for_throughput(self, hint: str = "THROUGHPUT", streams: int = 0
                               ) -> tuple | None:
        """Prepare for asynchronous throughput: (a compiled model for an async request queue,
        its settings), or None when the backend runs concurrent batches from threads instead
        (ONNX Runtime, PyTorch and ExecuTorch release the GIL while computing)."""
        ...


class ThreadedThroughput:
    """For backends whose ``run`` releases the GIL (ONNX Runtime, PyTorch, ExecuTorch): they
    have nothing to prepare for throughput; concurrent batches run from threads."""

    def compile_for_throughput(self, hint: str = "THROUGHPUT", streams: int = 0) -> None:
        return None
