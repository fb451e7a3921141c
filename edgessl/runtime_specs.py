"""What each runtime is, as data: the one table that profiles, bundles, artifact loading, the
files of an artifact and availability hints derive from.

A ``RuntimeSpec`` says which module implements the runtime, which pip package and import name
provide it, which export format and file suffixes it runs, which devices it takes, whether it runs
without PyTorch, where its accelerators come from and which files make up one of its artifacts
(``artifact_files``). This module imports nothing but the standard library and
``edgessl.registry`` (``edgessl.safety`` to read an ONNX file's external data), so a bundle on a
device reads it without torch, and reading a profile imports no runtime.

Adding a runtime: its module (``load`` and ``accepts``; see ``edgessl.backends.base``) plus one
``RUNTIME_SPECS.register`` line here. Its availability is then "its package is installed"; a
runtime with devices to probe adds its check to ``edgessl.devices.availability``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgessl.registry import Registry


@dataclass(frozen=True)
class RuntimeSpec:
    """One runtime.

    Attributes:
        name: the name profiles, ``--runtime`` and results use.
        module: the module that loads and runs artifacts for it.
        package: the pip package that provides it.
        import_name: the Python module the package installs.
        format: the export format whose artifacts it runs; None = edgessl checkpoints.
        suffixes: the artifact file suffixes it opens (checkpoints: a folder, none).
        torch_free: runs without PyTorch (a bundle for it needs no torch on the device).
        devices: device names it takes; empty = whatever the runtime itself reports.
        providers: (provider, pip package, how to get it) for accelerators that ship
            separately (ONNX Runtime's execution providers).
        companions: suffixes of files that belong to an artifact under the same stem (an
            OpenVINO ``.xml`` has its weights in ``.bin``).
        external_data: the artifact names further files inside it (ONNX external tensor
            data, found by ``edgessl.safety.check_onnx_external_data``).
        inference_precisions: compute precisions a profile may ask it for
            (``DeviceProfile.inference_precision``); empty = it has no such setting.
    """

    name: str
    module: str
    package: str
    import_name: str
    format: str | None
    suffixes: tuple[str, ...]
    torch_free: bool
    devices: tuple[str, ...] = ()
    providers: tuple[tuple[str, str, str], ...] = ()
    companions: tuple[str, ...] = ()
    external_data: bool = False
    inference_precisions: tuple[str, ...] = ()

    def suffix_text(self) -> str:
        return "/".join(self.suffixes) or "a checkpoint folder"

    def provider_package(self, provider: str) -> str:
        """The pip package that carries ``provider`` (the runtime's own when not listed)."""
        return next((p for name, p, _ in self.providers if name == provider), self.package)

    def provider_fix(self, provider: str) -> str | None:
        """How to get ``provider`` on a host, or None when the table does not know it."""
        return next((fix for name, _, fix in self.providers if name == provider), None)


_ORT_GPU = "pip uninstall onnxruntime && pip install onnxruntime-gpu"
RUNTIME_SPECS: Registry[RuntimeSpec] = Registry("runtime")
RUNTIME_SPECS.register("onnxruntime", RuntimeSpec(
    "onnxruntime", "edgessl.backends.onnxruntime_rt", "onnxruntime", "onnxruntime", "onnx",
    (".onnx",), torch_free=True, providers=(
        ("CUDAExecutionProvider", "onnxruntime-gpu",
         f"{_ORT_GPU} (needs an NVIDIA driver, CUDA 12 and cuDNN 9)"),
        ("TensorrtExecutionProvider", "onnxruntime-gpu",
         f"{_ORT_GPU} tensorrt (needs an NVIDIA driver, CUDA 12, TensorRT 10)"),
        ("QNNExecutionProvider", "onnxruntime-qnn",
         "pip install onnxruntime-qnn (Windows on Snapdragon, ARM64 Python)"),
        ("CoreMLExecutionProvider", "onnxruntime",
         "pip install onnxruntime on macOS (the CoreML EP ships in the macOS wheel only)"),
        ("OpenVINOExecutionProvider", "onnxruntime-openvino",
         "pip uninstall onnxruntime && pip install onnxruntime-openvino"),
        ("DmlExecutionProvider", "onnxruntime-directml",
         "pip uninstall onnxruntime && pip install onnxruntime-directml (Windows)"),
        ("ROCMExecutionProvider", "onnxruntime-rocm",
         "install ONNX Runtime built for ROCm (AMD's onnxruntime-rocm wheel)"),
        ("MIGraphXExecutionProvider", "onnxruntime-migraphx",
         "install ONNX Runtime built for MIGraphX (AMD's wheel)"),
        ("XnnpackExecutionProvider", "onnxruntime", "build ONNX Runtime with --use_xnnpack"),
        ("ACLExecutionProvider", "onnxruntime",
         "build ONNX Runtime with --use_acl (Arm Compute Library)"),
        ("ArmNNExecutionProvider", "onnxruntime", "build ONNX Runtime with --use_armnn"),
    ), external_data=True))
RUNTIME_SPECS.register("openvino", RuntimeSpec(
    "openvino", "edgessl.backends.openvino_rt", "openvino", "openvino", "openvino", (".xml",),
    torch_free=True, companions=(".bin",), inference_precisions=("f32", "bf16", "f16")))
RUNTIME_SPECS.register("executorch", RuntimeSpec(
    "executorch", "edgessl.backends.executorch_rt", "executorch", "executorch", "executorch",
    (".pte",), torch_free=False, devices=("CPU",), companions=(".json",)))
RUNTIME_SPECS.register("pytorch", RuntimeSpec(
    "pytorch", "edgessl.backends.torch_rt", "torch", "torch", None, (), torch_free=False,
    devices=("CPU", "CUDA")))


def runtime_names() -> tuple[str, ...]:
    return tuple(RUNTIME_SPECS.names())


def runtime_for_suffix(suffix: str) -> RuntimeSpec | None:
    """The runtime that opens artifacts ending in ``suffix`` (".onnx"), or None."""
    return next((s for _, s in RUNTIME_SPECS.items() if suffix.lower() in s.suffixes), None)


def runtime_for_format(fmt: str) -> RuntimeSpec:
    """The runtime that runs artifacts of export format ``fmt``."""
    found = next((s for _, s in RUNTIME_SPECS.items() if s.format == fmt), None)
    if found is None:
        raise KeyError(f"no runtime runs export format '{fmt}'")
    return found


def artifact_kinds() -> str:
    """The exported files edgessl runs, for help texts: ".onnx (onnxruntime), ..."."""
    return ", ".join(f"{s.suffix_text()} ({s.name})" for s in bundle_runtimes())


def bundle_runtimes() -> tuple[RuntimeSpec, ...]:
    """The runtimes a deploy bundle can use: those that run exported artifacts (not edgessl
    checkpoints). Most run without PyTorch; ``torch_free`` says which."""
    return tuple(s for _, s in RUNTIME_SPECS.items() if s.format)


def companion_files(path: str | Path) -> list[Path]:
    """Files that belong to the artifact at ``path`` under its stem (an OpenVINO ``.xml``'s
    ``.bin``), whether or not they exist; none for a suffix no runtime opens."""
    path = Path(path)
    spec = runtime_for_suffix(path.suffix)
    return [path.with_suffix(s) for s in spec.companions] if spec else []


def artifact_files(path: str | Path) -> list[Path]:
    """The files the artifact at ``path`` consists of, as its runtime reads them: the file,
    its companions (``.bin``) and the external data an ONNX model names (never a file outside
    its folder: see ``edgessl.safety.check_onnx_external_data``). Only files that exist.

    Raises:
        CheckpointError: an ONNX model whose external data points outside its folder.
    """
    path = Path(path)
    files = [path, *companion_files(path)]
    spec = runtime_for_suffix(path.suffix)
    if spec is not None and spec.external_data and path.is_file():
        from edgessl.safety import check_onnx_external_data

        files += check_onnx_external_data(path)
    return [f for f in dict.fromkeys(files) if f.is_file()]


def artifact_size_mib(path: str | Path) -> float:
    """The artifact's size on disk in MiB, every file of it (``artifact_files``)."""
    return sum(f.stat().st_size for f in artifact_files(path)) / 2**20
