"""The models a deploy bundle holds: exported from a checkpoint for the profile (INT8 quantized
for the profile's CPU, not the build host's) or copied from an exported artifact, each with its
``bundle.json`` entry, and the profile's recommended model listed first."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from edgessl.deploy.bundle_config import FORMAT_FOR_RUNTIME, DeployConfig
from edgessl.errors import ConfigError, unknown_choice

log = logging.getLogger("edgessl")


def default_first(profile, models: list[dict]) -> tuple[list[dict], dict]:
    """The models with the profile's recommended one first (the runner's default, also for an
    older runner that takes the first), and the recommendation for bundle.json."""
    from edgessl.deploy.target import recommend

    recommended = recommend(profile, models, {m["name"]: m.get("validation") for m in models})
    first = [m for m in models if m["name"] == recommended["model"]]
    return first + [m for m in models if m["name"] != recommended["model"]], recommended


def bundle_models(model: Path, profile, runtime: str, config: DeployConfig, tmp: Path
                  ) -> list[dict]:
    """Export (a checkpoint) or copy (an artifact) into ``tmp/models/<format>-<precision>/``."""
    from edgessl.runtime.model import runtime_of

    fmt = FORMAT_FOR_RUNTIME[runtime]
    if model.is_file():
        own_runtime = runtime_of(model)[0]
        if own_runtime != runtime:
            raise ConfigError(f"'{model.name}' runs on {own_runtime}, but this bundle uses "
                              f"{runtime}; pass --runtime {own_runtime} (if profile "
                              f"'{profile.name}' lists it) or the checkpoint folder")
        if config.precisions:
            raise ConfigError("--precision applies to a checkpoint; this artifact is exported "
                              "already (pass the checkpoint folder to export other precisions)")
        entry = _copy_artifact(model, tmp, fmt)
        if entry["precision"] not in profile.precisions:
            log.warning("'%s' is %s, which profile '%s' does not list (%s); the device may "
                        "convert or reject it", model.name, entry["precision"], profile.name,
                        ", ".join(profile.precisions))
        return [entry]
    from edgessl.deploy.target import profile_cpu
    from edgessl.export.schemes import QuantizeConfig

    # INT8 is quantized for the device's CPU as the profile states it, never the build host's.
    quant = QuantizeConfig(target=profile_cpu(profile))
    return [_export(model, fmt, precision, config, tmp, quant)
            for precision in _precisions(profile, fmt, config.precisions)]


def _precisions(profile, fmt: str, wanted: tuple[str, ...]) -> list[str]:
    from edgessl.export.formats import FORMATS

    possible = FORMATS.get(fmt).precisions
    for precision in wanted:
        if precision not in possible:
            raise unknown_choice(f"{fmt} precision", precision, possible)
    if wanted:
        return list(dict.fromkeys(wanted))
    chosen = [p for p in profile.precisions if p in possible]
    skipped = [p for p in profile.precisions if p not in possible]
    if skipped:
        log.warning("profile '%s' lists %s, which edgessl cannot export to %s; the bundle "
                    "has %s only", profile.name, ", ".join(skipped), fmt, ", ".join(chosen))
    if not chosen:
        raise ConfigError(f"profile '{profile.name}' lists precisions "
                          f"{', '.join(profile.precisions)}; {fmt} exports only "
                          f"{', '.join(possible)}")
    return chosen


def _export(checkpoint: Path, fmt: str, precision: str, config: DeployConfig, tmp: Path,
            quant) -> dict:
    from edgessl.export.api import ExportConfig, export_model
    from edgessl.export.schemes import QuantizeConfig

    name = f"{fmt}-{precision}"
    result = export_model(checkpoint, ExportConfig(
        format=fmt, precision=precision, data=config.data, out=str(tmp / "models" / name),
        quant=quant if precision == "int8" else QuantizeConfig()))
    return _entry(name, result.path, tmp, result.report)


def _copy_artifact(artifact: Path, tmp: Path, fmt: str) -> dict:
    from edgessl.runtime import load

    meta = load(artifact).meta  # checks it is a readable artifact with edgessl metadata
    name = f"{fmt}-{meta.precision}"
    folder = tmp / "models" / name
    folder.mkdir(parents=True)
    from edgessl.runtime_specs import artifact_files

    for f in [*artifact_files(artifact), artifact.parent / "report.json",
              artifact.parent / "metadata.json"]:
        if f.is_file():
            shutil.copy2(f, folder / f.name)
    return _entry(name, folder / artifact.name, tmp, _read_report(folder / "report.json"))


def _read_report(path: Path) -> dict | None:
    import json

    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


# Export report entries a bundle records per model: how it was quantized and how it validated.
VALIDATION_KEYS = ("scheme", "scheme_reason", "top1_drop_points", "top1_agreement", "cosine",
                   "val_images")


def _entry(name: str, path: Path, tmp: Path, report: dict | None) -> dict:
    from edgessl.runtime import load

    meta = load(path).meta
    entry = {"name": name, "path": path.relative_to(tmp).as_posix(), "format": meta.format,
             "precision": meta.precision, "task": meta.task, "labels": list(meta.labels),
             "image_size": meta.image_size}
    if report is not None:
        entry["validation"] = {k: report[k] for k in VALIDATION_KEYS
                               if isinstance(report.get(k), (str, int, float))
                               and not isinstance(report.get(k), bool)}
    return entry

