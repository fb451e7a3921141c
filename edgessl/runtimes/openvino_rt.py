"""The OpenVINO runtime: runs an OpenVINO IR (``model.xml`` + ``model.bin``) from edgessl export.

The artifact's metadata is read from the IR's ``rt_info`` entry ``edgessl``. The devices that
executed are read back from the compiled model (``EXECUTION_DEVICES``), never assumed.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgessl.artifact import META_KEY, ArtifactMeta
from edgessl.errors import CheckpointError, DataError, DeviceUnavailableError

# Virtual devices that dispatch to real ones; EXECUTION_DEVICES says which ran.
VIRTUAL_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")


def accepts(path: Path) -> bool:
    """True when ``path`` is an ``.xml`` file (an OpenVINO IR)."""
    path = Path(path)
    return path.suffix.lower() == ".xml" and path.is_file()


def _check_device(core, device: str) -> str:
    """The device name OpenVINO should use for ``device`` (upper case).

    Raises:
        DeviceUnavailableError: when OpenVINO does not see that device on this host.
    """
    wanted = device.strip().upper()
    available = core.available_devices
    kind = wanted.split(":", 1)[0]
    if kind in VIRTUAL_DEVICES or wanted in available:
        return wanted
    import openvino as ov

    raise DeviceUnavailableError(
        f"OpenVINO {ov.get_version()} sees no device '{device}' on this host; available "
        f"devices: {', '.join(available) or 'none'} (or AUTO)"
    )


def _read_ir(core, path: Path):
    """Read the IR at ``path``; anything that is not one becomes a one-line CheckpointError."""
    try:
        with open(path, "rb") as f:
            head = f.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise CheckpointError(f"cannot read '{path}': {exc.strerror}") from None
    # Checked here because OpenVINO would otherwise try every frontend on it (and the
    # TensorFlow one prints pages of parse errors to stderr).
    if not head.startswith(b"<"):
        raise CheckpointError(f"'{path}' is not an OpenVINO IR (not XML); "
                              "re-export it with edgessl export --format openvino")
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise CheckpointError(f"'{weights}' is missing next to '{path.name}'; an OpenVINO IR "
                              "needs both files, copy them together")
    try:
        return core.read_model(str(path), str(weights))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError with long texts
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[-1].strip()[:200] if lines else type(exc).__name__
        raise CheckpointError(f"'{path}' is not a valid OpenVINO IR ({detail}); "
                              "re-export it with edgessl export --format openvino") from None


def _read_meta(model, path: Path) -> ArtifactMeta:
    if not model.has_rt_info(META_KEY):
        raise CheckpointError(f"'{path}' carries no edgessl metadata; export it with "
                              "edgessl export so labels and preprocessing travel with it")
    return ArtifactMeta.from_json(model.get_rt_info(META_KEY).astype(str), str(path))


class OpenVinoModel:
    """An OpenVINO IR compiled for a device: float32 [N, 3, S, S] -> float32 [N, C].

    Attributes:
        path: the ``.xml`` file.
        meta: the edgessl metadata embedded in the IR.
        execution: the devices that execute it (``EXECUTION_DEVICES``) and their full name.
        load_seconds: time to read and compile the model, in s.
    """

    def __init__(self, path: Path, compiled, meta: ArtifactMeta, execution,
                 load_seconds: float) -> None:
        self.path = path
        self.meta = meta
        self.execution = execution
        self.load_seconds = load_seconds
        self.compiled = compiled
        self._request = compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch float32 [N, 3, S, S] (normalised); returns float32 [N, C] logits."""
        size = self.meta.image_size
        if batch.ndim != 4 or tuple(batch.shape[1:]) != (3, size, size):
            raise DataError(f"'{self.path}' takes float32 [N, 3, {size}, {size}] inputs, "
                            f"got shape {list(batch.shape)}; preprocess with the artifact's meta")
        x = np.ascontiguousarray(batch, dtype=np.float32)
        self._request.infer({0: x})
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32, copy=True)


def load(path: Path, device: str = "CPU") -> OpenVinoModel:
    """Read and compile the OpenVINO IR ``path`` for ``device``.

    An fp32 artifact is compiled with inference precision f32: OpenVINO otherwise runs it in
    bf16 on CPUs that have it (and f16 on GPUs), which breaks parity with PyTorch. An int8
    artifact keeps the device's default precision for its non-quantized layers.

    Args:
        path: a ``.xml`` file written by ``edgessl export --format openvino``.
        device: "CPU", "GPU", "NPU", "AUTO", ... as OpenVINO names them.

    Raises:
        DeviceUnavailableError: if OpenVINO does not see ``device`` here.
        CheckpointError: if ``path`` is not a valid IR or lacks edgessl metadata.
    """
    import openvino as ov

    from edgessl.runtimes.base import ExecutionInfo

    path = Path(path)
    core = ov.Core()
    device = _check_device(core, device)
    start = time.perf_counter()
    model = _read_ir(core, path)
    meta = _read_meta(model, path)
    config = {"INFERENCE_PRECISION_HINT": "f32"} if meta.precision == "fp32" else {}
    try:
        compiled = core.compile_model(model, device, config)
    except Exception as exc:  # noqa: BLE001 - plugin failures are RuntimeErrors
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        raise DeviceUnavailableError(
            f"OpenVINO could not compile '{path.name}' for {device} "
            f"({lines[-1].strip()[:200] if lines else type(exc).__name__}); try --device CPU"
        ) from None
    load_seconds = time.perf_counter() - start
    devices = list(compiled.get_property("EXECUTION_DEVICES"))
    names = []
    for d in devices:
        try:
            names.append(f"{d}: {core.get_property(d, 'FULL_DEVICE_NAME')}")
        except Exception:  # noqa: BLE001 - a virtual or sub-device may not report a name
            names.append(d)
    try:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        precision = f" (inference precision {getattr(hint, 'to_string', hint.__str__)()})"
    except Exception:  # noqa: BLE001 - not every plugin reports it
        precision = ""
    execution = ExecutionInfo(runtime="openvino", device=",".join(devices),
                              provider=f"OpenVINO {'; '.join(names)}{precision}",
                              version=ov.get_version())
    return OpenVinoModel(path, compiled, meta, execution, load_seconds)
