"""``export_model``: a checkpoint -> a validated ONNX / OpenVINO artifact folder.

The output folder (default ``export/<checkpoint>-<format>-<precision>/``) holds the artifact
(``model.onnx``, or ``model.xml`` + ``model.bin``), ``metadata.json`` (the metadata embedded in
the artifact, as a sidecar) and ``report.json`` (the validation report); it is assembled under
a temporary name and renamed into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from edgessl.config import MAX_BATCH, Range, check_fields
from edgessl.errors import ConfigError, unknown_choice
from edgessl.export.schemes import QuantizeConfig

log = logging.getLogger("edgessl")

ARTIFACT_STEM = "model"
REPORT_FILE = "report.json"
SIDECAR_FILE = "metadata.json"
# Above this, fp32 outputs differ from PyTorch by more than float32 kernels explain.
FP32_WARN_DIFF = 1e-3
VERSIONED = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "onnxslim", "executorch",
             "torchao")


@dataclass(frozen=True)
class ExportConfig:
    """How to export.

    Attributes:
        format: a name in ``FORMATS`` ("onnx", "openvino").
        precision: one of the format's precisions ("fp32", "fp16", "int8").
        output: "logits", "probabilities", "embedding" or "embedding-l2"; None = logits for a
            classifier checkpoint, embedding for a backbone checkpoint.
        calib: folder of calibration images for int8; None = the checkpoint's training data.
        calib_size: number of calibration images (seeded sample).
        quant: INT8 settings: scheme, knobs, accuracy-aware ``max_drop``.
        embed_preprocessing: the artifact takes uint8 [N, S, S, 3] pixels and scales,
            normalises and transposes them itself.
        static_batch: fix the batch axis to this size (NPUs need it); None = dynamic.
        simplify: simplify the ONNX graph with onnxslim where outputs do not change.
        data: labeled folder to validate on; None = the checkpoint's own data (val split).
        out: output folder; None = ``export/<checkpoint>-<format>-<precision>``.
        force: overwrite an existing output folder.
    """

    FIELD_LABEL = "--"  # messages name fields as the flags of edgessl export

    format: str = "onnx"
    precision: str = "fp32"
    output: str | None = None
    calib: str | None = None
    calib_size: Annotated[int, Range(ge=1, le=100_000, note="images")] = 300
    quant: QuantizeConfig = QuantizeConfig()
    embed_preprocessing: bool = False
    static_batch: Annotated[int | None, Range(ge=1, le=MAX_BATCH)] = None
    simplify: bool = False
    data: str | None = None
    out: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


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
    from edgessl.export.schemes import check_quantize_config

    fmt = FORMATS.get(config.format)
    if config.precision not in fmt.precisions:
        raise unknown_choice(f"{fmt.name} precision", config.precision, fmt.precisions)
    if config.precision == "int8":
        check_quantize_config(config.quant, fmt.quantizer_for(config.quant))
    elif config.quant != QuantizeConfig():
        raise ConfigError(f"quantization options (--scheme, --max-drop, ...) apply to int8; "
                          f"this export is {config.precision} — add --precision int8")
    elif config.calib is not None:  # calibration images would be ignored: say so
        raise calibration_without_int8(["--calib"], config.precision)
    if config.simplify and fmt.name != "onnx":
        raise ConfigError("--simplify applies to --format onnx (OpenVINO optimises the graph "
                          "itself); drop it")
    return fmt


def calibration_without_int8(flags: list[str], precision: str) -> ConfigError:
    """The error for calibration settings given to an export that does not calibrate.

    (``calib_size`` alone is no error here: callers that export several precisions pass one
    size for all of them; the CLI refuses ``--calib-size`` given by hand.)
    """
    named = " and ".join(flags)
    return ConfigError(f"{named} {'are' if len(flags) > 1 else 'is'} for int8 calibration; "
                       f"this export is {precision} — add --precision int8 or drop {named}")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries an export goes through (absent ones left out)."""
    from importlib import metadata

    from edgessl import __version__

    versions = {"edgessl": __version__}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _meta(card, checkpoint: Path, fmt, config: ExportConfig, output: str, task: str):
    from edgessl.artifact import ArtifactMeta
    from edgessl.checkpoint import WEIGHTS_FILE
    from edgessl.export.onnx_format import INPUT_NAME
    from edgessl.export.preprocessing import input_spec, preprocessing_spec
    from edgessl.io import file_sha256

    extra = {"backbone": card.backbone.get("name"), "method": card.method, "kind": card.kind,
             "checkpoint": checkpoint.resolve().name, "data": dict(card.data)}
    if config.static_batch:
        extra["static_batch"] = config.static_batch
    return ArtifactMeta(
        labels=tuple(card.labels) if task == "classify" else (),
        image_size=card.image_size, mean=tuple(card.mean), std=tuple(card.std), task=task,
        format=fmt.name, precision=config.precision,
        source_sha256=file_sha256(checkpoint / WEIGHTS_FILE),
        edgessl_version=library_versions()["edgessl"], extra=extra, output=output,
        input_spec=input_spec(INPUT_NAME, card.image_size, config.embed_preprocessing,
                              config.static_batch),
        preprocessing=preprocessing_spec(card.mean, card.std, config.embed_preprocessing),
        ssl_method=card.method, versions=library_versions(),
    )


def export_model(checkpoint: str | Path, config: ExportConfig = ExportConfig()) -> ExportResult:
    """Export a checkpoint and validate the artifact against PyTorch.

    Args:
        checkpoint: a classifier checkpoint folder (from ``edgessl finetune``), or a backbone
            checkpoint (from ``edgessl pretrain``) for an embedding output.
        config: format, precision, output, calibration, INT8 and output-folder settings.

    Returns:
        The artifact's path and the validation report (see ``validate_artifact``), with the
        scheme and why it was chosen, layers kept in float, size and ratio to fp32.

    Raises:
        ConfigError: unknown format, precision, output or scheme (with the valid choices).
        CheckpointError: not a checkpoint, or a classifier output of a backbone checkpoint.
        OutputExistsError: the output folder exists and ``config.force`` is False, or another
            run is writing it.
        ConfigError: the output folder is, holds or lies inside the checkpoint or a data folder.
        DataError: no calibration or validation images.
        EdgesslError: PyTorch or the artifact gives NaN or infinite outputs.
        EdgesslError: ``quant.max_drop`` cannot be met.
    """
    from edgessl.checkpoint import read_card
    from edgessl.export.targets import default_output, export_module
    from edgessl.io import atomic_dir, check_outputs, write_json
    from edgessl.models import load_model

    fmt = _check_config(config)
    if fmt.fixed_batch is not None and config.static_batch is None:  # e.g. ExecuTorch: batch 1
        config = dataclasses.replace(config, static_batch=fmt.fixed_batch)
    checkpoint = Path(checkpoint)
    card = read_card(checkpoint)
    out = Path(config.out) if config.out else default_out(checkpoint, fmt.name, config.precision)
    # The checkpoint's own data is read (validation, calibration) when no folder is given:
    # an export written into it would turn up there as a class or split folder.
    own_data = card.data.get("path") if config.data is None or (
        config.precision == "int8" and config.calib is None) else None
    own_data = own_data if isinstance(own_data, str) and own_data.strip() else None
    check_outputs({"--out": out}, {"MODEL": checkpoint, "--calib": config.calib,
                                   "--data": config.data,
                                   "--data (the checkpoint's own, from card.json)": own_data},
                  force=config.force)
    check_export_replaceable(out, config.force)
    output = config.output or default_output(card.kind)
    if config.quant.max_drop is not None and output in ("embedding", "embedding-l2"):
        raise ConfigError("--max-drop needs class scores to measure top-1; export "
                          "--output logits or probabilities, or drop --max-drop")
    model, card = load_model(checkpoint)
    require_finite_weights(model, checkpoint)  # before the exporter: it warns on NaN and inf
    module, task = export_module(model, card.kind, output, str(checkpoint))
    meta = _meta(card, checkpoint, fmt, config, output, task)
    from edgessl.export.validate import validation_set

    samples = validation_set(card, config.data, meta.task)  # before calibration and export
    with atomic_dir(out, force=config.force) as tmp:
        written = fmt.export(_request(module, meta, tmp, card, config, fmt))
        report = _report(written, module, card, config, fmt, checkpoint, meta, samples)
        write_json(tmp / SIDECAR_FILE, _sidecar(written.path))
        write_json(tmp / REPORT_FILE, {**report, "path": str(out / written.path.name)})
        if config.quant.max_drop is not None:
            from edgessl.export.accuracy_control import check_max_drop

            check_max_drop(report, config.quant.max_drop)
        require_quantized(report, config)
    return ExportResult(out / written.path.name, {**report, "path": str(out / written.path.name)})


# What an export folder holds (image and text exports, every format): ``model.*`` and these.
EXPORT_SIDE_FILES = (SIDECAR_FILE, REPORT_FILE, "tokenizer.json", "text_model.json")


def _export_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and (
        path.name.startswith(f"{ARTIFACT_STEM}.") or path.name in EXPORT_SIDE_FILES)


def check_export_replaceable(out: str | Path, force: bool) -> None:
    """``check_replaceable`` for an export folder: --force replaces only an earlier export
    (its model files, sidecar and report), never a folder of other files."""
    from edgessl.io import check_replaceable

    check_replaceable(out, force, "--out", own=_export_file, what="an earlier export")


def require_quantized(report: dict, config: ExportConfig) -> None:
    """Refuse an int8 export that kept every compute layer in float (``--ignore '.*'``, or an
    accuracy search that gave everything back): it is an fp32 model under an int8 name.

    Raises:
        ConfigError: naming the patterns and what to do.
    """
    layers, kept = report.get("compute_layers"), report.get("kept_in_float")
    if config.precision != "int8" or not layers or kept is None or len(kept) < layers:
        return
    why = (f"--ignore {' '.join(repr(p) for p in config.quant.ignored)} matches every one"
           if config.quant.ignored else "the quantizer kept every one in float")
    raise ConfigError(f"the int8 export quantized none of its {layers} compute layers ({why}): "
                      "it would be an fp32 model under an int8 name; narrow --ignore to the "
                      "layers to keep in float, or export --precision fp32")


def require_finite_weights(model, checkpoint: Path) -> None:
    """Refuse a checkpoint whose weights or float buffers hold NaN or infinity, before any
    export work (the exporter's graph rewrites would warn about them, and the artifact could
    only be as broken).

    Raises:
        CheckpointError: naming how many values are bad and the first tensor holding one.
    """
    import torch

    from edgessl.errors import CheckpointError, printable

    bad, first = {"NaN": 0, "infinite": 0}, None
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if not t.is_floating_point():
            continue
        nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
        bad["NaN"] += nan
        bad["infinite"] += inf
        if (nan or inf) and first is None:
            first = name
    if first is not None:
        counts = ", ".join(f"{n} {kind}" for kind, n in bad.items() if n)
        raise CheckpointError(f"checkpoint '{printable(checkpoint)}' has {counts} weight "
                              f"values (first in '{first}'); the checkpoint is broken: fix or "
                              "re-train it before exporting")


def _request(module, meta, tmp: Path, card, config: ExportConfig, fmt):
    from edgessl.export.request import ExportRequest
    from edgessl.export.schemes import resolve_model_type

    calibration = accuracy = None
    if config.precision == "int8":
        from edgessl.export.calibration import calibration_set

        calibration = calibration_set(card, config.calib, config.calib_size)
        log.info("calibrating on %d images from %s", len(calibration), calibration.source)
        if config.quant.max_drop is not None:
            from edgessl.export.accuracy_control import accuracy_data

            accuracy = accuracy_data(card, config.data)
    log.info("exporting %s %s to %s %s", meta.extra["checkpoint"], meta.output, meta.format,
             meta.precision)
    return ExportRequest(module, meta, tmp, ARTIFACT_STEM, config.precision, calibration,
                         config.quant, fmt.quantizer_for(config.quant),
                         resolve_model_type(config.quant, module), accuracy,
                         config.embed_preprocessing, config.static_batch, config.simplify)


def _sidecar(path: Path) -> dict:
    """The metadata as embedded in the artifact (read back through its runtime's reader)."""
    import json

    from edgessl.backends.registry import load_any

    return json.loads(load_any(path).meta.to_json())


def _report(written, module, card, config: ExportConfig, fmt, checkpoint: Path, meta,
            samples) -> dict:
    from edgessl.backends.registry import RUNTIMES
    from edgessl.export.validate import validate_artifact

    loaded = RUNTIMES.get(fmt.runtime).load(written.path)
    checked = validate_artifact(loaded, module, card, config.data, meta.task, samples)
    scheme = written.details.get("scheme_details", {})
    report = {
        "format": fmt.name, "precision": config.precision, "output": meta.output,
        "task": meta.task, "input": meta.input_spec, "checkpoint": str(checkpoint),
        "source_sha256": meta.source_sha256, "scheme": scheme.get("scheme", config.precision),
        "scheme_reason": scheme.get("scheme_reason", ""), "quantization": scheme,
        **checked,
        "fp32_size_mib": round(written.fp32_size_mib, 4),
        "size_vs_fp32": round(checked["size_mib"] / written.fp32_size_mib, 4),
        **{k: v for k, v in written.details.items() if k != "scheme_details"},
    }
    if config.precision == "fp32" and report["max_abs_diff"] > FP32_WARN_DIFF:
        log.warning("fp32 artifact differs from PyTorch by up to %.3g in its outputs; "
                    "check the runtime's inference precision", report["max_abs_diff"])
    return report
