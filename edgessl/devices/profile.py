"""Device profiles: a TOML file per target device saying how to run models on it.

Shipped profiles live in the repository's ``devices/`` folder (installed as
``edgessl/_devices`` in a wheel); any other ``.toml`` file with the same keys works too.
Adding a device is one new TOML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgessl.config import from_dict, load_toml
from edgessl.errors import ConfigError, unknown_choice

# The runtime names of edgessl.runtimes.registry.RUNTIMES, repeated here so that reading a
# profile does not import every runtime (test_devices checks the two stay in step).
RUNTIME_NAMES = ("onnxruntime", "openvino", "pytorch")
PRECISIONS = ("fp32", "fp16", "int8")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")


@dataclass(frozen=True)
class DeviceProfile:
    """How to run models on one target device.

    Attributes:
        name: profile name (defaults to the file name without ``.toml``).
        description: one line for ``edgessl devices``.
        runtimes: runtimes that can drive this device, preferred first.
        device: the device name the runtimes are given ("CPU", "GPU", "NPU").
        providers: ONNX Runtime execution providers, preferred first.
        threads: intra-op threads; 0 = the runtime's default (all physical cores).
        performance_hint: OpenVINO performance hint: LATENCY, THROUGHPUT or CUMULATIVE_THROUGHPUT.
        precisions: precisions worth exporting for this device (fp32, fp16, int8).
        static_batch: export with this fixed batch size (NPUs need one); None = dynamic batch.
        batch_sizes: batch sizes to benchmark.
    """

    name: str = ""
    description: str = ""
    runtimes: tuple[str, ...] = ("onnxruntime",)
    device: str = "CPU"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    threads: int = 0
    performance_hint: str = "LATENCY"
    precisions: tuple[str, ...] = ("fp32", "int8")
    static_batch: int | None = None
    batch_sizes: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        where = f"device profile '{self.name}'"
        if not self.runtimes:
            raise ConfigError(f"{where}: 'runtimes' is empty; list at least one of "
                              f"{', '.join(RUNTIME_NAMES)}")
        for runtime in self.runtimes:
            if runtime not in RUNTIME_NAMES:
                raise _in(where, unknown_choice("runtime", runtime, RUNTIME_NAMES))
        for precision in self.precisions:
            if precision not in PRECISIONS:
                raise _in(where, unknown_choice("precision", precision, PRECISIONS))
        if self.performance_hint not in PERFORMANCE_HINTS:
            raise _in(where, unknown_choice("performance_hint", self.performance_hint,
                                            PERFORMANCE_HINTS))
        if self.threads < 0:
            raise ConfigError(f"{where}: 'threads' must be ≥ 0 (0 = runtime default), "
                              f"got {self.threads}")
        if self.static_batch is not None and self.static_batch < 1:
            raise ConfigError(f"{where}: 'static_batch' must be ≥ 1, got {self.static_batch}")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"{where}: 'batch_sizes' must list sizes ≥ 1, "
                              f"got {list(self.batch_sizes)}")

    @property
    def runtime(self) -> str:
        """The preferred runtime (the first of ``runtimes``)."""
        return self.runtimes[0]


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
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        return profile_from_file(text)
    names = list_profiles()
    if text not in names:
        raise unknown_choice("device profile", text, names)
    return profile_from_file(profiles_dir() / f"{text}.toml")
