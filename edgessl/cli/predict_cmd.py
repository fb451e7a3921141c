"""``edgessl predict``: classify (or embed) images with an exported model or a checkpoint, or
classify raw strings with an exported text model (``edgessl.text.workflow.predict_texts``,
torch-free)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from edgessl.cli.app import app, check_device_or_profile, echo, user_errors
from edgessl.cli.finetune_cmd import flags_given
from edgessl.runtime_specs import artifact_kinds

log = logging.getLogger("edgessl")

# Options of image prediction only; given with a text model they are an error.
IMAGE_ONLY = ("profile", "device", "batch_size")


def load_for_predict(model: Path, device: str):
    """An exported artifact via edgessl.runtime, or a checkpoint folder via PyTorch."""
    from edgessl.runtime.model import DeployedModel, load

    if model.is_dir():
        from edgessl.backends import torch_rt

        if not torch_rt.accepts(model):
            from edgessl.backends.registry import refuse_export_folder
            from edgessl.errors import CheckpointError

            refuse_export_folder(model)
            raise CheckpointError(f"'{model}' is a folder without card.json; pass a checkpoint "
                                  f"folder or an exported model ({artifact_kinds()})")
        return DeployedModel(torch_rt.load(model, device=device))
    return load(model, device=device)


def device_from_profile(profile: str, model: Path) -> str:
    """The device a profile names for the runtime that runs ``model``."""
    from edgessl.deploy.bundle_config import device_for
    from edgessl.devices.profile import load_profile
    from edgessl.errors import ConfigError
    from edgessl.runtime.model import runtime_of

    prof = load_profile(profile)
    runtime = "pytorch" if model.is_dir() else runtime_of(model)[0]
    if runtime not in prof.runtimes:
        raise ConfigError(f"profile '{prof.name}' runs {', '.join(prof.runtimes)}, not "
                          f"{runtime} ('{model.name}'); export the model for one of those")
    return device_for(prof, runtime)


def check_finite(p, model: Path) -> None:
    """A prediction with NaN or infinite scores (or embedding) is an error, never printed."""
    from edgessl.io import require_finite

    embedding = p.embedding is not None
    require_finite(p.embedding if embedding else [score for _, score in p.top_k],
                   f"the {'embedding' if embedding else 'scores'} of '{p.source}' from "
                   f"'{model}'", "the model is broken (NaN weights, or a mean/std that makes "
                   "its input infinite): export it again from a sound checkpoint")


def format_prediction(p) -> str:
    if p.embedding is not None:
        head = ", ".join(f"{v:.4f}" for v in p.embedding[:4])
        return f"{p.source}  embedding[{p.embedding.size}]  [{head}, ...]"
    return f"{p.source}  " + "  ".join(f"{label} {score:.3f}" for label, score in p.top_k)


@app.command("predict")
def predict(
    ctx: typer.Context,
    model: Path = typer.Argument(
        ..., metavar="MODEL",
        help=f"An exported model ({artifact_kinds()}), a checkpoint folder, or an exported "
             "text model folder (from edgessl export of a text classifier)."),
    images: list[str] | None = typer.Argument(
        None, metavar="IMAGE_OR_DIR...",
        help="Image files and folders (searched recursively); for a text model, the texts "
             "to classify.", show_default=False),
    file: Path | None = typer.Option(
        None, "--file", help="Text model: a UTF-8 file of texts to classify, one per line."),
    top_k: int = typer.Option(1, "--top-k", "-k", help="Labels to show per image."),
    json_path: Path | None = typer.Option(
        None, "--json", help="Write predictions to this JSON file ('-' for stdout)."),
    profile: str | None = typer.Option(
        None, "--profile", help="Device profile (name or .toml) whose device to run on."),
    device: str = typer.Option("CPU", "--device",
                               help="Device to run on (not with --profile, which names one)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, max=4096,
                                   help="Images per run."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --json file."),
) -> None:
    """Classify images (or embed them, for an embedding model), or texts with a text model:
    label and probability each."""
    with user_errors():
        from edgessl.io import check_outputs, dumps_json
        from edgessl.runtime.model import iter_image_files, refuse_blank_paths
        from edgessl.text.runtime import is_text_model

        if is_text_model(model):
            predict_texts_command(ctx, model, images or [], file, top_k, json_path, force)
            return
        if file is not None:
            from edgessl.errors import ConfigError

            raise ConfigError(f"--file is for text models, and '{model}' is not one; give "
                              "images after the model")
        if not images:
            from edgessl.cli.app import UsageError

            raise UsageError("Missing argument 'IMAGE_OR_DIR...'.", ctx)
        refuse_blank_paths(images)  # before the recursive search of the current folder
        check_device_or_profile(profile is not None, bool(flags_given(ctx, ["device"])))
        images = [Path(i) for i in images]
        check_outputs({"--json": json_path}, {"MODEL": model, "IMAGE_OR_DIR": images},
                      force=force)
        if profile is not None:
            device = device_from_profile(profile, model)
        loaded = load_for_predict(model, device)
        refuse_top_k_for_embeddings(ctx, loaded, model)
        files = iter_image_files(images)
        results = []
        to_stdout = json_path is not None and str(json_path) == "-"
        skipped = Unreadable({i.expanduser() for i in images if i.expanduser().is_file()})
        with typer.progressbar(length=len(files), label="predicting", file=sys.stderr,
                               hidden=len(files) < 2 * batch_size) as bar:
            for chunk in loaded.iter_predict(files, top_k=top_k, batch_size=batch_size,
                                             on_unreadable=skipped):
                bar.update(len(chunk))
                for p in chunk:
                    check_finite(p, model)
                results += [p.to_dict() for p in chunk]
                if json_path is None:
                    for p in chunk:
                        echo(format_prediction(p))
        skipped.report()
        if not results:
            from edgessl.errors import DataError

            raise DataError(f"no readable image among the {len(files)} given; see the "
                            "warning above for why")
        if json_path is not None:
            data = {"model": str(model), "runtime": loaded.execution.runtime,
                    "provider": loaded.execution.provider, "predictions": results,
                    "skipped": [{"image": str(p), "error": e} for p, e in skipped.files]}
            if to_stdout:
                echo(dumps_json(data, "predictions").rstrip("\n"))
            else:
                from edgessl.io import write_json

                echo(f"wrote {write_json(json_path, data, force=force)} ({len(results)} "
                     "images)")


def refuse_top_k_for_embeddings(ctx: typer.Context, loaded, model: Path) -> None:
    """``--top-k`` given for a model without labels (it gives an embedding per image, as
    ``DeployedModel.predict`` decides) would be ignored: refuse it, before any image is read.

    Raises:
        ConfigError: naming the model and the fix.
    """
    from edgessl.errors import ConfigError

    meta = loaded.meta
    if flags_given(ctx, ["top_k"]) and (not meta.labels or meta.task != "classify"):
        raise ConfigError(f"--top-k applies to classifiers, and '{model}' is an embedding model "
                          "(one feature vector per image, no labels to rank); leave --top-k "
                          "out, or pass a classifier")


class Unreadable:
    """``iter_predict``'s ``on_unreadable`` for the CLI: an image named on the command line
    that cannot be read stops the run (the user asked for it), one found in a folder is left
    out and counted, and ``report`` warns once with the first one and why."""

    def __init__(self, named: set[Path]) -> None:
        self.named = named
        self.files: list[tuple[Path, str]] = []

    def __call__(self, path: Path, error: Exception) -> None:
        if path in self.named:
            raise error
        self.files.append((path, str(error)))

    def report(self) -> None:
        if self.files:
            path, error = self.files[0]
            log.warning("skipped %d image(s) of the folders given that cannot be read; first: "
                        "%s", len(self.files), error if str(path) in error else
                        f"'{path}': {error}")


def predict_texts_command(ctx: typer.Context, model: Path, texts: list[str], file: Path | None,
                          top_k: int, json_path: Path | None, force: bool) -> None:
    """``edgessl predict TEXT_MODEL "a text" ... [--file lines.txt]``."""
    from edgessl.io import check_outputs, dumps_json, write_json
    from edgessl.text.runtime import read_text_lines
    from edgessl.text.workflow import predict_texts, refuse_image_flags

    refuse_image_flags(flags_given(ctx, IMAGE_ONLY), f"model '{model}'")
    check_outputs({"--json": json_path}, {"MODEL": model, "--file": file}, force=force)
    texts = list(texts) + (read_text_lines(file) if file is not None else [])
    runtime, found = predict_texts(model, texts, top_k)
    if json_path is None:
        for p in found:
            echo(f"{p['text']}  " + "  ".join(f"{label} {score:.3f}"
                                              for label, score in p["top_k"]))
        return
    data = {"model": str(model), "runtime": runtime, "predictions": found}
    if str(json_path) == "-":
        echo(dumps_json(data, "predictions").rstrip("\n"))
    else:
        echo(f"wrote {write_json(json_path, data, force=force)} ({len(found)} texts)")
