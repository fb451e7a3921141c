"""``edgessl export``: a checkpoint -> a validated ONNX / OpenVINO artifact (fp32, fp16, int8).

A text classifier folder (its card says so) goes to
``edgessl.text.workflow.export_text_checkpoint``; every other checkpoint to the image path.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors
from edgessl.cli.finetune_cmd import flags_given
from edgessl.export.formats import FORMATS

INT8 = "INT8 options"
# Options of the image export only; given for a text classifier they are an error.
IMAGE_ONLY = ("output", "embed_preprocessing", "static_batch", "simplify", "calib", "scheme",
              "target_isa", "per_channel", "calib_method", "preset", "bias_correction",
              "model_type", "ignore", "max_drop")


@app.command("export")
def export(
    ctx: typer.Context,
    model: Path = typer.Argument(..., metavar="MODEL", help="Checkpoint folder (a classifier "
                                 "from edgessl finetune, image or text, or a backbone for "
                                 "--output embedding)."),
    format: str = typer.Option("onnx", "--format",
                               help="Export format: " + ", ".join(FORMATS.names()) + "."),
    precision: str = typer.Option("fp32", "--precision",
                                  help="fp32, fp16 or int8 (each format lists its own)."),
    output: str | None = typer.Option(
        None, "--output", help="logits, probabilities, embedding or embedding-l2.",
        show_default="logits for a classifier, embedding for a backbone"),
    embed_preprocessing: bool = typer.Option(
        False, "--embed-preprocessing",
        help="The artifact takes uint8 [N, S, S, 3] pixels; scaling, mean/std and layout run "
             "inside the graph."),
    static_batch: int | None = typer.Option(
        None, "--static-batch", help="Fix the batch size (NPUs need static shapes).",
        show_default="dynamic"),
    simplify: bool = typer.Option(False, "--simplify",
                                  help="Simplify the ONNX graph (onnxslim) if outputs stay equal."),
    calib: Path | None = typer.Option(
        None, "--calib", rich_help_panel=INT8,
        help="Folder of calibration images.", show_default="the checkpoint's training images"),
    calib_size: int = typer.Option(300, "--calib-size", rich_help_panel=INT8,
                                   help="Calibration images or texts (seeded sample); text: "
                                        "OpenVINO int8 only, default 128."),
    scheme: str = typer.Option(
        "auto", "--scheme", rich_help_panel=INT8,
        help="auto (safe for --target-isa), or ONNX Runtime u8s8, u8s8-w7, s8s8, u8u8; NNCF w8, "
             "w7-first, w7 (w7 = 7-bit weights)."),
    target_isa: str = typer.Option(
        "host", "--target-isa", rich_help_panel=INT8,
        help="CPU the artifact runs on, for --scheme auto: host, vnni or avx2 (no VNNI)."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", rich_help_panel=INT8,
                                     help="Weight scales per output channel or per tensor."),
    calib_method: str | None = typer.Option(
        None, "--calib-method", rich_help_panel=INT8,
        help="ONNX Runtime range estimation: minmax, entropy or percentile.",
        show_default="minmax"),
    preset: str | None = typer.Option(
        None, "--preset", rich_help_panel=INT8,
        help="NNCF preset: performance or mixed.", show_default="NNCF's for the model type"),
    bias_correction: bool | None = typer.Option(
        None, "--bias-correction/--no-bias-correction", rich_help_panel=INT8,
        help="NNCF fast bias correction.", show_default="bias-correction"),
    model_type: str = typer.Option(
        "auto", "--model-type", rich_help_panel=INT8,
        help="cnn, transformer (quantize matrix products only), or auto (transformer when "
             "the model has attention)."),
    ignore: list[str] = typer.Option(
        [], "--ignore", metavar="REGEX", rich_help_panel=INT8,
        help="Regular expression of layer names to keep in float (repeatable)."),
    max_drop: float | None = typer.Option(
        None, "--max-drop", rich_help_panel=INT8,
        help="Accuracy-aware INT8 (NNCF): largest top-1 loss vs fp32 on the val data, as a "
             "fraction (0.01 = 1 point); fails if it cannot be met."),
    data: Path | None = typer.Option(
        None, "--data",
        help="Labeled folder (or text set) to validate on.",
        show_default="the checkpoint's val split"),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder.",
        show_default="export/<MODEL>-<format>-<precision>"),
    fuse_tokenizer: bool = typer.Option(
        False, "--fuse-tokenizer",
        help="Text, OpenVINO: put the tokenizer inside the IR (strings in, logits out; needs "
             "openvino-tokenizers on the device, CPU only)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output folder."),
) -> None:
    """Export to ONNX or OpenVINO (fp32, fp16 or int8) and check the artifact against PyTorch."""
    with user_errors():
        from edgessl.text.workflow import is_text_checkpoint

        if is_text_checkpoint(model):
            from edgessl.text.workflow import export_text_checkpoint, refuse_image_flags

            refuse_image_flags(flags_given(ctx, IMAGE_ONLY), f"classifier '{model}'")
            sizes = flags_given(ctx, ["calib_size"])
            result = export_text_checkpoint(model, format, precision, out=out, data=data,
                                            calib_size=calib_size if sizes else None,
                                            force=force, fuse_tokenizer=fuse_tokenizer)
            echo(render_text_report(result))
            return
        if fuse_tokenizer:
            from edgessl.text.workflow import fusion_needs_text

            raise fusion_needs_text(model)
        from edgessl.export.api import ExportConfig, calibration_without_int8, export_model
        from edgessl.export.schemes import QuantizeConfig

        quant = QuantizeConfig(
            scheme=scheme, target_isa=target_isa, per_channel=per_channel,
            calib_method=calib_method, preset=preset, bias_correction=bias_correction,
            model_type=model_type, ignored=tuple(ignore), max_drop=max_drop)
        config = ExportConfig(
            format=format, precision=precision, output=output,
            calib=None if calib is None else str(calib), calib_size=calib_size, quant=quant,
            embed_preprocessing=embed_preprocessing, static_batch=static_batch,
            simplify=simplify, data=None if data is None else str(data),
            out=None if out is None else str(out), force=force,
        )
        calibration = flags_given(ctx, ["calib", "calib_size"])
        # never calibration settings left unused (an unknown precision is export_model's)
        if calibration and precision != "int8" and precision in FORMATS.get(format).precisions:
            raise calibration_without_int8(calibration, precision)
        result = export_model(model, config)
        echo(render_report(result.report))


def _top1_rows(report: dict) -> list[tuple[str, str]]:
    if report.get("top1_artifact") is None:
        return [("top-1", "not measured (unlabeled data)")]
    return [
        ("top-1", f"{report['top1_artifact']:.2%} artifact vs {report['top1_pytorch']:.2%} "
                  f"PyTorch on {report['val_images']} val images ({report['top1_method']})"),
        ("drop", f"{report['top1_drop_points']:+.2f} points "
                 f"(agreement {report['top1_agreement']:.2%})"),
    ]


def render_report(report: dict) -> str:
    """The export report as a compact two-column table."""
    spec = report.get("input") or {}
    rows = [
        ("format", f"{report['format']} {report['precision']} ({report.get('scheme', '')}), "
                   f"output {report.get('output', 'logits')}"),
        ("artifact", report["path"]),
        ("input", f"{spec.get('dtype', 'float32')} {spec.get('layout', 'NCHW')} "
                  f"{spec.get('shape', '')}"),
        ("size", f"{report['size_mib']:.2f} MiB ({report.get('size_vs_fp32', 1):.2f}x fp32)"),
        ("runs on", f"{report['execution']['runtime']} {report['execution']['provider']}"),
        ("max |diff|", f"{report['max_abs_diff']:.3g} (mean {report['mean_abs_diff']:.3g}, "
                       f"cosine {report['cosine']:.6f})"),
        *_top1_rows(report),
    ]
    if report.get("scheme_reason"):
        rows.append(("why", report["scheme_reason"]))
    if "kept_in_float" in report:
        kept = report["kept_in_float"]
        rows.append(("kept float", f"{len(kept)} of {report.get('compute_layers', '?')} layers"
                                   + (f": {', '.join(kept[:6])}" if kept else "")
                                   + (" ..." if len(kept) > 6 else "")))
    if report.get("simplify"):
        rows.append(("simplify", report["simplify"]))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _text_input(meta: dict) -> str:
    fusion = meta.get("tokenizer_fusion")
    if fusion:
        return (f"one string (tokenizer fused into the IR by {fusion['by']}, padded to "
                f"{meta['max_length']} tokens; ids checked on {fusion['ids_checked_on_texts']} "
                f"texts; {fusion['device']} only)")
    return f"int64 input_ids, attention_mask [1, {meta['max_length']}] + {meta['tokenizer_file']}"


def render_text_report(result) -> str:
    """A text export's folder, size, runtime and agreement with PyTorch, two columns."""
    meta, check = result.sidecar, result.validation
    rows = [("format", f"{meta['model_file']} {meta['precision']} "
                       f"({meta['quantization']['scheme']})"),
            ("artifact", str(result.folder)),
            ("input", _text_input(meta)),
            ("size", f"{result.size_mib:.2f} MiB"),
            ("runs on", check["runtime"]),
            ("max |diff|", f"{check['max_abs_logit_diff']:.3g} (logits, {check['texts']} texts)"),
            ("agreement", f"{check['top1_agreement']:.2%} top-1 with PyTorch")]
    if "top1_artifact" in check:
        rows.append(("top-1", f"{check['top1_artifact']:.2%} artifact vs "
                              f"{check['top1_pytorch']:.2%} PyTorch on the val texts"))
    kept = meta["quantization"].get("kept_float")
    if kept:
        rows.append(("kept float", ", ".join(kept)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
