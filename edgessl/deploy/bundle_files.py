"""What a deploy bundle holds besides its models, written into its folder: the light part of
edgessl the runner imports (``lib/edgessl/``), ``run.py``, ``profile.toml``,
``requirements.txt``, ``baseline.json``, ``bundle.json`` and the device's README; and the
bundle as a ``.tar.gz``."""

from __future__ import annotations

import shutil
import string
from pathlib import Path

from edgessl.runtime_specs import RUNTIME_SPECS, bundle_runtimes

TEMPLATES = Path(__file__).parent / "templates"
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


def write_image_bundle_files(tmp: Path, bundle: dict, runtime: str, profile_path: Path,
                             baseline: dict | None) -> None:
    """An image bundle's files: ``write_bundle_files`` with the image runner, the runtime's
    module among the vendored ones, and the README from ``templates/``."""
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


def baseline_cells(models: list[dict], baseline: dict | None, key: str,
                   p50_digits: int) -> list[tuple[dict, str, str]]:
    """(bundled model entry, host top-1 %, host p50 ms) for the README's table, "-" where the
    host baseline (its results naming their model file under ``key``) has no value."""
    by_path = {r[key]: r for r in (baseline or {}).get("results", [])}
    cells = []
    for m in models:
        r = by_path.get(m["path"])
        top1 = "-" if r is None or r["top1"] is None else f"{100 * r['top1']:.1f}"
        p50 = "-" if r is None else f"{r['latency']['p50_ms']:.{p50_digits}f}"
        cells.append((m, top1, p50))
    return cells


def _readme(bundle: dict, baseline: dict | None) -> str:
    rows = [f"| {m['name']} | `{m['path']}` | {top1} | {p50} |"
            for m, top1, p50 in baseline_cells(bundle["models"], baseline, "model", 3)]
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

