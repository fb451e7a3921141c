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
from edgessl.backends.base import ExecutionInfo, ThreadedThroughput
from edgessl.errors import CheckpointError, ConfigError, DeviceUnavailableError

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


# Providers that take a GPU index (``--device CUDA:1``) as their ``device_id`` option.
INDEXED_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "DmlExecutionProvider")


def _device_index(device: str, provider: str) -> int | None:
    """The index in ``device`` ("CUDA:1" -> 1; None without one), for a provider that takes
    one: run on GPU 1 or fail, never on GPU 0 while the report says GPU 1.

    Raises:
        ConfigError: an index that is not a number, or one given to a provider without.
    """
    if ":" not in device:
        return None
    number = device.split(":", 1)[1].strip()
    if provider not in INDEXED_PROVIDERS:
        raise ConfigError(f"device '{device}': {provider} takes no device index; drop "
                          f"':{number}'")
    if not (number.isascii() and number.isdigit()):
        raise ConfigError(f"device '{device}' names no GPU: write {device.split(':')[0]}:<n> "
                          "with n = 0, 1, ... (the GPU's index)")
    return int(number)


def _provider_for(device: str) -> str:
    """The provider for ``device`` ("CPU", "CUDA", or a provider name like "CPUExecutionProvider").

    Raises:
        DeviceUnavailableError: when this onnxruntime build does not offer that provider.
    """
    import onnxruntime as ort

    wanted = device.strip()
    provider = DEVICE_PROVIDERS.get(wanted.upper().split(":", 1)[0], wanted.split(":", 1)[0])
    _device_index(wanted, provider)
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


def _executed_device(session, provider: str) -> str:
    """The device ``provider`` runs on, with the GPU index the session reports ("CUDA:1")."""
    device = _device_of(provider)
    try:
        index = session.get_provider_options().get(provider, {}).get("device_id")
    except Exception:  # noqa: BLE001 - older sessions may not report options
        index = None
    return f"{device}:{index}" if provider in INDEXED_PROVIDERS and index is not None else device


class OnnxRuntimeModel(ThreadedThroughput):
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
        # What ran, for reports: every provider of the session, and the thread settings.
        self.session_providers: tuple[str, ...] = tuple(session.get_providers())
        self.settings: dict = {}

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch float32 [N, 3, S, S] (normalised), or uint8 [N, S, S, 3] for artifacts
        with embedded preprocessing; returns float32 [N, C] scores (or [N, D] embeddings)."""
        x = self.meta.check_batch(batch, self.path)
        return np.asarray(self.session.run(None, {self._input: x})[0], dtype=np.float32)


def _session_options(profile, batch: int | None, path: Path):
    """SessionOptions from a device profile: intra-op threads and, for static-shape devices,
    the dynamic batch axis fixed to ``batch``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    if profile is not None and profile.threads:
        options.intra_op_num_threads = profile.threads
    if batch is not None:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        dim = graph.input[0].type.tensor_type.shape.dim[0]
        if dim.dim_param:  # NPUs (QNN) compile for fixed shapes; ORT fixes the named axis
            options.add_free_dimension_override_by_name(dim.dim_param, batch)
    return options


def _providers(device: str, profile) -> tuple[list[str], list[dict]]:
    """Providers (preferred first) and their options: the profile's, else the one for device."""
    import onnxruntime as ort

    if profile is None:
        provider = _provider_for(device)
        index = _device_index(device.strip(), provider)
        # CPU is listed last so that operators the accelerator lacks still run; load() checks
        # that the accelerator itself did start.
        names = [provider] if provider == "CPUExecutionProvider" else [provider,
                                                                       "CPUExecutionProvider"]
        options = [{} for _ in names]
        if index is not None:
            options[0] = {"device_id": str(index)}
        return names, options
    available = ort.get_available_providers()
    missing = [p for p in profile.providers if p not in available]
    if missing:
        from edgessl.runtime_specs import RUNTIME_SPECS

        fix = RUNTIME_SPECS.get("onnxruntime").provider_fix(missing[0])
        raise DeviceUnavailableError(
            f"ONNX Runtime {ort.__version__} on this host has no {', '.join(missing)} for "
            f"profile '{profile.name}' (available: {', '.join(available)}); "
            f"{fix or profile.setup or 'install it'}"
        )
    names = list(profile.providers)
    return names, [{k: str(v) for k, v in profile.provider_options.get(p, {}).items()}
                   for p in names]


def load(path: Path, device: str = "CPU", profile=None, batch: int | None = None
         ) -> OnnxRuntimeModel:
    """Load the ONNX file ``path`` in ONNX Runtime on ``device`` or with a device profile.

    Args:
        path: a ``.onnx`` file written by ``edgessl export``.
        device: "CPU", "CUDA" (or "GPU"), "TENSORRT", ..., or a provider name; ignored when
            ``profile`` is given.
        profile: a DeviceProfile: its providers (with their options) and threads are used, and
            every accelerator provider it lists must be running in the session.
        batch: fix the dynamic batch axis to this size (static-shape devices); None = dynamic.

    Raises:
        DeviceUnavailableError: if a provider is missing or failed to start.
        CheckpointError: if ``path`` is not a valid ONNX model or lacks edgessl metadata.
    """
    import onnxruntime as ort

    path = Path(path)
    from edgessl.safety import check_onnx_external_data

    check_onnx_external_data(path)  # refuse external data outside the model's folder
    providers, provider_options = _providers(device, profile)
    wanted = [p for p in providers if p != "CPUExecutionProvider"] or providers
    start = time.perf_counter()
    try:
        options = _session_options(profile, batch, path)
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers,
                                       provider_options=provider_options)
    except Exception as exc:  # noqa: BLE001 - ORT raises several pybind types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if wanted != ["CPUExecutionProvider"]:  # an accelerator may be what failed
            raise DeviceUnavailableError(
                f"ONNX Runtime could not create a session for '{path}' with "
                f"{', '.join(providers)} ({first[:200]}); check the accelerator's drivers, "
                "or the model with --device CPU") from None
        raise CheckpointError(f"'{path}' is not a valid ONNX model ({first[:200]}); "
                              "re-export it with edgessl export") from None
    load_seconds = time.perf_counter() - start
    used = session.get_providers()
    dropped = [p for p in wanted if p not in used]
    if dropped:  # ORT drops a provider that fails to initialise and carries on without it
        raise DeviceUnavailableError(
            f"ONNX Runtime could not start {', '.join(dropped)} for "
            f"'{profile.name if profile is not None else device}' (session uses "
            f"{', '.join(used)}); check the accelerator's drivers or use --device CPU"
        )
    execution = ExecutionInfo(runtime="onnxruntime", device=_executed_device(session, used[0]),
                              provider=used[0], version=ort.__version__)
    model = OnnxRuntimeModel(path, session, _read_meta(session, path), execution, load_seconds)
    model.session_providers = tuple(used)
    threads = options.intra_op_num_threads
    model.settings = {"providers": ",".join(used),
                      "intra_op_num_threads": threads if threads else "default (physical cores)"}
    return model
