"""How to build a deploy bundle (``DeployConfig``), and what a device profile decides for it:
the runtime, the device that runtime is told to run on, and ``requirements.txt``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from edgessl.config import MAX_RUNS, Range, check_fields
from edgessl.errors import ConfigError, unknown_choice
from edgessl.runtime_specs import RUNTIME_SPECS, bundle_runtimes

# The runtimes a bundle can use (those that run exported artifacts) and their export format.
FORMAT_FOR_RUNTIME = {s.name: s.format for s in bundle_runtimes()}
BASE_REQUIREMENTS = ("numpy>=1.26", "pillow>=10.0", "tomli>=2.0; python_version < '3.11'")


@dataclass(frozen=True)
class DeployConfig:
    """How to build a bundle.

    Attributes:
        profile: a shipped profile name ("cpu") or a profile ``.toml`` path.
        out: the bundle folder to write.
        runtime: onnxruntime or openvino; None = the profile's first one a bundle can use.
        precisions: precisions to export (a checkpoint only); empty = the profile's.
        data: labeled folder for smoke images and the host baseline; None = the model's data.
        smoke_per_class: val images per class copied as the smoke-test set (0 = none).
        baseline: measure the host's accuracy and latency into ``baseline.json``.
        warmup, iterations: for the host baseline.
        archive: also write ``<out>.tar.gz``.
        fuse_tokenizer: a text classifier's OpenVINO exports get the tokenizer inside the IR.
        force: replace an existing ``out`` (and archive).
    """

    FIELD_LABEL = "--"  # messages name fields as the flags of edgessl deploy

    profile: str = "cpu"
    out: str = "bundle"
    runtime: str | None = None
    precisions: tuple[str, ...] = ()
    data: str | None = None
    smoke_per_class: Annotated[int, Range(ge=0, le=1000, note="0 = none")] = 2
    baseline: bool = True
    warmup: Annotated[int, Range(ge=0, le=MAX_RUNS)] = 10
    iterations: Annotated[int, Range(ge=1, le=MAX_RUNS)] = 100
    archive: bool = False
    fuse_tokenizer: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


def choose_runtime(profile, wanted: str | None) -> str:
    """The runtime a bundle for ``profile`` uses: ``wanted``, or the profile's first usable one.

    Raises:
        ConfigError: when ``wanted`` is not one of the profile's, or the profile has none usable.
    """
    usable = [r for r in profile.runtimes if r in FORMAT_FOR_RUNTIME]
    if wanted is not None:
        if wanted not in usable:
            raise unknown_choice(f"runtime for profile '{profile.name}'", wanted, usable or
                                 list(FORMAT_FOR_RUNTIME))
        return wanted
    if not usable:
        raise ConfigError(f"profile '{profile.name}' lists only {', '.join(profile.runtimes)}; "
                          f"a bundle needs {' or '.join(FORMAT_FOR_RUNTIME)} in its runtimes (the "
                          "runtimes of exported models)")
    return usable[0]


def device_for(profile, runtime: str) -> str:
    """What the bundle's runtime is told to run on: the first ORT provider, or the device."""
    if runtime == "onnxruntime" and profile.providers:
        return profile.providers[0]
    return profile.device


def requirements(profile, runtime: str) -> list[str]:
    """requirements.txt lines: numpy, Pillow and the runtime package at the host's version."""
    from importlib import metadata

    spec = RUNTIME_SPECS.get(runtime)
    package = spec.provider_package(profile.providers[0]) if profile.providers else spec.package
    try:  # pin what the host validated; another package (a GPU build) is left unpinned
        line = f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        line = package
    return [*BASE_REQUIREMENTS, line]


def profile_file(name_or_path: str) -> Path:
    """The TOML file ``load_profile`` reads for ``name_or_path``."""
    from edgessl.devices.profile import profiles_dir

    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        return Path(text)
    return profiles_dir() / f"{text}.toml"
