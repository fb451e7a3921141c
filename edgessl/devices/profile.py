"""Device profiles: a TOML file per target device saying how to run models on it.

Shipped profiles live in the repository's ``devices/`` folder (installed as
``edgessl/_devices`` in a wheel); any other ``.toml`` file with the same keys works too.
Adding a device is one new TOML file. ``edgessl.devices.availability`` says whether this
host can run a profile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from edgessl.config import MAX_BATCH, MAX_THREADS, Range, check_fields, from_dict, load_toml
from edgessl.devices.host import KNOWN_FLAGS, arch_family, flag_family
from edgessl.errors import ConfigError, unknown_choice
from edgessl.runtime_specs import RUNTIME_SPECS, runtime_names

PRECISIONS = ("fp32", "fp16", "int8")
# Compute precisions a runtime can be asked to run float layers in (OpenVINO's hint).
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
# ONNX Runtime execution providers edgessl knows how to detect and explain. Runtime names and
# the devices each takes come from the runtime table too, which imports no runtime.
KNOWN_PROVIDERS = ("CPUExecutionProvider",
                   *(name for name, _, _ in RUNTIME_SPECS.get("onnxruntime").providers))


@dataclass(frozen=True)
class DeviceProfile:
    """How to run models on one target device.

    Attributes:
        name: profile name (defaults to the file name without ``.toml``).
        description: one line for ``edgessl devices``.
        runtimes: runtimes that can drive this device, preferred first.
        device: the device name the runtimes are given ("CPU", "GPU", "NPU", "CUDA").
        providers: ONNX Runtime execution providers, preferred first (CPU last as fallback
            for operators the accelerator lacks; every listed one must be available).
        provider_options: provider name -> its ONNX Runtime options (TOML table per provider).
        openvino_config: extra OpenVINO compile properties ({"CACHE_DIR": "..."}).
        threads: intra-op threads; 0 = the runtime's default (all physical cores).
        streams: OpenVINO streams for the throughput run; 0 = chosen by the throughput hint.
        performance_hint: OpenVINO hint for the latency measurement (LATENCY, THROUGHPUT,
            CUMULATIVE_THROUGHPUT).
        throughput_hint: OpenVINO hint for the asynchronous throughput run.
        async_requests: parallel requests (OpenVINO) or threads (ONNX Runtime, PyTorch) for the
            throughput run; 0 = OpenVINO's optimal number, or the logical cores.
        precisions: precisions the target runs well (fp32, fp16, int8).
        static_shapes: the device needs static input shapes (NPUs): models are reshaped to a
            fixed batch before compiling.
        static_batch: export with this fixed batch size; None = dynamic batch.
        batch_sizes: batch sizes of the throughput sweep.
        systems: operating systems (platform.system(): Linux, Darwin, Windows); empty = any.
        arch: CPU architectures (platform.machine(): x86_64, aarch64, arm64); empty = any.
        isa: the target CPU's ISA extensions, as ``edgessl devices`` names them
            (edgessl.devices.host.KNOWN_FLAGS: avx2, avx512_vnni, avx_vnni, asimddp, ...);
            INT8 schemes are chosen for these, never for the build host. Empty = not stated:
            the scheme then follows ``arch`` alone (7-bit weights unless it is Arm).
            ``["host"]``: the device is the host edgessl runs on (the ``cpu`` profile), whose
            own flags are read.
        board: text that must appear in the board name (/proc/device-tree/model), e.g.
            "Raspberry Pi 5"; empty = any host.
        setup: one line on how to get the target working (shown when it is unavailable).
        inference_precision: the precision float layers compute in (f32, bf16, f16), for the
            runtimes that take the setting (OpenVINO); "" = edgessl's default, the artifact's
            own precision (f32 on CPUs; NPUs compute in f16). bf16 is faster on CPUs with
            AVX512_BF16 or AMX and costs accuracy; a runtime that cannot honour it is an error,
            never a silent f32 run.
    """

    name: str = ""
    description: str = ""
    runtimes: tuple[str, ...] = ("onnxruntime",)
    device: str = "CPU"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    provider_options: dict = field(default_factory=dict)
    openvino_config: dict = field(default_factory=dict)
    threads: Annotated[int, Range(ge=0, le=MAX_THREADS, note="0 = runtime default")] = 0
    streams: Annotated[int, Range(ge=0, le=MAX_THREADS, note="0 = runtime default")] = 0
    performance_hint: str = "LATENCY"
    throughput_hint: str = "THROUGHPUT"
    async_requests: Annotated[int, Range(ge=0, le=MAX_THREADS, note="0 = runtime default")] = 0
    precisions: tuple[str, ...] = ("fp32", "int8")
    static_shapes: bool = False
    static_batch: Annotated[int | None, Range(ge=1, le=MAX_BATCH)] = None
    batch_sizes: Annotated[tuple[int, ...], Range(ge=1, le=MAX_BATCH)] = (1,)
    systems: tuple[str, ...] = ()
    arch: tuple[str, ...] = ()
    isa: tuple[str, ...] = ()
    board: str = ""
    setup: str = ""
    inference_precision: str = ""

    def __post_init__(self) -> None:
        where = f"device profile '{self.name}'"
        check_fields(self, label=lambda name: f"{where}: '{name}'")
        if not self.runtimes:
            raise ConfigError(f"{where}: 'runtimes' is empty; list at least one of "
                              f"{', '.join(runtime_names())}")
        for runtime in self.runtimes:
            if runtime not in RUNTIME_SPECS:
                raise _in(where, unknown_choice("runtime", runtime, runtime_names()))
        self._check_choices(where)
        self._check_numbers(where)
        self._check_isa(where)
        for runtime in self.runtimes:
            devices = RUNTIME_SPECS.get(runtime).devices
            if devices and self.device.upper().split(":")[0] not in devices:
                raise ConfigError(f"{where}: runtime '{runtime}' needs 'device' "
                                  f"{' or '.join(devices)}, got '{self.device}'; drop {runtime} "
                                  "from 'runtimes' or fix 'device'")
        self._check_inference_precision(where)
        if "onnxruntime" in self.runtimes and not self.providers:
            raise ConfigError(f"{where}: 'providers' is empty; list ONNX Runtime execution "
                              f"providers, e.g. {', '.join(KNOWN_PROVIDERS[:3])}")
        for provider in self.provider_options:
            if provider not in self.providers:
                raise ConfigError(f"{where}: 'provider_options' has options for '{provider}', "
                                  f"which is not in 'providers' ({', '.join(self.providers)})")
            if not isinstance(self.provider_options[provider], dict):
                raise ConfigError(f"{where}: 'provider_options.{provider}' must be a table of "
                                  "option = value")

    def _check_inference_precision(self, where: str) -> None:
        if not self.inference_precision:
            return
        if self.inference_precision not in INFERENCE_PRECISIONS:
            raise _in(where, unknown_choice("inference_precision", self.inference_precision,
                                            INFERENCE_PRECISIONS))
        unable = [r for r in self.runtimes
                  if self.inference_precision not in RUNTIME_SPECS.get(r).inference_precisions]
        if unable:
            able = [n for n, s in RUNTIME_SPECS.items()
                    if self.inference_precision in s.inference_precisions]
            raise ConfigError(f"{where}: 'inference_precision' {self.inference_precision} is a "
                              f"setting of {' and '.join(able)}; {', '.join(unable)} cannot "
                              f"take it: list only {' or '.join(able)} in 'runtimes', or drop "
                              "'inference_precision'")

    def _check_choices(self, where: str) -> None:
        for provider in self.providers:
            if provider not in KNOWN_PROVIDERS:
                raise _in(where, unknown_choice("provider", provider, KNOWN_PROVIDERS))
        for precision in self.precisions:
            if precision not in PRECISIONS:
                raise _in(where, unknown_choice("precision", precision, PRECISIONS))
        for key in ("performance_hint", "throughput_hint"):
            value = getattr(self, key)
            if value not in PERFORMANCE_HINTS:
                raise _in(where, unknown_choice(key, value, PERFORMANCE_HINTS))
        if not self.device.strip():
            raise ConfigError(f"{where}: 'device' is empty; name a device such as CPU, GPU, NPU")

    def _check_numbers(self, where: str) -> None:
        if not self.batch_sizes:
            raise ConfigError(f"{where}: 'batch_sizes' must list sizes ≥ 1, got []")
        if self.static_batch is not None and set(self.batch_sizes) != {self.static_batch}:
            raise ConfigError(f"{where}: 'batch_sizes' {list(self.batch_sizes)} must be "
                              f"[{self.static_batch}] with 'static_batch' = {self.static_batch}")

    def _check_isa(self, where: str) -> None:
        if "host" in self.isa:
            if self.isa != ("host",):
                raise ConfigError(f"{where}: 'isa' = ['host'] means the host's own CPU and "
                                  "takes no other flag; list either 'host' or the target's flags")
            return
        for flag in self.isa:
            if flag not in KNOWN_FLAGS:
                raise _in(where, unknown_choice("ISA flag in 'isa'", flag, KNOWN_FLAGS))
        families = {flag_family(f) for f in self.isa}
        if len(families) > 1:
            raise ConfigError(f"{where}: 'isa' mixes x86 and Arm flags ({', '.join(self.isa)}); "
                              "list the flags of the one CPU the profile targets")
        archs = {arch_family(a) for a in self.arch} - {""}
        if families and archs and families != archs:
            raise ConfigError(f"{where}: 'isa' lists {families.pop()} flags "
                              f"({', '.join(self.isa)}) but 'arch' is {', '.join(self.arch)}; "
                              "fix one of them so both describe the target's CPU")

    @property
    def cpu_family(self) -> str:
        """The target CPU's family, "x86" or "arm", from ``isa`` or else ``arch``; "" when
        neither says (``arch`` empty, unknown or of both families, or ``isa = ["host"]``,
        which ``edgessl.deploy.target.profile_cpu`` resolves to this CPU)."""
        families = {flag_family(f) for f in self.isa} or {arch_family(a) for a in self.arch}
        return families.pop() if len(families) == 1 else ""

    @property
    def runtime(self) -> str:
        """The preferred runtime (the first of ``runtimes``)."""
        return self.runtimes[0]

    @property
    def accelerator_providers(self) -> tuple[str, ...]:
        """The providers other than the CPU fallback (empty for a CPU-only profile)."""
        return tuple(p for p in self.providers if p != "CPUExecutionProvider")


def _in(where: str, error: ConfigError) -> ConfigError:
    return ConfigError(f"{where}: {error}")


def profiles_dir() -> Path:
    """Shipped profiles: ``edgessl/_devices`` in a wheel, else ``devices/`` in a checkout."""
    import edgessl

    package = Path(edgessl.__file__).parent
    installed = package / "_devices"
    return installed if installed.is_dir() else package.parent / "devices"


def list_profiles() -> list[str]:
    """Names of the shipped profiles, sorted."""
    folder = profiles_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def profile_from_file(path: str | Path) -> DeviceProfile:
    """Load a profile from a TOML file; its name defaults to the file name.

    Raises:
        ConfigError: for a missing or invalid file, an unknown key or a value of the wrong type.
    """
    path = Path(path)
    data = load_toml(path)
    data.setdefault("name", path.stem)
    return from_dict(DeviceProfile, data, where=f"device profile '{path}'")


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """Load a shipped profile by name ("cpu") or any profile by its ``.toml`` path.

    Raises:
        ConfigError: for an unknown name (with a suggestion) or an invalid file.
    """
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        return profile_from_file(text)
    names = list_profiles()
    if text not in names:
        raise unknown_choice("device profile", text, names)
    return profile_from_file(profiles_dir() / f"{text}.toml")
