"""The ONNX Runtime runtime: runs a ``.onnx`` file exported by ``edgessl export``.

The artifact's metadata (labels, input size, normalisation) is read from the ONNX
``metadata_props`` entry ``edgessl``. What ran is read back from the session, never assumed:
ONNX Runtime silently drops a provider that fails to initialise, so this module checks.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgessl.artifact import META_KEY, ArtifactMeta
from edgessl.errors import CheckpointError, DataError, DeviceUnavailableError
from edgessl.runtimes.base import ExecutionInfo

# Device names users type -> the ONNX Runtime provider that serves them.
DEVICE_PROVIDERS = {
    "CPU": "CPUExecutionProvider",
    "CUDA": "CUDAExecutionProvider",
    "GPU": "CUDAExecutionProvider",
    "TENSORRT": "TensorrtExecutionProvider",
    "OPENVINO": "OpenVINOExecutionProvider",
    "DML": "DmlExecutionProvider",
    "COREML": "CoreMLExecutionProvider",
}


def accepts(path: Path) -> bool:
    """True when ``path`` is a ``.onnx`` file."""
    path = Path(path)
    return path.suffix.lower() == ".onnx" and path.is_file()


def _provider_for(device: str) -> str:
    """The provider for ``device`` ("CPU", "CUDA", or a provider name like "CPUExecutionProvider").

    Raises:
        DeviceUnavailableError: when this onnxruntime build does not offer that provider.
    """
    import onnxruntime as ort

    wanted = device.strip()
    provider = DEVICE_PROVIDERS.get(wanted.upper().split(":", 1)[0], wanted)
    available = ort.get_available_providers()
    if provider not in available:
        raise DeviceUnavailableError(
            f"ONNX Runtime {ort.__version__} on this host has no {provider} for device "
            f"'{device}'; available providers: {', '.join(available)}"
        )
    return provider


def _read_meta(session, path: Path) -> ArtifactMeta:
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise CheckpointError(f"'{path}' carries no edgessl metadata; export it with "
                              "edgessl export so labels and preprocessing travel with it")
    return ArtifactMeta.from_json(props[META_KEY], str(path))


def _device_of(provider: str) -> str:
    for device, name in DEVICE_PROVIDERS.items():
        if name == provider:
            return device
    return provider.removesuffix("ExecutionProvider").upper()


class OnnxRuntimeModel:
    """An ONNX artifact in an ONNX Runtime session: float32 [N, 3, S, S] -> float32 [N, C].

    Attributes:
        path: the ``.onnx`` file.
        meta: the edgessl metadata embedded in the file.
        execution: the provider the session actually uses (``session.get_providers()[0]``).
        load_seconds: time to create the session (graph optimisation included), in s.
    """

    def __init__(self, path: Path, session, meta: ArtifactMeta, execution: ExecutionInfo,
                 load_seconds: float) -> None:
        self.path = path
        self.meta = meta
        self.execution = execution
        self.load_seconds = load_seconds
        self.session = session
        self._input = session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch float32 [N, 3, S, S] (normalised); returns float32 [N, C] logits."""
        size = self.meta.image_size
        if batch.ndim != 4 or tuple(batch.shape[1:]) != (3, size, size):
            raise DataError(f"'{self.path}' takes float32 [N, 3, {size}, {size}] inputs, "
                            f"got shape {list(batch.shape)}; preprocess with the artifact's meta")
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return np.asarray(self.session.run(None, {self._input: x})[0], dtype=np.float32)


def load(path: Path, device: str = "CPU") -> OnnxRuntimeModel:
    """Load the ONNX file ``path`` in ONNX Runtime on ``device``.

    Args:
        path: a ``.onnx`` file written by ``edgessl export``.
        device: "CPU", "CUDA" (or "GPU"), "TENSORRT", ..., or a provider name.

    Raises:
        DeviceUnavailableError: if the provider for ``device`` is missing or failed to start.
        CheckpointError: if ``path`` is not a valid ONNX model or lacks edgessl metadata.
    """
    import onnxruntime as ort

    path = Path(path)
    provider = _provider_for(device)
    # CPU is listed last so that operators the accelerator lacks still run; the check below
    # makes sure the accelerator itself did start.
    providers = [provider] if provider == "CPUExecutionProvider" else [provider,
                                                                       "CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    start = time.perf_counter()
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises several pybind types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"'{path}' is not a valid ONNX model ({first[:200]}); "
                              "re-export it with edgessl export") from None
    load_seconds = time.perf_counter() - start
    used = session.get_providers()
    if provider not in used:
        raise DeviceUnavailableError(
            f"ONNX Runtime could not start {provider} for '{device}' (session uses "
            f"{', '.join(used)}); check the accelerator's drivers or use --device CPU"
        )
    execution = ExecutionInfo(runtime="onnxruntime", device=_device_of(used[0]),
                              provider=used[0], version=ort.__version__)
    return OnnxRuntimeModel(path, session, _read_meta(session, path), execution, load_seconds)
