"""Whether this host can run a device profile, and if not: why, and how to get it.

Pure functions of a ``DeviceProfile`` and a ``HostInfo`` (from ``detect_host``), so every
answer can be tested with a made-up host. What they check is what the runtimes report:
OpenVINO's devices and plugins, ONNX Runtime's available providers, PyTorch's CUDA devices.
A provider that is listed but fails to start is caught later, when the session is created.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgessl.devices.host import HostInfo
from edgessl.devices.profile import DeviceProfile
from edgessl.runtime_specs import RUNTIME_SPECS

OPENVINO_DEVICE_FIX = {
    "GPU": "install Intel's GPU compute runtime (Ubuntu: apt install intel-opencl-icd "
           "ocl-icd-libopencl1) and add the user to the 'render' group",
    "NPU": "install the Intel NPU driver (github.com/intel/linux-npu-driver) and check that "
           "/dev/accel/accel0 exists",
}


@dataclass(frozen=True)
class Availability:
    """Whether one runtime of a profile can run on this host.

    Attributes:
        profile: the profile name.
        runtime: the runtime checked ("onnxruntime", "openvino", "pytorch").
        available: True when the runtime sees the profile's device (or providers) here.
        reason: why not (empty when available), e.g. "ONNX Runtime has no CUDAExecutionProvider".
        fix: how to get it (empty when available).
    """

    profile: str
    runtime: str
    available: bool
    reason: str = ""
    fix: str = ""

    def message(self) -> str:
        """One line for an error or a skipped row: "profile 'x' (runtime) is unavailable: ..."."""
        if self.available:
            return f"profile '{self.profile}' ({self.runtime}) is available"
        fix = f"; to fix: {self.fix}" if self.fix else ""
        return f"profile '{self.profile}' ({self.runtime}) is unavailable: {self.reason}{fix}"


def _host_mismatch(profile: DeviceProfile, host: HostInfo) -> str:
    """Why this host is the wrong kind of machine for the profile ("" when it is the right one)."""
    if profile.systems and host.system not in profile.systems:
        return f"needs {'/'.join(profile.systems)}, this host runs {host.system}"
    if profile.arch and host.machine not in profile.arch:
        return f"needs CPU architecture {'/'.join(profile.arch)}, this host is {host.machine}"
    if profile.board and profile.board.lower() not in host.board.lower():
        board = f"'{host.board}'" if host.board else "not a single-board computer"
        return f"needs a {profile.board} board, this host is {board}"
    return ""


def _check_onnxruntime(profile: DeviceProfile, host: HostInfo) -> tuple[str, str]:
    if "onnxruntime" in host.problems:
        return f"ONNX Runtime {host.problems['onnxruntime']}", "pip install onnxruntime"
    missing = [p for p in profile.providers if p not in host.onnxruntime_providers]
    if not missing:
        return "", ""
    version = host.versions.get("onnxruntime", "")
    have = ", ".join(host.onnxruntime_providers) or "none"
    reason = (f"ONNX Runtime {version} here has no {', '.join(missing)} (missing package; "
              f"available: {have})")
    return reason, RUNTIME_SPECS.get("onnxruntime").provider_fix(missing[0]) or profile.setup


def _check_openvino(profile: DeviceProfile, host: HostInfo) -> tuple[str, str]:
    if "openvino" in host.problems:
        return f"OpenVINO {host.problems['openvino']}", "pip install openvino"
    kind = profile.device.upper().split(".", 1)[0].split(":", 1)[0]
    names = [d.name for d in host.openvino_devices]
    if kind in ("AUTO", "HETERO", "MULTI", "BATCH") or any(
            n == profile.device.upper() or n.split(".", 1)[0] == kind for n in names):
        return "", ""
    fix = OPENVINO_DEVICE_FIX.get(kind, profile.setup)
    plugin_problem = host.openvino_plugins.get(kind, "")
    if plugin_problem:
        return (f"OpenVINO's {kind} plugin cannot load (missing driver library: "
                f"{plugin_problem})", fix)
    return (f"OpenVINO sees no {kind} device (no device or driver; devices here: "
            f"{', '.join(names) or 'none'})", fix)


def _check_pytorch(profile: DeviceProfile, host: HostInfo) -> tuple[str, str]:
    if "torch" in host.problems and not host.problems["torch"].startswith("not installed"):
        return f"PyTorch {host.problems['torch']}", "reinstall torch"
    if profile.device.upper().startswith("CUDA") and not host.cuda_devices:
        return (f"PyTorch {host.versions.get('torch', '')} sees no CUDA GPU (no device, or a "
                "CPU-only torch build)",
                "install a CUDA build of torch (pytorch.org, 'Get started') on a host with "
                "an NVIDIA driver")
    return "", ""


def _check_installed(runtime: str):
    """The check of a runtime without a device probe of its own: its package is installed."""
    spec = RUNTIME_SPECS.get(runtime)

    def check(profile: DeviceProfile, host: HostInfo) -> tuple[str, str]:
        if host.versions.get(spec.import_name, "not installed") == "not installed":
            return f"{spec.package} is not installed", f"pip install {spec.package}"
        return "", ""

    return check


# Runtimes whose devices the host probe reports; the others need their package installed.
DEVICE_CHECKS = {"onnxruntime": _check_onnxruntime, "openvino": _check_openvino,
                 "pytorch": _check_pytorch}


def check_runtime(profile: DeviceProfile, runtime: str, host: HostInfo) -> Availability:
    """Whether ``runtime`` can run ``profile``'s device on ``host``.

    A runtime the profile does not list is unavailable, with the profile's runtimes as the fix.
    """
    if runtime not in profile.runtimes:
        return Availability(profile.name, runtime, False,
                            f"the profile does not use {runtime}",
                            f"benchmark a model for {' or '.join(profile.runtimes)} on it")
    mismatch = _host_mismatch(profile, host)
    if mismatch:
        return Availability(profile.name, runtime, False, mismatch,
                            profile.setup or "run it on that device")
    reason, fix = DEVICE_CHECKS.get(runtime, _check_installed(runtime))(profile, host)
    return Availability(profile.name, runtime, not reason, reason, fix)


def check_profile(profile: DeviceProfile, host: HostInfo) -> list[Availability]:
    """One Availability per runtime of the profile, in the profile's order."""
    return [check_runtime(profile, runtime, host) for runtime in profile.runtimes]


def summarize(checks: list[Availability]) -> Availability:
    """The profile as a whole: available when any of its runtimes is; else the first reason."""
    usable = [c for c in checks if c.available]
    if usable:
        return Availability(usable[0].profile, "/".join(c.runtime for c in usable), True)
    first = checks[0]
    return Availability(first.profile, first.runtime, False, first.reason, first.fix)
