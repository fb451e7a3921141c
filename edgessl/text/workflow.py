"""The text steps as ``edgessl finetune / export / predict`` run them, for the one CLI.

The CLI sees a path and asks this module whether it is text (``is_text_set``,
``is_text_checkpoint``, ``is_text_model``); if so it hands the flags over here. Everything
here is plain Python API, also used by ``edgessl.text.quickstart``:

- ``finetune_text_set``: a labeled text set -> a saved text classifier folder;
- ``export_text_checkpoint``: a text classifier folder -> a validated ONNX or OpenVINO folder
  (``TEXT_FORMATS``), checked on the classifier's own val split;
- ``predict_texts``: raw strings -> labels and probabilities, torch-free.

Flags that only mean something for images are refused with text data, by name, before any
work (``refuse_image_flags``), and so are training flags a text mode does not use
(``MODE_FLAGS``); a flag is never silently ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from edgessl.errors import ConfigError, DataError, printable
from edgessl.registry import Registry

log = logging.getLogger("edgessl")

# The image CLI's mode names for the text modes that do the same thing; every other text
# mode (edgessl.text.finetune.MODES) is offered under its own name.
MODE_ALIASES = {"linear": "probe"}
# The TextFinetuneConfig field each training flag sets, per mode. A flag a mode does not list
# is refused for it (as the image probe refuses --epochs and --lr), never silently ignored.
# SetFit's rounds of pair sampling (SetFit's num_iterations: each gives every sentence one
# positive and one negative partner) are its passes over the data, so --epochs sets them,
# and --lr its pair training's learning rate.
MODE_FLAGS = {
    "probe": {},
    "full": {"epochs": "epochs", "lr": "lr"},
    "setfit": {"epochs": "pair_iterations", "lr": "pair_lr"},
}


def mode_choices() -> list[str]:
    """The --mode values text data accepts: the aliases, then the other registered modes."""
    from edgessl.text.finetune import MODES

    aliased = set(MODE_ALIASES.values())
    return [*MODE_ALIASES, *(m for m in MODES.names() if m not in aliased)]


def text_mode(name: str | None) -> str:
    """The text fine-tune mode for a --mode value (None = the linear probe).

    Raises:
        ConfigError: an unknown mode, with the choices and a did-you-mean hint.
    """
    from edgessl.errors import unknown_choice
    from edgessl.text.finetune import MODES

    if name is None:
        return MODE_ALIASES["linear"]
    mode = MODE_ALIASES.get(name, name)
    if mode not in MODES:
        raise unknown_choice("mode for text data", name, mode_choices())
    return mode


def refuse_image_flags(given: Iterable[str], what: str) -> None:
    """Raise for the first image-only flag given with a text input ``what``.

    Raises:
        ConfigError: naming the flag and the input.
    """
    flag = next(iter(given), None)
    if flag is not None:
        raise ConfigError(f"{flag} applies to images, not to the text {what}; drop it "
                          "(see --help for the options text uses)")


def is_text_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is a text classifier folder (its card says so)."""
    import json

    from edgessl.text.model import CARD_FILE, CARD_FORMAT

    try:
        card = json.loads((Path(path) / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(card, dict) and card.get("format") == CARD_FORMAT


@dataclass(frozen=True)
class TextFinetuneRun:
    """A text fine-tune as the CLI asks for it: the data, the settings and where to save."""

    data: str
    encoder: str | None = None
    mode: str | None = None
    labels_per_class: int | None = None
    seed: int = 0
    epochs: int | None = None
    lr: float | None = None
    probe_c: float | None = None
    out: str | None = None
    force: bool = False


def training_settings(mode: str, given: dict) -> dict:
    """The TextFinetuneConfig fields that the training flags ``given`` (name -> value, None
    when not given) set for ``mode`` (see ``MODE_FLAGS``).

    Raises:
        ConfigError: a flag ``mode`` does not use, naming the modes that use it.
    """
    used = MODE_FLAGS[mode]
    unused = [name for name, value in given.items() if value is not None and name not in used]
    if unused:
        many = len(unused) > 1
        users = " or ".join(f"--mode {m}" for m, names in MODE_FLAGS.items()
                            if all(n in names for n in unused))
        them = "them" if many else "it"
        shown = next((alias for alias, m in MODE_ALIASES.items() if m == mode), mode)
        why = ("the linear probe is solved to convergence (set its regularisation with "
               "--probe-c)" if mode == "probe" else f"--mode {shown} has no use for {them}")
        raise ConfigError(f"{' and '.join(f'--{n}' for n in unused)} "
                          f"{'apply' if many else 'applies'} to {users or 'no text mode'}, not "
                          f"to --mode {shown}; {why}: drop {them}")
    return {used[name]: value for name, value in given.items() if value is not None}


def default_finetune_out(encoder: str, mode: str, k: int | None) -> Path:
    """``models/text-<encoder folder or start name>-<mode>-k<K|all>``."""
    return Path("models") / f"text-{Path(encoder).name}-{mode}-k{k or 'all'}"


def finetune_text_set(run: TextFinetuneRun):
    """Load ``run.data``, fine-tune, save; returns (TextFinetuneResult, the folder saved).

    The output is checked before any work (it exists without ``force``, or lies in an input).
    """
    from edgessl.io import check_outputs
    from edgessl.text.data import load_text_set
    from edgessl.text.encoders import DEFAULT_TEXT_START
    from edgessl.text.finetune import TextFinetuneConfig, finetune_text

    encoder = run.encoder or DEFAULT_TEXT_START
    mode = text_mode(run.mode)
    extra = training_settings(mode, {"epochs": run.epochs, "lr": run.lr})
    cfg = TextFinetuneConfig(encoder=encoder, mode=mode, labels_per_class=run.labels_per_class,
                             seed=run.seed, probe_c=run.probe_c, **extra)
    out = Path(run.out) if run.out else default_finetune_out(encoder, cfg.mode,
                                                             run.labels_per_class)
    local = Path(encoder).expanduser()
    check_outputs({"--out": out}, {"DATA": run.data,
                                   "--backbone": local if local.exists() else None},
                  force=run.force)
    data = load_text_set(run.data, seed=run.seed)
    result = finetune_text(cfg, data)
    return result, result.save(out, force=run.force)


@dataclass(frozen=True)
class TextExportJob:
    """What an exporter needs besides the model: where, how, and the texts to use."""

    out: Path
    precision: str
    check_on: object  # a ValidationSet
    train_texts: list[str] | None
    card: dict
    calib_size: int | None
    force: bool
    fuse_tokenizer: bool = False


def _export_openvino(model, job: TextExportJob):
    from edgessl.text.export_openvino import CALIBRATION_SIZE, export_text_openvino

    return export_text_openvino(model, job.out, job.precision, texts=job.check_on,
                                calibration_texts=job.train_texts, card=job.card,
                                force=job.force,
                                calibration_size=job.calib_size or CALIBRATION_SIZE,
                                fuse_tokenizer=job.fuse_tokenizer)


def _export_onnx(model, job: TextExportJob):
    from edgessl.text.export import export_text_onnx

    if job.calib_size is not None:  # dynamic INT8 measures each input's range as it runs
        raise ConfigError("--calib-size applies to OpenVINO int8 only; ONNX text INT8 is "
                          "dynamic and needs no calibration: drop it")
    return export_text_onnx(model, job.out, job.precision, texts=job.check_on,
                            card=job.card, force=job.force)


def _onnx_precisions():
    from edgessl.text.export import PRECISIONS

    return PRECISIONS


def _openvino_precisions():
    from edgessl.text.export_openvino import OV_PRECISIONS

    return OV_PRECISIONS


@dataclass(frozen=True)
class TextFormat:
    """An export format for text: its precisions (a Registry) and its exporter."""

    precisions: Callable[[], Registry]
    export: Callable


TEXT_FORMATS: Registry[TextFormat] = Registry("text export format")
TEXT_FORMATS.register("onnx", TextFormat(_onnx_precisions, _export_onnx))
TEXT_FORMATS.register("openvino", TextFormat(_openvino_precisions, _export_openvino))


def checkpoint_data(card: dict, data: str | Path | None):
    """The labeled set to validate and calibrate on: ``data``, else the one the classifier
    was trained on (re-split with its seed), or None (with a warning) when that is gone or
    has changed since.

    Raises:
        DataError: ``data`` has other classes than the classifier.
    """
    from edgessl.text.data import load_text_set

    seed = card.get("training", {}).get("config", {}).get("seed", 0)
    if data is not None:
        found = load_text_set(data, seed=seed)
        if list(found.classes) != card["labels"]:
            raise DataError(f"--data '{printable(data)}' has classes {list(found.classes)[:5]}, "
                            f"the classifier {card['labels'][:5]}; give data with its classes")
        return found
    recorded = card.get("data") or {}
    fraction = recorded.get("val_fraction")  # the split the classifier was trained with
    try:
        found = load_text_set(recorded["path"], seed=seed,
                              **({"val_fraction": fraction} if fraction else {}))
    except (KeyError, TypeError, DataError, ConfigError):  # gone, or a damaged card
        found = None
    if found is None or found.fingerprint() != recorded.get("fingerprint"):
        log.warning("the classifier's training data (%s) is gone or has changed: validating "
                    "on a few fixed sentences only; pass --data to validate on labeled text",
                    recorded.get("path"))
        return None
    return found


def export_name(fmt: str, precision: str, fused: bool) -> str:
    """A text export's name: ``<format>-<precision>``, ending in ``-fused`` when the tokenizer
    is inside the model (export folders and bundle model entries alike)."""
    return f"{fmt}-{precision}" + ("-fused" if fused else "")


def fusion_needs_text(model) -> ConfigError:
    """The error for ``--fuse-tokenizer`` given with a model that is not a text classifier."""
    return ConfigError(f"--fuse-tokenizer applies to text classifiers; '{model}' is not one: "
                       "drop it")


def check_fusable(fmt: str) -> None:
    """Raise unless a tokenizer can be fused into ``fmt`` here (OpenVINO with its
    openvino-tokenizers extension installed)."""
    if fmt != "openvino":
        raise ConfigError(f"--fuse-tokenizer needs OpenVINO (export --format openvino, deploy "
                          f"--runtime openvino), not {fmt}: ONNX Runtime runs no string "
                          "operations without a custom-op library, so an ONNX text model "
                          "keeps tokenizer.json beside it")
    from edgessl.text.runtime import load_tokenizer_extension

    load_tokenizer_extension()


def export_text_checkpoint(checkpoint: str | Path, fmt: str, precision: str,
                           out: str | Path | None = None, data: str | Path | None = None,
                           calib_size: int | None = None, force: bool = False,
                           fuse_tokenizer: bool = False):
    """Export a text classifier folder to ``out`` (default
    ``export/<checkpoint>-<format>-<precision>``), validated on its val split (or ``data``'s)
    and, for OpenVINO int8, calibrated on ``calib_size`` of its training texts; with
    ``fuse_tokenizer`` (OpenVINO) the tokenizer goes inside the IR
    (``edgessl.text.fused_tokenizer``) and the default folder ends in ``-fused``.

    Returns:
        The TextExportResult.
    """
    from edgessl.export.api import check_export_replaceable
    from edgessl.io import check_outputs
    from edgessl.text.export import ValidationSet
    from edgessl.text.model import load_text_classifier

    exporter = TEXT_FORMATS.get(fmt)
    exporter.precisions().get(precision)  # before any work
    if fuse_tokenizer:
        check_fusable(fmt)
    checkpoint = Path(checkpoint)
    out = Path(out) if out else Path("export") / (
        f"{checkpoint.resolve().name}-{export_name(fmt, precision, fuse_tokenizer)}")
    check_outputs({"--out": out}, {"MODEL": checkpoint, "--data": data}, force=force)
    check_export_replaceable(out, force)  # --force replaces an earlier export, nothing else
    model, card = load_text_classifier(checkpoint)
    labeled = checkpoint_data(card, data)
    if labeled is None:
        check_on, train = ValidationSet(), None
    else:
        check_on = ValidationSet(tuple(t for t, _ in labeled.val),
                                 tuple(y for _, y in labeled.val))
        train = [t for t, _ in labeled.train]
    return exporter.export(model, TextExportJob(out, precision, check_on, train, card, calib_size,
                                         force, fuse_tokenizer))


def predict_texts(artifact: str | Path, texts: list[str], top_k: int = 1,
                  threads: int | None = None) -> tuple[str, list[dict]]:
    """Classify ``texts`` with an exported text model, torch-free.

    Returns:
        The runtime that ran it, and per text ``{"text", "top_k": [[label, probability]]}``.

    Raises:
        CheckpointError: ``artifact`` is not an exported text model.
        ConfigError: no texts, or ``top_k`` below 1.
        DataError: an empty or blank text, or one that names an image file, a .txt file
            or a folder (``edgessl.text.runtime.check_texts``).
    """
    from edgessl.text.runtime import TextPredictor, check_texts

    if top_k < 1:
        raise ConfigError(f"--top-k must be 1 or more, got {top_k}")
    if not texts:
        raise ConfigError("no text to classify; give texts after the model, or --file")
    check_texts(texts, f"'{printable(artifact)}'")
    predictor = TextPredictor(artifact, threads=threads)
    return predictor.runtime, predictor.top_k(texts, top_k)


def benchmark_texts(models: list[Path], data: str | Path | None, runs: int = 100,
                    warmup: int = 10, threads: int | None = None) -> list:
    """``measure_text`` of each exported text model on ``data``'s val texts (scored), or on
    a few fixed sentences (timed only) without ``data``.

    Raises:
        DataError: ``data`` has other classes than a model.
    """
    from edgessl.text.bench import measure_text
    from edgessl.text.data import load_text_set
    from edgessl.text.runtime import SAMPLE_TEXTS, read_sidecar

    labeled = load_text_set(data) if data is not None else None
    results = []
    for model in models:
        texts, labels = list(SAMPLE_TEXTS), None
        if labeled is not None:
            classes = read_sidecar(Path(model))["labels"]
            if list(labeled.classes) != classes:
                raise DataError(f"--data '{printable(data)}' has classes "
                                f"{list(labeled.classes)[:5]}, model '{printable(model)}' "
                                f"{classes[:5]}; give data with the model's classes")
            texts, labels = [t for t, _ in labeled.val], [y for _, y in labeled.val]
        results.append(measure_text(model, texts, labels, runs=runs, warmup=warmup,
                                    threads=threads))
    return results
