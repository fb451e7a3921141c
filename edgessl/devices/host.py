"""What this host offers: CPU model and ISA flags, OpenVINO devices, ORT providers, CUDA GPUs.

Every probe reports what the runtime itself says, and a runtime that is not installed or fails
to start is reported as absent (with the reason), never guessed.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
BOARD_MODEL = Path("/proc/device-tree/model")  # single-board computers: "Raspberry Pi 5 ..."
# OpenVINO plugins that drive accelerators; each is probed so that "no device" and "plugin
# cannot load" (a missing driver library) are told apart.
OPENVINO_ACCELERATORS = ("GPU", "NPU")

# ISA extensions that decide which kernels ONNX Runtime / OpenVINO pick: AVX2 and AVX-512 for
# fp32, VNNI and AMX for fast int8 (and bf16), asimd/asimddp/sve/i8mm on Arm. Device profiles
# name their target's ISA with these names too (DeviceProfile.isa).
X86_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
             "amx_int8", "amx_bf16")
ARM_FLAGS = ("asimd", "asimddp", "sve", "i8mm")
KNOWN_FLAGS = (*X86_FLAGS, *ARM_FLAGS)
# platform.machine() names (as in DeviceProfile.arch) -> CPU family ("x86" or "arm").
ARCH_FAMILIES = {
    "x86_64": "x86", "amd64": "x86", "x64": "x86", "i386": "x86", "i686": "x86", "x86": "x86",
    "aarch64": "arm", "arm64": "arm", "armv8l": "arm", "armv7l": "arm",
}


def arch_family(machine: str) -> str:
    """"x86", "arm", or "" for a platform.machine() name edgessl does not know."""
    return ARCH_FAMILIES.get(machine.lower(), "")


def flag_family(flag: str) -> str:
    """"x86" or "arm" for a KNOWN_FLAGS name, "" for any other."""
    return "x86" if flag in X86_FLAGS else "arm" if flag in ARM_FLAGS else ""


@dataclass(frozen=True)
class CpuInfo:
    """The host CPU.

    Attributes:
        model: marketing name ("Intel(R) Xeon(R) ..."), or platform.processor() as fallback.
        flags: the ISA extensions from KNOWN_FLAGS that the CPU reports, in KNOWN_FLAGS order.
        logical_cores: logical CPUs usable by this process.
    """

    model: str
    flags: tuple[str, ...]
    logical_cores: int

    @property
    def has_fast_int8(self) -> bool:
        """True when the CPU has int8 dot-product instructions (VNNI, AMX or Arm dotprod)."""
        return any(f in self.flags for f in ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp"))


@dataclass(frozen=True)
class OpenVinoDevice:
    """One OpenVINO device: its short name ("CPU", "GPU.0", "NPU") and FULL_DEVICE_NAME."""

    name: str
    full_name: str


@dataclass(frozen=True)
class CudaDevice:
    """One CUDA GPU as PyTorch sees it."""

    index: int
    name: str


@dataclass(frozen=True)
class HostInfo:
    """Everything ``edgessl devices`` reports.

    Attributes:
        cpu: the host CPU.
        openvino_devices: devices OpenVINO can compile for (empty if OpenVINO is unavailable).
        onnxruntime_providers: ONNX Runtime's available execution providers, in its order.
        cuda_devices: CUDA GPUs PyTorch can use (empty when none).
        versions: installed versions of python, edgessl, numpy, torch, onnxruntime, openvino.
        problems: runtime name -> why probing it failed (only for failed probes).
        system: platform.system() ("Linux", "Darwin", "Windows").
        machine: platform.machine() ("x86_64", "aarch64", "arm64").
        board: the board name of a single-board computer ("Raspberry Pi 5 Model B Rev 1.0"),
            "" elsewhere.
        openvino_plugins: accelerator plugin ("GPU", "NPU") -> "" when it loads, else why not.
    """

    cpu: CpuInfo
    openvino_devices: tuple[OpenVinoDevice, ...]
    onnxruntime_providers: tuple[str, ...]
    cuda_devices: tuple[CudaDevice, ...]
    versions: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    system: str = field(default_factory=platform.system)
    machine: str = field(default_factory=platform.machine)
    board: str = ""
    openvino_plugins: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_cpuinfo(text: str) -> tuple[str, tuple[str, ...]]:
    """The CPU model name and the KNOWN_FLAGS present, from /proc/cpuinfo text.

    x86 lists ISA extensions under "flags", Arm under "Features"; the first processor
    block is enough since all cores of a host share an ISA.
    """
    model, reported = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not reported:
            reported = set(value.split())
    return model, tuple(f for f in KNOWN_FLAGS if f in reported)


def cpu_info() -> CpuInfo:
    """Detect the host CPU (from /proc/cpuinfo on Linux, platform.processor() elsewhere)."""
    model, flags = "", ()
    try:
        model, flags = parse_cpuinfo(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return CpuInfo(model=model, flags=flags, logical_cores=cores)


def openvino_devices() -> tuple[OpenVinoDevice, ...]:
    """OpenVINO's available devices with their FULL_DEVICE_NAME."""
    import openvino

    core = openvino.Core()
    found = []
    for name in core.available_devices:
        try:
            full = str(core.get_property(name, "FULL_DEVICE_NAME"))
        except Exception:  # noqa: BLE001 - a plugin without the property still counts
            full = name
        found.append(OpenVinoDevice(name=name, full_name=full))
    return tuple(found)


def openvino_plugins() -> dict[str, str]:
    """Whether OpenVINO's accelerator plugins load: kind -> "" (loads) or the reason it fails.

    A plugin that loads may still find no device; one that fails usually lacks a driver
    library (the GPU plugin needs libOpenCL.so.1, for example).
    """
    import openvino

    core = openvino.Core()
    found = {}
    for kind in OPENVINO_ACCELERATORS:
        try:
            core.get_versions(kind)
            found[kind] = ""
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError with a long text
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            last = lines[-1] if lines else type(exc).__name__
            # 'Cannot load library "<long path>": libOpenCL.so.1: cannot open ...' -> the cause
            found[kind] = last.split('": ', 1)[-1][:300]
    return found


def board_model() -> str:
    """The board name from the device tree (Raspberry Pi, Jetson), or "" on other hosts."""
    try:
        return BOARD_MODEL.read_text(encoding="utf-8", errors="replace").strip("\x00 \n")
    except OSError:
        return ""


def onnxruntime_providers() -> tuple[str, ...]:
    """ONNX Runtime's available execution providers, in its preference order."""
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


def cuda_devices() -> tuple[CudaDevice, ...]:
    """CUDA GPUs that PyTorch can use (empty when CUDA is unavailable)."""
    import torch

    if not torch.cuda.is_available():
        return ()
    return tuple(CudaDevice(i, torch.cuda.get_device_name(i))
                 for i in range(torch.cuda.device_count()))


def package_versions() -> dict[str, str]:
    """Installed versions: from the module if imported already, else package metadata.

    Imports nothing heavy.
    """
    from importlib import metadata

    from edgessl import __version__

    versions = {"python": platform.python_version(), "edgessl": __version__}
    from edgessl.runtime_specs import RUNTIME_SPECS

    candidates: dict[str, tuple[str, ...]] = {"numpy": ("numpy",)}
    for _, spec in RUNTIME_SPECS.items():  # each runtime's package, or one that carries it
        candidates[spec.import_name] = tuple(dict.fromkeys(
            (spec.package, *(package for _, package, _ in spec.providers))))
    for name, dists in candidates.items():
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "__version__"):
            # the imported module knows its build ("2.4.1+cu121"); metadata may not
            versions[name] = str(module.__version__)
            continue
        versions[name] = "not installed"
        for dist in dists:
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def _probe(problems: dict[str, str], name: str, fn, empty=()):
    try:
        return fn()
    except ImportError as exc:
        problems[name] = f"not installed ({exc.name or exc})"
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the others
        problems[name] = f"{type(exc).__name__}: {exc}"
    return empty


@functools.lru_cache(maxsize=1)
def detect_host() -> HostInfo:
    """Probe this host once per process (devices do not change while edgessl runs)."""
    problems: dict[str, str] = {}
    return HostInfo(
        cpu=cpu_info(),
        openvino_devices=_probe(problems, "openvino", openvino_devices),
        onnxruntime_providers=_probe(problems, "onnxruntime", onnxruntime_providers),
        cuda_devices=_probe(problems, "torch", cuda_devices),
        versions=package_versions(),
        problems=problems,
        board=board_model(),
        openvino_plugins=_probe({}, "openvino", openvino_plugins, {}),
    )
