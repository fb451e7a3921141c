"""``edgessl backbones``: edgessl's own backbones, and timm's models matching a pattern.

A thin layer over ``edgessl.backbones.catalog`` (``describe_backbones``, ``find_timm_models``);
nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

from edgessl.cli.app import app, echo, user_errors

if TYPE_CHECKING:
    from edgessl.backbones.catalog import BackboneInfo, TimmModelInfo


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
    """List edgessl's backbones (parameters, feature width, small-image handling) and, with
    --timm, timm's models and their pretrained weights. Nothing is downloaded."""
    with user_errors():
        from edgessl.backbones.catalog import describe_backbones, find_timm_models

        infos = describe_backbones(image_size)
        models = find_timm_models(timm_pattern) if timm_pattern else None
    if as_json:
        echo(json.dumps({"image_size": image_size, "edgessl": [asdict(i) for i in infos],
                         **({"timm": [asdict(m) for m in models]} if models else {})},
                        indent=2))
        return
    for line in _lines(infos, image_size):
        echo(line)
    if models:
        echo("")
        for line in _timm_lines(models, timm_pattern):
            echo(line)
