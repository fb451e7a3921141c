"""What a deploy bundle checks the device against, measured on the host: smoke-test images with
the host's predictions for them, and the host's accuracy and latency baseline."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from edgessl.deploy.bundle_config import DeployConfig

log = logging.getLogger("edgessl")


def data_root(config: DeployConfig, artifact: Path) -> Path | None:
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


def smoke_images(tmp: Path, models: list[dict], data: Path | None, per_class: int) -> dict:
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


def host_baseline(tmp: Path, models: list[dict], data: Path | None, profile,
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
