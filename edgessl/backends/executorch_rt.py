"""The ExecuTorch runtime: runs a ``.pte`` program exported by ``edgessl export --format
executorch``, through the ``executorch`` wheel's Python runtime.

The metadata travels beside the program as ``<stem>.json``. What ran: ExecuTorch on the CPU,
with the XNNPACK backend for the subgraphs the export lowered to it (the rest on portable
kernels; the export's report lists them). The backend must be registered in this runtime build,
or loading fails instead of running something else.

The Python runtime links libtorch (the wheel's extension imports torch), so unlike ONNX Runtime
and OpenVINO it does not run without PyTorch: on a phone the same ``.pte`` runs in ExecuTorch's
C++ runtime (Android AAR, iOS framework), which needs no Python.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgessl.artifact import ArtifactMeta
from edgessl.backends.base import ExecutionInfo, ThreadedThroughput
from edgessl.errors import CheckpointError, DeviceUnavailableError
from edgessl.runtime_specs import RUNTIME_SPECS

INSTALL_HINT = "pip install 'edgessl[executorch]' (or pip install executorch)"
DEVICES = RUNTIME_SPECS.get("executorch").devices


def accepts(path: Path) -> bool:
    """True when ``path`` is a ``.pte`` file."""
    path = Path(path)
    return path.suffix.lower() == ".pte" and path.is_file()


def _runtime():
    try:
        from executorch.runtime import Runtime
    except ImportError as exc:
        raise DeviceUnavailableError(f"running a .pte needs the executorch package, which is "
                                     f"not installed ({exc}): {INSTALL_HINT}") from None
    return Runtime.get()


def _read_meta(path: Path) -> ArtifactMeta:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise CheckpointError(f"'{path}' has no edgessl metadata file '{sidecar.name}' beside "
                              "it; keep the two together (export with edgessl export)")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read '{sidecar}' ({exc}); re-export the model") from None
    return ArtifactMeta.from_json(text, str(sidecar))


def executorch_version() -> str:
    """The installed executorch's version ("" when it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        return ""


class ExecuTorchModel(ThreadedThroughput):
    """A ``.pte`` program loaded in ExecuTorch: float32 [N, 3, S, S] -> float32 [N, C].

    Attributes:
        path: the ``.pte`` file.
        meta: the edgessl metadata from ``<stem>.json``.
        execution: ExecuTorch on the CPU, with the backend the program was lowered to.
        load_seconds: time to load the program and its ``forward`` method, in s.
    """

    def __init__(self, path: Path, method, meta: ArtifactMeta, execution: ExecutionInfo,
                 load_seconds: float) -> None:
        self.path = path
        self.meta = meta
        self.execution = execution
        self.load_seconds = load_seconds
        self._method = method
        self.settings: dict = {"backend": execution.provider,
                               "threads": "XNNPACK default (all cores)"}

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch (the exported batch size; see ``meta.fixed_batch``)."""
        import torch

        x = self.meta.check_batch(batch, self.path)
        out = self._method.execute([torch.from_numpy(x)])[0]
        return np.asarray(out.detach().numpy(), dtype=np.float32)


def load(path: Path, device: str = "CPU", profile=None, batch: int | None = None
         ) -> ExecuTorchModel:
    """Load the ``.pte`` program ``path`` on the CPU.

    Args:
        path: a ``.pte`` written by ``edgessl export --format executorch``, with its ``.json``.
        device: "CPU" (ExecuTorch's XNNPACK backend runs on the CPU); ignored with a profile.
        profile: a DeviceProfile; its device must be CPU.
        batch: unused: a program has the batch size it was exported for.

    Raises:
        DeviceUnavailableError: executorch is not installed, the device is not CPU, or the
            program's backend is not in this runtime build.
        CheckpointError: no metadata beside the program, or a file ExecuTorch cannot load.
    """
    path = Path(path)
    wanted = (profile.device if profile is not None else device).upper().split(":")[0]
    if wanted not in DEVICES:
        raise DeviceUnavailableError(f"ExecuTorch runs .pte programs on the CPU here (XNNPACK), "
                                     f"not on '{wanted}'; use --device CPU")
    meta = _read_meta(path)
    runtime = _runtime()
    backend = str((meta.extra or {}).get("backend") or "")
    registered = list(getattr(runtime.backend_registry, "registered_backend_names", []))
    if backend and registered and backend not in registered:
        raise DeviceUnavailableError(f"'{path.name}' was lowered to {backend}, which this "
                                     f"ExecuTorch build lacks (it has {', '.join(registered)}); "
                                     f"reinstall executorch: {INSTALL_HINT}")
    start = time.perf_counter()
    try:
        method = runtime.load_program(path).load_method("forward")
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"'{path}' is not a program ExecuTorch can load ({first}); "
                              "re-export it with edgessl export --format executorch") from None
    execution = ExecutionInfo(runtime="executorch", device="CPU",
                              provider=backend or "portable kernels",
                              version=executorch_version())
    return ExecuTorchModel(path, method, meta, execution, time.perf_counter() - start)
