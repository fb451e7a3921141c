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
    # With two GPUs OpenVINO lists GPU.0 and GPU.1 and still takes "GPU" for the first, as
    # edgessl.devices.availability does: never "no device 'GPU'" on a host with two.
    if "." not in wanted and any(d.split(".", 1)[0] == wanted for d in available):
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
        execution_devices: ``EXECUTION_DEVICES`` of the compiled model (["CPU"], ["GPU.0"]).
        settings: properties read back from the compiled model (hint, streams, threads,
            inference precision, optimal number of infer requests).
    """

    def __init__(self, path: Path, compiled, meta: ArtifactMeta, execution,
                 load_seconds: float, core=None) -> None:
        self.path = path
        self.meta = meta
        self._execution = execution
        self._core = core
        self.load_seconds = load_seconds
        self.compiled = compiled
        self._request = compiled.create_infer_request()
        shape = compiled.input(0).get_partial_shape()
        self._fixed_batch = None if shape.is_dynamic else int(shape[0].get_length())
        self._input = self._request.get_input_tensor(0)  # the request keeps this tensor
        self._input_shape = tuple(self._input.shape)
        self.settings: dict = {}
        self._recompile = None  # (core, model, device, config) for compile_for_throughput

    @property
    def execution_devices(self) -> tuple[str, ...]:
        """``EXECUTION_DEVICES`` as the compiled model reports it now: AUTO starts on the CPU
        while the accelerator compiles and moves there later, so what ran is read when asked
        (after the measurement), never kept from load time."""
        return tuple(self.compiled.get_property("EXECUTION_DEVICES"))

    @property
    def execution(self):
        """The ExecutionInfo of the devices executing now (see ``execution_devices``)."""
        devices = ",".join(self.execution_devices)
        if self._core is not None and devices != self._execution.device:
            self._execution = _execution(self._core, self.compiled)
            if "EXECUTION_DEVICES" in self.settings:
                self.settings["EXECUTION_DEVICES"] = devices
        return self._execution

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch float32 [N, 3, S, S] (normalised), or uint8 [N, S, S, 3] for artifacts
        with embedded preprocessing; returns float32 [N, C] scores (or [N, D] embeddings)."""
        x = self.meta.check_batch(batch, self.path)
        # Written into the request's own input tensor: infer({0: x}) would wrap the array in a
        # new tensor and build a result dict on every call, tens of µs a run on small models.
        # Its shape is tracked here because reading tensor.shape costs ~13 µs a call.
        if x.shape != self._input_shape:
            if self._fixed_batch is not None:
                raise DataError(f"'{self.path}' is compiled for a fixed batch of "
                                f"{self._fixed_batch}, got {x.shape[0]} images; pass "
                                f"batches of {self._fixed_batch}")
            self._input.shape = x.shape  # a dynamic-batch IR: the tensor follows the batch
            self._input_shape = x.shape
        self._input.data[...] = x
        self._request.infer()
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def compile_for_throughput(self, hint: str = "THROUGHPUT", streams: int = 0):
        """The same model compiled again with a throughput hint (and ``streams`` if > 0), for
        an AsyncInferQueue. Returns (compiled model, properties read back from it)."""
        core, model, device, config = self._recompile
        config = {**config, "PERFORMANCE_HINT": hint}
        if streams:
            config["NUM_STREAMS"] = str(streams)
        compiled = core.compile_model(model, device, config)
        return compiled, read_settings(compiled)


READ_BACK = ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS",
             "INFERENCE_PRECISION_HINT", "OPTIMAL_NUMBER_OF_INFER_REQUESTS")


def read_settings(compiled) -> dict:
    """Properties in READ_BACK that the compiled model reports, as strings."""
    settings = {}
    for key in READ_BACK:
        try:
            value = compiled.get_property(key)
        except Exception:  # noqa: BLE001 - not every plugin reports every property
            continue
        settings[key] = value.to_string() if hasattr(value, "to_string") else str(value)
    settings["EXECUTION_DEVICES"] = ",".join(compiled.get_property("EXECUTION_DEVICES"))
    return settings


def compile_config(meta: ArtifactMeta, device: str, profile=None) -> dict:
    """Compile properties: the profile's hint, threads and extra config, and f32 inference for
    fp32 artifacts.

    An fp32 artifact is compiled with inference precision f32: OpenVINO otherwise runs it in
    bf16 on CPUs that have it (and f16 on GPUs), which breaks parity with PyTorch. An int8
    artifact's non-quantized layers and an fp16 artifact compute in f32 on a CPU too (fp16
    weights are what is compressed), in the device's default precision elsewhere; an NPU
    computes in f16 only.
    """
    config = {}
    if meta.precision == "fp32" and not device.startswith("NPU"):
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if meta.precision in ("fp16", "int8") and device.startswith("CPU"):
        # fp16 weights are decompressed on CPUs, and the layers NNCF leaves in float in an int8
        # model are the ones quantization would hurt: computing either in bf16 (the default on
        # CPUs that have it) loses more than the artifact's own precision. The quantized layers
        # still run in int8.
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if profile is not None and profile.inference_precision:  # asked for: checked after compiling
        config["INFERENCE_PRECISION_HINT"] = profile.inference_precision
    if profile is not None:
        config["PERFORMANCE_HINT"] = profile.performance_hint
        if profile.threads and device.startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = str(profile.threads)
        config.update({str(k): str(v) for k, v in profile.openvino_config.items()})
    return config


def load(path: Path, device: str = "CPU", profile=None, batch: int | None = None
         ) -> OpenVinoModel:
    """Read and compile the OpenVINO IR ``path`` for ``device`` or a device profile.

    Args:
        path: a ``.xml`` file written by ``edgessl export --format openvino``.
        device: "CPU", "GPU", "NPU", "AUTO", ... as OpenVINO names them; ignored when
            ``profile`` is given.
        profile: a DeviceProfile: its device, performance hint, threads and openvino_config.
        batch: reshape the input to [batch, 3, S, S] before compiling (static-shape devices
            such as NPUs need it); None = keep the IR's (dynamic) batch.

    Raises:
        DeviceUnavailableError: if OpenVINO does not see the device here or cannot compile.
        CheckpointError: if ``path`` is not a valid IR or lacks edgessl metadata.
    """
    import openvino as ov

    path = Path(path)
    core = ov.Core()
    device = _check_device(core, profile.device if profile is not None else device)
    start = time.perf_counter()
    model = _read_ir(core, path)
    meta = _read_meta(model, path)
    if batch is not None:
        shape = model.input(0).get_partial_shape()  # [N, 3, S, S], or [N, S, S, 3] raw input
        shape[0] = batch
        model.reshape({0: shape})
    config = compile_config(meta, device, profile)
    try:
        compiled = core.compile_model(model, device, config)
    except Exception as exc:  # noqa: BLE001 - plugin failures are RuntimeErrors
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        raise DeviceUnavailableError(
            f"OpenVINO could not compile '{path.name}' for {device} "
            f"({lines[-1].strip()[:200] if lines else type(exc).__name__}); try --device CPU"
        ) from None
    load_seconds = time.perf_counter() - start
    if profile is not None and profile.inference_precision:
        check_inference_precision(profile.inference_precision, _inference_precision(compiled),
                                  device, _capabilities(core, device), path.name)
    loaded = OpenVinoModel(path, compiled, meta, _execution(core, compiled), load_seconds,
                           core)
    loaded.settings = read_settings(compiled)
    loaded._recompile = (core, model, device, config)
    return loaded


# OpenVINO's element type names -> the names profiles use.
_PRECISION_NAMES = {"float32": "f32", "f32": "f32", "bfloat16": "bf16", "bf16": "bf16",
                    "float16": "f16", "f16": "f16"}


def _inference_precision(compiled) -> str:
    """The precision the compiled model computes float layers in, as f32/bf16/f16 ("" unknown)."""
    try:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    except Exception:  # noqa: BLE001 - not every plugin reports it
        return ""
    name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    return _PRECISION_NAMES.get(str(name).lower(), str(name).lower())


def _capabilities(core, device: str) -> tuple[str, ...]:
    try:
        return tuple(core.get_property(device.split(".")[0], "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # noqa: BLE001 - a virtual device has none
        return ()


def check_inference_precision(asked: str, got: str, device: str, capabilities: tuple[str, ...],
                              name: str) -> None:
    """Refuse a compiled model that does not compute in the precision the profile asked for.

    OpenVINO takes an inference precision the device lacks without complaint and compiles in
    f32: running that and calling it bf16 would report the wrong speed and accuracy.

    Raises:
        DeviceUnavailableError: ``got`` (read back from the compiled model) is not ``asked``.
    """
    if got == asked:
        return
    has = ", ".join(capabilities) or "not reported"
    raise DeviceUnavailableError(
        f"OpenVINO compiles '{name}' for {device} in {got or 'an unreported precision'}, not the "
        f"{asked} the profile asks for: this device lacks {asked} compute (its capabilities: "
        f"{has}; bf16 needs a CPU with AVX512_BF16 or AMX); drop inference_precision or run on "
        "such a device")


def _execution(core, compiled):
    """ExecutionInfo from what the compiled model reports (devices, their names, precision)."""
    import openvino as ov

    from edgessl.backends.base import ExecutionInfo

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
    return ExecutionInfo(runtime="openvino", device=",".join(devices),
                         provider=f"OpenVINO {'; '.join(names)}{precision}",
                         version=ov.get_version())
