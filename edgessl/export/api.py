"""``export_model``: a classifier checkpoint -> a validated ONNX / OpenVINO artifact folder.

The output folder (default ``export/<checkpoint>-<format>-<precision>/``) holds the artifact
(``model.onnx``, or ``model.xml`` + ``model.bin``) and ``report.json``; it is assembled under
a temporary name and renamed into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edgessl.errors import CheckpointError, ConfigError, unknown_choice

log = logging.getLogger("edgessl")

ARTIFACT_STEM = "model"
REPORT_FILE = "report.json"
# Above this, fp32 logits differ from PyTorch by more than float32 kernels explain.
FP32_WARN_DIFF = 1e-3


@dataclass(frozen=True)
class ExportConfig:
    """How to export.

    Attributes:
        format: a name in ``FORMATS`` ("onnx", "openvino").
        precision: one of the format's precisions ("fp32", "int8").
        calib: folder of calibration images for int8; None = the checkpoint's training data.
        calib_size: number of calibration images (seeded sample).
        data: labeled folder to validate on; None = the checkpoint's own data (val split).
        out: output folder; None = ``export/<checkpoint>-<format>-<precision>``.
        force: overwrite an existing output folder.
    """

    format: str = "onnx"
    precision: str = "fp32"
    calib: str | None = None
    calib_size: int = 300
    data: str | None = None
    out: str | None = None
    force: bool = False


@dataclass(frozen=True)
class ExportResult:
    """What ``export_model`` produced.

    Attributes:
        path: the artifact (``.onnx`` or ``.xml``) in its final place.
        report: the validation report (also written as ``report.json`` beside it).
    """

    path: Path
    report: dict


def default_out(checkpoint: Path, format: str, precision: str) -> Path:
    """``export/<checkpoint folder name>-<format>-<precision>``, relative to the cwd."""
    return Path("export") / f"{checkpoint.resolve().name}-{format}-{precision}"


def _check_config(config: ExportConfig):
    from edgessl.export.formats import FORMATS

    fmt = FORMATS.get(config.format)
    if config.precision not in fmt.precisions:
        raise unknown_choice(f"{fmt.name} precision", config.precision, fmt.precisions)
    if config.calib_size < 1:
        raise ConfigError(f"--calib-size must be ≥ 1, got {config.calib_size}")
    return fmt


def export_model(checkpoint: str | Path, config: ExportConfig = ExportConfig()) -> ExportResult:
    """Export a classifier checkpoint and validate the artifact against PyTorch.

    Args:
        checkpoint: a classifier checkpoint folder (from ``edgessl finetune``).
        config: format, precision, calibration and output settings.

    Returns:
        The artifact's path and the validation report (see ``validate_artifact``).

    Raises:
        ConfigError: unknown format or precision (with the valid choices).
        CheckpointError: not a checkpoint, or a backbone checkpoint without a classifier head.
        OutputExistsError: the output folder exists and ``config.force`` is False.
        DataError: no calibration or validation images.
    """
    from edgessl import __version__
    from edgessl.artifact import ArtifactMeta
    from edgessl.checkpoint import WEIGHTS_FILE, read_card
    from edgessl.export.formats import ExportRequest
    from edgessl.io import atomic_dir, file_sha256, write_json
    from edgessl.models import load_model
    from edgessl.runtimes.registry import RUNTIMES

    fmt = _check_config(config)
    checkpoint = Path(checkpoint)
    card = read_card(checkpoint)
    if card.kind != "classifier":
        raise CheckpointError(f"'{checkpoint}' is a {card.kind} checkpoint without a classifier "
                              "head; run `edgessl finetune` on it first and export the result")
    out = Path(config.out) if config.out else default_out(checkpoint, fmt.name, config.precision)
    model, card = load_model(checkpoint)
    meta = ArtifactMeta(
        labels=tuple(card.labels), image_size=card.image_size, mean=tuple(card.mean),
        std=tuple(card.std), format=fmt.name, precision=config.precision,
        source_sha256=file_sha256(checkpoint / WEIGHTS_FILE), edgessl_version=__version__,
        extra={"backbone": card.backbone.get("name"), "method": card.method,
               "checkpoint": checkpoint.resolve().name, "data": dict(card.data)},
    )
    with atomic_dir(out, force=config.force) as tmp:
        calibration = None
        if config.precision == "int8":
            from edgessl.export.calibration import calibration_set

            calibration = calibration_set(card, config.calib, config.calib_size)
            log.info("calibrating on %d images from %s", len(calibration), calibration.source)
        log.info("exporting %s to %s %s", checkpoint, fmt.name, config.precision)
        written = fmt.export(ExportRequest(model, meta, tmp, ARTIFACT_STEM, config.precision,
                                           calibration))
        report = _validate(RUNTIMES.get(fmt.runtime).load(written), model, card, config)
        report = {"format": fmt.name, "precision": config.precision,
                  "path": str(out / written.name), "checkpoint": str(checkpoint),
                  "source_sha256": meta.source_sha256, **report}
        write_json(tmp / REPORT_FILE, report)
    return ExportResult(out / written.name, report)


def _validate(loaded, model, card, config: ExportConfig) -> dict:
    from edgessl.export.validate import validate_artifact

    report = validate_artifact(loaded, model, card, config.data)
    report["scheme"] = (loaded.meta.extra or {}).get("scheme", config.precision)
    if config.precision == "fp32" and report["max_abs_diff"] > FP32_WARN_DIFF:
        log.warning("fp32 artifact differs from PyTorch by up to %.3g in the logits; "
                    "check the runtime's inference precision", report["max_abs_diff"])
    return report
