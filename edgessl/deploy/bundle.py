"""``build_bundle``: a model + a device profile -> a folder to copy to the device and run there.

A bundle holds the artifact(s) chosen for the profile (INT8 quantized for the profile's CPU,
not the build host's), ``bundle.json`` (what it holds, and the model the profile recommends,
listed first: ``run.py``'s default), the profile, ``run.py`` (predict, benchmark, smoke test)
with the light part of edgessl it needs under ``lib/``, ``requirements.txt`` for the target,
smoke-test images with the host's predictions for them, the host's baseline accuracy and
latency, and a README for the device.
It is assembled under a temporary name and renamed into place.

The parts live beside this module: ``bundle_config`` (the config; runtime, device and
requirements for the profile), ``bundle_models`` (export or copy the models),
``host_reference`` (smoke images, host baseline) and ``bundle_files`` (runner, vendored
modules, README, archive).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

from edgessl.deploy.bundle_config import (
    DeployConfig,
    choose_runtime,
    device_for,
    profile_file,
    requirements,
)
from edgessl.deploy.bundle_files import write_archive, write_image_bundle_files
from edgessl.deploy.bundle_models import bundle_models, default_first
from edgessl.deploy.host_reference import data_root, host_baseline, smoke_images
from edgessl.errors import CheckpointError


@dataclass(frozen=True)
class BundleResult:
    """What ``build_bundle`` wrote: the folder, the archive (or None) and the bundle.json data."""

    path: Path
    archive: Path | None
    bundle: dict


def build_bundle(model: str | Path, config: DeployConfig) -> BundleResult:
    """Build a deploy bundle for ``model`` (a classifier checkpoint, .onnx or .xml).

    Raises:
        ConfigError: unknown profile, runtime or precision; a model the profile cannot run.
        CheckpointError: a missing or unusable model.
        OutputExistsError: ``config.out`` (or its archive) exists and ``config.force`` is False.
    """
    from edgessl.devices.profile import load_profile
    from edgessl.io import atomic_dir, check_outputs

    profile = load_profile(config.profile)
    runtime = choose_runtime(profile, config.runtime)
    model = Path(model)
    if not model.exists():
        raise CheckpointError(f"model '{model}' does not exist; check the path")
    out = Path(config.out)
    archive = out.with_name(out.name + ".tar.gz") if config.archive else None
    check_outputs({"--out": out, "--archive": archive},
                  {"MODEL": model, "--data": config.data,
                   "--profile": profile_file(config.profile)}, force=config.force)
    with atomic_dir(out, force=config.force) as tmp:
        models, recommended = default_first(profile, bundle_models(model, profile, runtime,
                                                                    config, tmp))
        data = data_root(config, tmp / models[0]["path"])
        bundle = {
            "format": "edgessl-bundle/1", "name": out.name, "source": str(model),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "edgessl_version": _version(), "runtime": runtime,
            "device": device_for(profile, runtime), "profile": dataclasses.asdict(profile),
            "requirements": requirements(profile, runtime), "models": models,
            "recommended": recommended,
            "smoke": smoke_images(tmp, models, data, config.smoke_per_class),
        }
        baseline = host_baseline(tmp, models, data, profile, config) if config.baseline else None
        write_image_bundle_files(tmp, bundle, runtime, profile_file(config.profile), baseline)
    if archive is not None:
        write_archive(out, archive, config.force)
    return BundleResult(out, archive, bundle)


def _version() -> str:
    from edgessl import __version__

    return __version__


def bundle_summary(result: BundleResult) -> str:
    """A few lines for the CLI: what went into the bundle and how to run it."""
    b = result.bundle
    lines = [f"wrote {result.path} ({b['runtime']} on {b['device']}, profile "
             f"{b['profile']['name']})"]
    for m in b["models"]:
        default = "  (default)" if m["name"] == b["recommended"]["model"] else ""
        lines.append(f"  {m['name']:<16} {m['path']}{default}")
        if m["precision"] == "int8" and m.get("validation", {}).get("scheme_reason"):
            lines.append(f"    int8 scheme {m['validation']['scheme']}: "
                         f"{m['validation']['scheme_reason']}")
    lines.append(f"  default model: {b['recommended']['model']} "
                 f"({b['recommended']['reason']}); run.py predict --model NAME picks another")
    lines.append(f"  smoke images: {len(b['smoke']['expected'])}; requirements: "
                 f"{', '.join(b['requirements'])}")
    if result.archive is not None:
        lines.append(f"wrote {result.archive}")
    lines.append(f"on the device: pip install -r requirements.txt && python run.py smoke "
                 f"(see {result.path / 'README.md'})")
    return "\n".join(lines)
