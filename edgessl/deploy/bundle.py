"""``build_bundle``: a model + a device profile -> a folder to copy to the device and run there.

A bundle holds the artifact(s) chosen for the profile (INT8 quantized for the profile's CPU,
not the build host's), ``bundle.json`` (what it holds, and the model the profile recommends,
listed first: ``run.py``'s default), the profile, ``run.py`` (predict, benchmark, smoke test)
with the light part of edgessl it needs under ``lib/``, ``requirements.txt`` for the target,
smoke-test images with the host's predictions for them, the host's baseline accuracy and
latency, and a README for the device.
It is assembled under a temporary name and renamed into place.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import shutil
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from edgessl.config import MAX_RUNS, Range, check_fields
from edgessl.errors import CheckpointError, ConfigError, unknown_choice
from edgessl.runtime_specs import RUNTIME_SPECS, bundle_runtimes

log = logging.getLogger("edgessl")

TEMPLATES = Path(__file__).parent / "templates"
# The runtimes a bundle can use (those that run exported artifacts) and their export format.
FORMAT_FOR_RUNTIME = {s.name: s.format for s in bundle_runtimes()}
# Light edgessl modules the runner imports (relative to the package); the runtime's own module
# is added per bundle. tests/test_deploy.py checks that nothing else is imported.
VENDORED = (
    "__init__.py", "errors.py", "artifact.py", "safety.py", "limits.py", "config.py",
    "io.py", "interrupt.py",
    "devices/__init__.py", "devices/profile.py", "devices/host.py",
    "data/__init__.py", "data/images.py", "data/preprocess.py", "data/labeled.py",
    "registry.py", "backends/__init__.py", "backends/base.py", "runtime_specs.py",
    "runtime/__init__.py", "runtime/model.py", "runtime/measure.py", "runtime/bundle_cli.py",
    "runtime/bench.py", "runtime/accuracy.py", "runtime/result.py",
)
# Each runtime's own module, as a file under the package (its path from the runtime table).
RUNTIME_MODULE = {s.name: s.module.removeprefix("edgessl.").replace(".", "/") + ".py"
                  for s in bundle_runtimes()}
BASE_REQUIREMENTS = ("numpy>=1.26", "pillow>=10.0", "tomli>=2.0; python_version < '3.11'")


@dataclass(frozen=True)
class DeployConfig:
    """How to build a bundle.

    Attributes:
        profile: a shipped profile name ("cpu") or a profile ``.toml`` path.
        out: the bundle folder to write.
        runtime: onnxruntime or openvino; None = the profile's first one a bundle can use.
        precisions: precisions to export (a checkpoint only); empty = the profile's.
        data: labeled folder for smoke images and the host baseline; None = the model's data.
        smoke_per_class: val images per class copied as the smoke-test set (0 = none).
        baseline: measure the host's accuracy and latency into ``baseline.json``.
        warmup, iterations: for the host baseline.
        archive: also write ``<out>.tar.gz``.
        fuse_tokenizer: a text classifier's OpenVINO exports get the tokenizer inside the IR.
        force: replace an existing ``out`` (and archive).
    """

    FIELD_LABEL = "--"  # messages name fields as the flags of edgessl deploy

    profile: str = "cpu"
    out: str = "bundle"
    runtime: str | None = None
    precisions: tuple[str, ...] = ()
    data: str | None = None
    smoke_per_class: Annotated[int, Range(ge=0, le=1000, note="0 = none")] = 2
    baseline: bool = True
    warmup: Annotated[int, Range(ge=0, le=MAX_RUNS)] = 10
    iterations: Annotated[int, Range(ge=1, le=MAX_RUNS)] = 100
    archive: bool = False
    fuse_tokenizer: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class BundleResult:
    """What ``build_bundle`` wrote: the folder, the archive (or None) and the bundle.json data."""

    path: Path
    archive: Path | None
    bundle: dict


def choose_runtime(profile, wanted: str | None) -> str:
    """The runtime a bundle for ``profile`` uses: ``wanted``, or the profile's first usable one.

    Raises:
        ConfigError: when ``wanted`` is not one of the profile's, or the profile has none usable.
    """
    usable = [r for r in profile.runtimes if r in FORMAT_FOR_RUNTIME]
    if wanted is not None:
        if wanted not in usable:
            raise unknown_choice(f"runtime for profile '{profile.name}'", wanted, usable or
                                 list(FORMAT_FOR_RUNTIME))
        return wanted
    if not usable:
        raise ConfigError(f"profile '{profile.name}' lists only {', '.join(profile.runtimes)}; "
                          f"a bundle needs {' or '.join(FORMAT_FOR_RUNTIME)} in its runtimes (the "
                          "runtimes of exported models)")
    return usable[0]


def device_for(profile, runtime: str) -> str:
    """What the bundle's runtime is told to run on: the first ORT provider, or the device."""
    if runtime == "onnxruntime" and profile.providers:
        return profile.providers[0]
    return profile.device


def requirements(profile, runtime: str) -> list[str]:
    """requirements.txt lines: numpy, Pillow and the runtime package at the host's version."""
    from importlib import metadata

    spec = RUNTIME_SPECS.get(runtime)
    package = spec.provider_package(profile.providers[0]) if profile.providers else spec.package
    try:  # pin what the host validated; another package (a GPU build) is left unpinned
        line = f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        line = package
    return [*BASE_REQUIREMENTS, line]


def profile_file(name_or_path: str) -> Path:
    """The TOML file ``load_profile`` reads for ``name_or_path``."""
    from edgessl.devices.profile import profiles_dir

    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        return Path(text)
    return profiles_dir() / f"{text}.toml"


def build_bundle(model: str | Path, config: DeployConfig) -> BundleResult:
    """Build a deploy bundle for ``model`` (a classifier checkpoint, .onnx or .xml).

    Raises:
        ConfigError: unknown profile, runtime or precision; a model the profile cannot run.
        CheckpointError: a missing or unusable model.
        OutputExistsError: ``config.out`` (or its archive) exists and ``config.force`` is False.
    """
    from edgessl.devices.profile import load_profile
    from edgessl.io import atomic_dir, check_outputs

    profile = load_profile(config.profile)
    runtime = choose_runtime(profile, config.runtime)
    model = Path(model)
    if not model.exists():
        raise CheckpointError(f"model '{model}' does not exist; check the path")
    out = Path(config.out)
    archive = out.with_name(out.name + ".tar.gz") if config.archive else None
    check_outputs({"--out": out, "--archive": archive},
                  {"MODEL": model, "--data": config.data,
                   "--profile": profile_file(config.profile)}, force=config.force)
    with atomic_dir(out, force=config.force) as tmp:
        models, recommended = _default_first(profile, _artifacts(model, profile, runtime,
                                                                 config, tmp))
        data = _data_root(config, tmp / models[0]["path"])
        bundle = {
            "format": "edgessl-bundle/1", "name": out.name, "source": str(model),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "edgessl_version": _version(), "runtime": runtime,
            "device": device_for(profile, runtime), "profile": dataclasses.asdict(profile),
            "requirements": requirements(profile, runtime), "models": models,
            "recommended": recommended,
            "smoke": _smoke(tmp, models, data, config.smoke_per_class),
        }
        baseline = _baseline(tmp, models, data, profile, config) if config.baseline else None
        _write_files(tmp, bundle, runtime, profile_file(config.profile), baseline)
    if archive is not None:
        write_archive(out, archive, config.force)
    return BundleResult(out, archive, bundle)


def _version() -> str:
    from edgessl import __version__

    return __version__


def _default_first(profile, models: list[dict]) -> tuple[list[dict], dict]:
    """The models with the profile's recommended one first (the runner's default, also for an
    older runner that takes the first), and the recommendation for bundle.json."""
    from edgessl.deploy.target import recommend

    recommended = recommend(profile, models, {m["name"]: m.get("validation") for m in models})
    first = [m for m in models if m["name"] == recommended["model"]]
    return first + [m for m in models if m["name"] != recommended["model"]], recommended


def _artifacts(model: Path, profile, runtime: str, config: DeployConfig, tmp: Path) -> list[dict]:
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


def _data_root(config: DeployConfig, artifact: Path) -> Path | None:
    """The labeled data for smoke images and the baseline: --data, else the model's own."""
    if config.data is not None:
        return Path(config.data)
    from edgessl.runtime import load

    path = ((load(artifact).meta.extra or {}).get("data") or {}).get("path")
    if path and Path(path).is_dir():
        return Path(path)
    log.warning("no labeled data found for smoke images and the host's accuracy baseline "
                "(the model's data%s is not here); pass --data", f" '{path}'" if path else "")
    return None


def _smoke(tmp: Path, models: list[dict], data: Path | None, per_class: int) -> dict:
    """Copy ``per_class`` val images per class to ``smoke/`` and record the host's labels."""
    if data is None or per_class < 1:
        return {"expected": {}}
    from edgessl.data.labeled import load_labeled
    from edgessl.runtime import load
    from edgessl.runtime.accuracy import split_settings

    loaded = [load(tmp / m["path"]) for m in models]
    split = load_labeled(data, *split_settings(loaded[0].meta))
    picked: dict[int, list[Path]] = {}
    for path, label in split.val:
        if len(picked.setdefault(label, [])) < per_class:
            picked[label].append(path)
    files = []
    for label, paths in sorted(picked.items()):
        folder = tmp / "smoke" / split.classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        for i, src in enumerate(paths):
            dst = folder / f"{i:02d}{src.suffix.lower()}"
            shutil.copy2(src, dst)
            files.append(dst)
    expected = {f.relative_to(tmp).as_posix(): {} for f in files}
    for entry, model in zip(models, loaded, strict=True):
        for f, p in zip(files, model.predict(files), strict=True):
            expected[f.relative_to(tmp).as_posix()][entry["name"]] = p.label
    return {"data": str(data), "per_class": per_class, "expected": expected}


def _baseline(tmp: Path, models: list[dict], data: Path | None, profile,
              config: DeployConfig) -> dict:
    """The host's ``edgessl benchmark`` of each artifact (on the host CPU)."""
    from edgessl.benchmark.host import BenchmarkConfig, benchmark_models
    from edgessl.benchmark.report import host_stamp

    bench = BenchmarkConfig(warmup=config.warmup, iterations=config.iterations,
                            batch_size=profile.batch_sizes[0],
                            data=None if data is None else str(data))
    results = benchmark_models([tmp / m["path"] for m in models], bench)
    rows = []
    for entry, r in zip(models, results, strict=True):
        row = r.to_dict()
        row["model"] = entry["path"]
        rows.append(row)
    return {"host": host_stamp(), "config": dataclasses.asdict(bench), "results": rows}


def _write_files(tmp: Path, bundle: dict, runtime: str, profile_path: Path,
                 baseline: dict | None) -> None:
    write_bundle_files(tmp, bundle, (*VENDORED, RUNTIME_MODULE[runtime]),
                       (TEMPLATES / "run.py").read_text(encoding="utf-8"), profile_path,
                       baseline, _readme(bundle, baseline))


def write_bundle_files(tmp: Path, bundle: dict, vendored, runner: str, profile_path: Path,
                       baseline: dict | None, readme: str) -> None:
    """What every bundle holds besides its models: ``lib/edgessl/`` (``vendored``, paths in
    the package), ``run.py`` (``runner``), ``profile.toml``, ``requirements.txt``,
    ``baseline.json`` (when measured), ``bundle.json`` and ``README.md``."""
    from edgessl.io import write_json

    copy_package_files(tmp / "lib" / "edgessl", vendored)
    (tmp / "run.py").write_text(runner, encoding="utf-8")
    shutil.copy2(profile_path, tmp / "profile.toml")
    (tmp / "requirements.txt").write_text("\n".join(bundle["requirements"]) + "\n")
    if baseline is not None:
        write_json(tmp / "baseline.json", baseline)
    write_json(tmp / "bundle.json", bundle)
    (tmp / "README.md").write_text(readme, encoding="utf-8")


def copy_package_files(dest: Path, files) -> None:
    """Copy ``files`` (paths relative to the edgessl package) under ``dest``: the light part
    of edgessl a bundle carries."""
    import edgessl

    package = Path(edgessl.__file__).parent
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(package / rel, target)


def _readme(bundle: dict, baseline: dict | None) -> str:
    by_path = {r["model"]: r for r in (baseline or {}).get("results", [])}
    rows = []
    for m in bundle["models"]:
        r = by_path.get(m["path"])
        top1 = "-" if r is None or r["top1"] is None else f"{100 * r['top1']:.1f}"
        p50 = "-" if r is None else f"{r['latency']['p50_ms']:.3f}"
        rows.append(f"| {m['name']} | `{m['path']}` | {top1} | {p50} |")
    host = (baseline or {}).get("host", {}).get("cpu", "no baseline measured")
    text = (TEMPLATES / "README.md").read_text(encoding="utf-8")
    return string.Template(text).substitute(
        name=bundle["name"], profile=bundle["profile"]["name"], version=bundle["edgessl_version"],
        created=bundle["created"], source=bundle["source"], runtime=bundle["runtime"],
        device=bundle["device"], model_rows="\n".join(rows), host_cpu=host,
        default_model=bundle["recommended"]["model"],
        default_reason=bundle["recommended"]["reason"],
        runtime_needs=_runtime_needs(bundle["runtime"]))


def _runtime_needs(runtime: str) -> str:
    """What the device needs besides requirements.txt, in the README's words."""
    spec = RUNTIME_SPECS.get(runtime)
    if spec.torch_free:
        return "Nothing else is needed: no PyTorch, no edgessl install."
    return (f"No edgessl install is needed, but {spec.package}'s Python runtime links PyTorch, "
            "which pip installs with it (on a phone, run the same file with the runtime's own "
            "C++/Java library instead: no Python at all).")


def write_archive(folder: Path, archive: Path, force: bool) -> None:
    """``folder`` as ``archive`` (.tar.gz), written atomically."""
    import tarfile

    from edgessl.io import atomic_file

    with atomic_file(archive, force=force) as tmp, tarfile.open(tmp, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)


def bundle_summary(result: BundleResult) -> str:
    """A few lines for the CLI: what went into the bundle and how to run it."""
    b = result.bundle
    lines = [f"wrote {result.path} ({b['runtime']} on {b['device']}, profile "
             f"{b['profile']['name']})"]
    for m in b["models"]:
        default = "  (default)" if m["name"] == b["recommended"]["model"] else ""
        lines.append(f"  {m['name']:<16} {m['path']}{default}")
        if m["precision"] == "int8" and m.get("validation", {}).get("scheme_reason"):
            lines.append(f"    int8 scheme {m['validation']['scheme']}: "
                         f"{m['validation']['scheme_reason']}")
    lines.append(f"  default model: {b['recommended']['model']} "
                 f"({b['recommended']['reason']}); run.py predict --model NAME picks another")
    lines.append(f"  smoke images: {len(b['smoke']['expected'])}; requirements: "
                 f"{', '.join(b['requirements'])}")
    if result.archive is not None:
        lines.append(f"wrote {result.archive}")
    lines.append(f"on the device: pip install -r requirements.txt && python run.py smoke "
                 f"(see {result.path / 'README.md'})")
    return "\n".join(lines)

