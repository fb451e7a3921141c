"""``edgessl pretrain``: self-supervised pretraining of an image backbone or a text encoder.

DATA that is unlabeled text (a ``.txt`` file, or a folder holding only ``.txt`` files) runs
``edgessl.text.pretrain.pretrain_text`` (``--method simcse`` or ``mlm``, ``--backbone`` a text
start or a Hugging Face folder); flags that only images have are refused before any work,
and the text-only flags (``--steps``, ``--max-length``) are refused for images. For images,
every flag left out keeps the value of the ``--config`` recipe, else the default of
``PretrainConfig``; ``--aug`` and ``--opt`` change single fields of the method's augmentation
preset and options. Run under ``torchrun --nproc_per_node N -m edgessl pretrain ...`` for DDP.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from edgessl.cli.app import app, echo, user_errors


@app.command("pretrain")
def pretrain_command(
    data: Path | None = typer.Argument(
        None, help="Folder of unlabeled images, or unlabeled text: a .txt file or a folder of "
                   ".txt files, one example per line.", show_default="the built-in digits"),
    config: Path | None = typer.Option(
        None, "--config", help="TOML recipe of these settings; flags given here override it."),
    method: str | None = typer.Option(
        None, help="SSL method: simclr, moco, byol, dino, vicreg or mae; for text simcse or "
                   "mlm.", show_default="simclr; simcse for text"),
    backbone: str | None = typer.Option(
        None, help="An edgessl or timm name (timm:NAME), a checkpoint folder or a weights file; "
                   "see 'edgessl backbones'. For text: a text start or a Hugging Face folder.",
        show_default="resnet_tiny; all-minilm-l6-v2 for text"),
    weights: Path | None = typer.Option(
        None, help="Start from these weights (.safetensors, or .pt/.pth read weights-only)."),
    weights_key: str | None = typer.Option(
        None, help="Part of --weights to load (e.g. teacher, student, state_dict)."),
    image_size: int | None = typer.Option(
        None, help="Training resolution in pixels.", show_default="32"),
    epochs: int | None = typer.Option(
        None, help="Passes over the data (with --budget: at most this many).",
        show_default="30, or what fits --budget"),
    steps: int | None = typer.Option(
        None, help="Text only: optimiser steps (instead of --epochs).", show_default="1 epoch"),
    max_length: int | None = typer.Option(
        None, help="Text only: tokens per line (longer lines are cut), at most the encoder's "
                   "limit.", show_default="64"),
    budget: str | None = typer.Option(
        None, help="Time budget, e.g. 20m or 1.5h: the epochs that fit are picked from a "
                   "measured step time.", show_default="none"),
    batch_size: int | None = typer.Option(
        None, help="Images per step, over all processes.",
        show_default="256, halved until an epoch has 16 steps (not below 32)"),
    optimizer: str | None = typer.Option(
        None, help="sgd or adamw.", show_default="the method's"),
    lr: float | None = typer.Option(
        None, help="Peak learning rate.",
        show_default="the method's base LR x batch size / 256, x 0.02 from pretrained weights"),
    freeze: float | None = typer.Option(
        None, help="Share of the backbone's tensors, earliest first, kept frozen.",
        show_default="0.75 from pretrained weights, else 0"),
    hold_norm_stats: bool | None = typer.Option(
        None, "--hold-norm-stats/--update-norm-stats",
        help="Normalise with the backbone's pretrained BatchNorm statistics and keep them.",
        show_default="hold from pretrained weights, update from scratch"),
    weight_decay: float | None = typer.Option(
        None, help="Weight decay, not on norms and biases.",
        show_default="1e-4 for SGD, 0.05 for AdamW"),
    warmup_epochs: int | None = typer.Option(
        None, help="Linear warm-up epochs.", show_default="2"),
    grad_clip: float | None = typer.Option(
        None, help="Clip the gradient norm to this value; 0 turns clipping off.", show_default="0"),
    seed: int | None = typer.Option(None, help="Random seed.", show_default="0"),
    exclude_val: bool | None = typer.Option(
        None, "--exclude-val/--include-val",
        help="For a folder of class folders, leave out the images finetune holds out as val "
             "(same --seed).", show_default="exclude"),
    aug: list[str] | None = typer.Option(
        None, "--aug", metavar="KEY=VALUE",
        help="Augmentation field KEY=VALUE, repeatable (e.g. blur_p=0, crop_scale=0.08,1, "
             "local_crops=4)."),
    opt: list[str] | None = typer.Option(
        None, "--opt", metavar="KEY=VALUE",
        help="Method option KEY=VALUE, repeatable (e.g. temperature=0.1)."),
    hflip: float | None = typer.Option(
        None, help="Flip probability (same as --aug hflip=P).",
        show_default="the method's augmentation preset"),
    eval_data: Path | None = typer.Option(
        None, help="Labeled folder for the online kNN top-1 (train/ + val/ or class folders); "
                   "without it there is no kNN evaluation."),
    eval_every: int | None = typer.Option(
        None, help="Epochs between kNN evaluations.", show_default="1"),
    knn_k: int | None = typer.Option(
        None, help="Neighbours of the kNN classifier.", show_default="20"),
    device: str | None = typer.Option(
        None, help="auto, cpu, cuda or cuda:N.", show_default="auto"),
    precision: str | None = typer.Option(
        None, help="auto (bf16 on GPUs that support it), fp32 or bf16.", show_default="auto"),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="NHWC memory layout.",
        show_default="on for CNNs"),
    compile_model: bool | None = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the backbone.",
        show_default="no-compile"),
    sync_bn: bool | None = typer.Option(
        None, "--sync-bn/--no-sync-bn", help="SyncBatchNorm under torchrun.",
        show_default="no-sync-bn"),
    out: Path | None = typer.Option(
        None, help="Checkpoint folder.", show_default="models/<method>-<backbone>"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the unfinished run in --out (same flags)."),
) -> None:
    """Pretrain a backbone on unlabeled images; writes model.safetensors, card.json and history."""
    from edgessl.config import from_dict
    from edgessl.errors import ConfigError
    from edgessl.ssl.pretrain import PretrainConfig, pretrain
    from edgessl.ssl.recipe import load_recipe, merge, parse_assignments

    flags = {
        "data": str(data) if data else None, "method": method, "backbone": backbone,
        "weights": str(weights) if weights else None, "weights_key": weights_key,
        "image_size": image_size, "epochs": epochs, "budget": budget,
        "batch_size": batch_size, "freeze": freeze, "exclude_val": exclude_val,
        "hold_norm_stats": hold_norm_stats,
        "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
        "warmup_epochs": warmup_epochs, "grad_clip": grad_clip, "seed": seed,
        "aug": aug or None, "hflip": hflip, "opt": opt or None,
        "eval_data": str(eval_data) if eval_data else None, "eval_every": eval_every,
        "knn_k": knn_k, "device": device, "precision": precision,
        "channels_last": channels_last, "compile": compile_model, "sync_bn": sync_bn,
        "out": str(out) if out else None, "force": force or None, "resume": resume or None,
        "config": str(config) if config else None, "steps": steps, "max_length": max_length,
    }
    with user_errors():
        if data is not None and _is_text(data):
            result = _pretrain_text(flags)
        else:
            _refuse(flags, TEXT_ONLY, "only text pretraining has it (DATA is not a .txt file "
                                      "or a folder of .txt files)")
            result = None
    if result is not None:
        echo(f"saved {result.path}  final loss {result.losses[-1]:.4f}  {result.steps} steps  "
             f"{result.seconds:.0f} s")
        return
    with user_errors():
        if resume and force:
            raise ConfigError("--resume continues the run in --out and --force replaces it; "
                              "pass only one of them")
        augment = parse_assignments(aug, "--aug")
        if hflip is not None:
            augment["hflip"] = hflip
        flags = {key: value for key, value in flags.items()
                 if key not in ("aug", "hflip", "opt", "config", *TEXT_ONLY)}
        flags.update({"augment_overrides": augment or None,
                      "method_options": parse_assignments(opt, "--opt") or None})
        recipe = load_recipe(config) if config else {}
        cfg = from_dict(PretrainConfig, merge(recipe, flags),
                        where=f"recipe '{config}'" if config else "pretrain flags",
                        flags={key for key, value in flags.items() if value is not None})
        if config:
            _check_recipe_tables(cfg, recipe, flags, config)
        result = pretrain(cfg)
    if os.environ.get("RANK", "0") != "0":  # torchrun: the first process reports
        return
    last = result.history[-1] if result.history else {}
    knn = f"  kNN top-1 {last['knn_top1']:.1f}%" if last.get("knn_top1") is not None else ""
    echo(f"saved {result.path}  final loss {result.losses[-1]:.4f}{knn}  "
         f"{result.images_per_second:.0f} images/s  {result.seconds:.0f} s")


# Flags of image pretraining that text pretraining does not take, and the reverse.
IMAGE_ONLY = ("weights", "weights_key", "image_size", "budget", "optimizer", "freeze",
              "hold_norm_stats", "warmup_epochs", "exclude_val", "aug", "hflip", "eval_data",
              "eval_every", "knn_k", "precision", "channels_last", "compile", "sync_bn",
              "config")
TEXT_ONLY = ("steps", "max_length")


def _is_text(data: Path) -> bool:
    from edgessl.text.unlabeled import text_files

    return text_files(data) is not None


def _refuse(flags: dict, names: tuple[str, ...], why: str) -> None:
    """One-line ConfigError for the first of ``names`` that was given."""
    from edgessl.errors import ConfigError

    given = [name for name in names if flags.get(name) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"{flag} does not apply here: {why}; leave it out")


def _pretrain_text(flags: dict):
    """Text pretraining from the command's flags (image-only flags refused first)."""
    from edgessl.config import from_dict
    from edgessl.ssl.recipe import parse_assignments
    from edgessl.text.pretrain import TextPretrainConfig, pretrain_text

    _refuse(flags, IMAGE_ONLY, f"'{flags['data']}' is unlabeled text, and only image "
                               "pretraining has it")
    values = {key: flags[key] for key in (
        "data", "method", "epochs", "steps", "batch_size", "lr", "weight_decay", "grad_clip",
        "seed", "device", "max_length", "out", "force", "resume")}
    values["start"] = flags["backbone"]
    values["method_options"] = parse_assignments(flags["opt"], "--opt") or None
    given = {key for key, value in values.items() if value is not None}
    cfg = from_dict(TextPretrainConfig, {k: v for k, v in values.items() if v is not None},
                    where="pretrain flags", flags=given)
    return pretrain_text(cfg)


def _check_recipe_tables(cfg, recipe: dict, flags: dict, path: Path) -> None:
    """Check the recipe's [augment] and [method_options] values (those no flag overrides)
    here, where an error can name the recipe's file; ``pretrain`` checks the merged tables."""
    import dataclasses

    from edgessl.config import from_dict
    from edgessl.ssl import METHODS

    method_cls = METHODS.get(cfg.method)
    for table, base, cls in (
            ("augment_overrides", dataclasses.asdict(cfg.augment or method_cls.augment),
             type(method_cls.augment)),
            ("method_options", {}, method_cls.Config)):
        given = flags.get(table) or {}
        own = {k: v for k, v in recipe.get(table, {}).items() if k not in given}
        name = "augment" if table == "augment_overrides" else "method_options"
        from_dict(cls, {**base, **own}, where=f"recipe '{path}' [{name}]")
