"""``edgessl deploy TEXT_MODEL``: a text model + a device profile -> a folder for the device.

MODEL is a text classifier checkpoint (``edgessl finetune`` on text; exported here for the
profile's runtime, in each of its precisions a text export supports) or an exported text model
folder (copied as it is). The bundle holds::

    models/<format>-<precision>/   exported text model folders (model, tokenizer.json, sidecar)
    bundle.json                    the models, the recommended one (``run.py``'s default), the
                                   smoke texts with the host's predictions
    baseline.json                  the host's ``measure_text`` of each model
    run.py + lib/edgessl/          the torch-free runner (``edgessl.text.bundle_cli``)
    requirements.txt, profile.toml, README.md

The recommended model is the smallest whose top-1 on the smoke texts is within
``MAX_DROP_POINTS`` of the most accurate one's; it is assembled under a temporary name and
renamed into place, as image bundles are.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import shutil
from pathlib import Path

from edgessl.deploy.bundle import BundleResult
from edgessl.deploy.bundle_config import (
    BASE_REQUIREMENTS,
    DeployConfig,
    choose_runtime,
    profile_file,
    requirements,
)
from edgessl.deploy.bundle_files import (
    VENDORED,
    baseline_cells,
    write_archive,
    write_bundle_files,
)
from edgessl.errors import CheckpointError, ConfigError, unknown_choice
from edgessl.text.bundle_cli import BUNDLE_FORMAT

log = logging.getLogger("edgessl")

RUNNER = '''#!/usr/bin/env python3
"""Run this edgessl text bundle on the device: predict, benchmark, smoke (python run.py --help).

Needs only the packages in requirements.txt (numpy, tokenizers and one inference runtime).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "lib"))  # the bundle's own light edgessl wins over an installed one

from edgessl.text.bundle_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(bundle_dir=HERE))
'''
# Light modules the text runner imports: those of an image bundle's runner (the shared
# measurement helpers live there; nothing imports PIL or a runtime until it is used) and the
# text runtime. tests/test_text_bundle.py runs the bundle and checks no heavy module loads.
TEXT_VENDORED = (*VENDORED, "text/__init__.py", "text/runtime.py", "text/bench.py",
                 "text/bundle_cli.py")
# Which text export format serves each bundle runtime.
TEXT_FORMAT_FOR_RUNTIME = {"onnxruntime": "onnx", "openvino": "openvino"}
MAX_DROP_POINTS = 1.0


def is_text_input(model: str | Path) -> bool:
    """True for a text classifier checkpoint or an exported text model folder."""
    from edgessl.text.runtime import is_text_model
    from edgessl.text.workflow import is_text_checkpoint

    return is_text_model(model) or is_text_checkpoint(model)


def build_text_bundle(model: str | Path, config: DeployConfig) -> BundleResult:
    """Build a text bundle for ``model`` (see the module docstring).

    Raises:
        ConfigError: a profile whose runtimes text cannot use, an unknown precision, or an
            exported model for another runtime than the bundle's.
        CheckpointError: a missing or unusable model.
        OutputExistsError: ``config.out`` (or its archive) exists without ``config.force``.
    """
    from edgessl.devices.profile import load_profile
    from edgessl.io import atomic_dir, check_outputs
    from edgessl.text.runtime import is_text_model

    profile = load_profile(config.profile)
    usable = [r for r in profile.runtimes if r in TEXT_FORMAT_FOR_RUNTIME]
    if config.runtime is None and not usable:
        raise ConfigError(f"profile '{profile.name}' lists {', '.join(profile.runtimes)}; a "
                          f"text bundle runs on {' or '.join(TEXT_FORMAT_FOR_RUNTIME)}")
    runtime = choose_runtime(profile, config.runtime)
    if runtime not in TEXT_FORMAT_FOR_RUNTIME:
        raise unknown_choice("runtime for a text bundle", runtime, usable)
    if profile.device.upper() != "CPU":
        log.warning("profile '%s' targets %s, but text models run on the CPU in this version: "
                    "the bundle's runtime compiles for CPU", profile.name, profile.device)
    model = Path(model)
    if config.fuse_tokenizer:
        if is_text_model(model):
            raise ConfigError("--fuse-tokenizer applies to a classifier checkpoint; this text "
                              "model is exported already (export it with --fuse-tokenizer)")
        from edgessl.text.workflow import check_fusable

        check_fusable(TEXT_FORMAT_FOR_RUNTIME[runtime])
    out = Path(config.out)
    archive = out.with_name(out.name + ".tar.gz") if config.archive else None
    check_outputs({"--out": out, "--archive": archive},
                  {"MODEL": model, "--data": config.data,
                   "--profile": profile_file(config.profile)}, force=config.force)
    with atomic_dir(out, force=config.force) as tmp:
        if is_text_model(model):
            models = [_copy_export(model, runtime, config, tmp)]
        else:
            models = _export_all(model, profile, runtime, config, tmp)
        smoke = _smoke(tmp, models, model, config)
        recommended = _recommend(models, smoke)
        models = ([m for m in models if m["name"] == recommended["model"]]
                  + [m for m in models if m["name"] != recommended["model"]])
        bundle = {
            "format": BUNDLE_FORMAT, "name": out.name, "source": str(model),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "edgessl_version": _version(), "runtime": runtime, "device": "CPU",
            "profile": dataclasses.asdict(profile),
            "requirements": text_requirements(
                profile, runtime, any(m["tokenizer"] == "fused" for m in models)),
            "models": models,
            "recommended": recommended, "smoke": smoke,
        }
        baseline = _baseline(tmp, models, smoke, config) if config.baseline else None
        write_bundle_files(tmp, bundle, TEXT_VENDORED, RUNNER, profile_file(config.profile),
                           baseline, _readme(bundle, baseline))
    if archive is not None:
        write_archive(out, archive, config.force)
    return BundleResult(out, archive, bundle)


def _version() -> str:
    from edgessl import __version__

    return __version__


def text_requirements(profile, runtime: str, fused: bool = False) -> list[str]:
    """requirements.txt: numpy, tokenizers (the host's version), the runtime package and,
    for a model with its tokenizer fused in, openvino-tokenizers (the host's version, which
    matches its OpenVINO)."""
    from importlib import metadata

    runtime_line = requirements(profile, runtime)[-1]
    numpy = next(r for r in BASE_REQUIREMENTS if r.startswith("numpy"))
    lines = [numpy, f"tokenizers=={metadata.version('tokenizers')}", runtime_line]
    if fused:
        lines.append(f"openvino-tokenizers=={metadata.version('openvino-tokenizers')}")
    return lines


def _entry(name: str, folder: Path, tmp: Path) -> dict:
    from edgessl.text.runtime import read_sidecar

    meta = read_sidecar(folder)
    check = meta.get("validation") or {}
    return {"name": name, "path": folder.relative_to(tmp).as_posix(),
            "model_file": meta.get("model_file", "model.onnx"),
            "precision": meta.get("precision"), "labels": list(meta["labels"]),
            "tokenizer": meta.get("tokenizer", "file"),
            "max_length": meta["max_length"],
            "validation": {k: check[k] for k in ("top1_agreement", "max_abs_logit_diff",
                                                 "top1_artifact", "top1_pytorch", "texts")
                           if isinstance(check.get(k), (int, float))}}


def _copy_export(folder: Path, runtime: str, config: DeployConfig, tmp: Path) -> dict:
    from edgessl.text.runtime import model_file, read_sidecar
    from edgessl.text.workflow import export_name

    if config.precisions:
        raise ConfigError("--precision applies to a checkpoint; this text model is exported "
                          "already (pass the classifier folder to export other precisions)")
    meta = read_sidecar(folder)
    file = model_file(folder, meta)
    own = {".onnx": "onnxruntime", ".xml": "openvino"}[file.suffix]
    if own != runtime:
        raise ConfigError(f"'{folder.name}' runs on {own}, but this bundle uses {runtime}; "
                          f"pass --runtime {own} (if the profile lists it) or the classifier "
                          "folder")
    name = export_name(TEXT_FORMAT_FOR_RUNTIME[runtime], meta.get("precision", "fp32"),
                       meta.get("tokenizer") == "fused")
    dest = tmp / "models" / name
    dest.mkdir(parents=True)
    for f in text_model_files(folder, file):  # what the model is, nothing else in the folder
        shutil.copy2(f, dest / f.name)
    return _entry(name, dest, tmp)


def text_model_files(folder: Path, model: Path) -> list[Path]:
    """The files an exported text model consists of: the model (and its ``.bin`` or external
    data), ``tokenizer.json`` and the sidecar. Any other file in the folder stays out of a
    bundle, so a bundle carries nothing it was not meant to.

    Raises:
        CheckpointError: one of them is a symbolic link (it could name any file).
    """
    from edgessl.runtime_specs import artifact_files
    from edgessl.text.runtime import SIDECAR_FILE, TOKENIZER_FILE

    files = [*artifact_files(model), folder / TOKENIZER_FILE, folder / SIDECAR_FILE]
    for f in files:
        if f.is_symlink():
            raise CheckpointError(f"'{f}' is a symbolic link; put the file itself in the "
                                  "export folder")
    return files


def _precisions(profile, fmt: str, wanted: tuple[str, ...]) -> list[str]:
    from edgessl.text.workflow import TEXT_FORMATS

    possible = TEXT_FORMATS.get(fmt).precisions().names()
    for precision in wanted:
        if precision not in possible:
            raise unknown_choice(f"{fmt} text precision", precision, possible)
    if wanted:
        return list(dict.fromkeys(wanted))
    chosen = [p for p in profile.precisions if p in possible] or ["fp32"]
    skipped = [p for p in profile.precisions if p not in possible]
    if skipped:
        log.warning("profile '%s' lists %s, which edgessl cannot export a text model to as %s; "
                    "the bundle has %s", profile.name, ", ".join(skipped), fmt,
                    ", ".join(chosen))
    return chosen


def _export_all(checkpoint: Path, profile, runtime: str, config: DeployConfig,
                tmp: Path) -> list[dict]:
    from edgessl.text.workflow import export_name, export_text_checkpoint

    fmt = TEXT_FORMAT_FOR_RUNTIME[runtime]
    entries = []
    for precision in _precisions(profile, fmt, config.precisions):
        name = export_name(fmt, precision, config.fuse_tokenizer)
        result = export_text_checkpoint(checkpoint, fmt, precision,
                                        out=tmp / "models" / name, data=config.data,
                                        fuse_tokenizer=config.fuse_tokenizer)
        entries.append(_entry(name, result.folder, tmp))
    return entries


def _smoke(tmp: Path, models: list[dict], source: Path, config: DeployConfig) -> dict:
    """``smoke_per_class`` val texts per class, their labels and each model's predictions."""
    from edgessl.text.runtime import TextPredictor

    texts, labels = _smoke_texts(source, config)
    if not texts:
        return {"texts": [], "labels": None, "expected": {}}
    expected = {m["name"]: [p.label for p in TextPredictor(tmp / m["path"]).predict(texts)]
                for m in models}
    return {"per_class": config.smoke_per_class, "texts": texts, "labels": labels,
            "expected": expected}


def _smoke_texts(source: Path, config: DeployConfig) -> tuple[list[str], list[int] | None]:
    import json

    from edgessl.text.workflow import checkpoint_data, is_text_checkpoint

    if config.smoke_per_class < 1:
        return [], None
    card = {}
    if is_text_checkpoint(source):
        from edgessl.text.model import CARD_FILE

        card = json.loads((source / CARD_FILE).read_text(encoding="utf-8"))
    elif config.data is None:
        log.warning("no labeled text for smoke texts and the host's accuracy (an exported "
                    "model does not record its data); pass --data")
        return [], None
    else:
        from edgessl.text.runtime import read_sidecar

        card = {"labels": read_sidecar(source)["labels"]}
    labeled = checkpoint_data(card, config.data)
    if labeled is None:
        return [], None
    picked: dict[int, list[str]] = {}
    for text, label in labeled.val:
        if len(picked.setdefault(label, [])) < config.smoke_per_class:
            picked[label].append(text)
    pairs = [(t, y) for y in sorted(picked) for t in picked[y]]
    return [t for t, _ in pairs], [y for _, y in pairs]


def _recommend(models: list[dict], smoke: dict) -> dict:
    """The smallest model within MAX_DROP_POINTS of the best top-1 on the val texts (the
    export's own validation), else the first."""
    scored = [m for m in models if "top1_artifact" in m["validation"]]
    order = {"int8": 0, "fp16": 1, "fp32": 2}
    if not scored:
        first = min(models, key=lambda m: order.get(m["precision"], 3))
        return {"model": first["name"], "reason": "smallest precision; no labeled val texts "
                                                  "to compare accuracy on"}
    best = max(m["validation"]["top1_artifact"] for m in scored)
    within = [m for m in scored
              if 100 * (best - m["validation"]["top1_artifact"]) <= MAX_DROP_POINTS]
    pick = min(within, key=lambda m: order.get(m["precision"], 3))
    drop = 100 * (best - pick["validation"]["top1_artifact"])
    return {"model": pick["name"],
            "reason": f"smallest within {MAX_DROP_POINTS:g} point of the best val top-1 "
                      f"({drop:.1f} points below it on {pick['validation'].get('texts')} texts)"}


def _baseline(tmp: Path, models: list[dict], smoke: dict, config: DeployConfig) -> dict | None:
    """The host's ``measure_text`` of each model on the smoke texts."""
    from edgessl.runtime.measure import device_stamp
    from edgessl.text.bench import measure_text

    if not smoke["texts"]:
        return None
    rows = []
    for m in models:
        r = measure_text(tmp / m["path"], smoke["texts"], smoke["labels"],
                         runs=config.iterations, warmup=config.warmup).to_dict()
        r["artifact"] = m["path"]
        rows.append(r)
    return {"host": device_stamp(), "results": rows}


def _readme(bundle: dict, baseline: dict | None) -> str:
    rows = [f"| {m['name']} | `{m['path']}` | {m['max_length']} | {top1} | {p50} |"
            for m, top1, p50 in baseline_cells(bundle["models"], baseline, "artifact", 2)]
    host = (baseline or {}).get("host", {}).get("cpu", "no baseline measured")
    rec = bundle["recommended"]
    return f"""# {bundle['name']}: an edgessl text bundle for {bundle['profile']['name']}

Made by edgessl {bundle['edgessl_version']} on {bundle['created']} from `{bundle['source']}`.
Runtime: **{bundle['runtime']}** (profile `{bundle['profile']['name']}`, see `profile.toml`).

| model | folder | tokens (L) | host top-1 % (smoke texts) | host p50 ms/sentence |
|---|---|---|---|---|
{chr(10).join(rows)}

Default model: **{rec['model']}** ({rec['reason']}). `run.py predict` uses it unless
`--model NAME` names another. Host baseline measured on: {host} (see `baseline.json`).

## On the device

    python3 -m venv .venv && . .venv/bin/activate
    python -m pip install -r requirements.txt
    python run.py smoke                       # do the bundled texts get the host's labels?
    python run.py predict "a sentence" "another one" --top-k 3
    python run.py predict --file lines.txt --json predictions.json
    python run.py benchmark                   # ms per sentence, tokenization included

Nothing else is needed: no PyTorch, no transformers, no edgessl install. `lib/` holds the
small part of edgessl that tokenizes (with the model's own `tokenizer.json`) and runs the model.
An OpenVINO bundle keeps the models it compiled in `.ov_cache/` (when the folder is writable),
so runs after the first load in about a third of the time; delete it after changing OpenVINO.
"""


def text_bundle_summary(result: BundleResult) -> str:
    """A few lines for the CLI: what went into the bundle and how to run it."""
    b = result.bundle
    lines = [f"wrote {result.path} (text, {b['runtime']}, profile {b['profile']['name']})"]
    for m in b["models"]:
        default = "  (default)" if m["name"] == b["recommended"]["model"] else ""
        lines.append(f"  {m['name']:<16} {m['path']}{default}")
    lines.append(f"  default model: {b['recommended']['model']} ({b['recommended']['reason']})")
    lines.append(f"  smoke texts: {len(b['smoke']['texts'])}; requirements: "
                 f"{', '.join(b['requirements'])}")
    if result.archive is not None:
        lines.append(f"wrote {result.archive}")
    lines.append(f"on the device: pip install -r requirements.txt && python run.py smoke "
                 f"(see {result.path / 'README.md'})")
    return "\n".join(lines)
