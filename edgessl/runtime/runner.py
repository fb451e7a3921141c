"""The command line of a deploy bundle's ``run.py``: predict, benchmark, smoke test, info.

Standard library (argparse) plus numpy, Pillow and the bundle's runtime: this runs on the
device, where neither edgessl's CLI dependencies nor torch are installed. The bundle's
``bundle.json`` (written by ``edgessl deploy``) says which models it holds and how to run them.

    python run.py predict photo.jpg more_photos/ --top-k 3
    python run.py benchmark --data my_labeled_images --json results.json
    python run.py smoke
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgessl.config import MAX_BATCH, MAX_RUNS, Range, check_value
from edgessl.errors import ConfigError, EdgesslError, printable, unknown_choice
from edgessl.io import check_outputs, dumps_json, write_json
from edgessl.limits import MAX_CLASSES

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "edgessl-bundle/1"
# The runner's numeric options, checked as edgessl's own flags are (edgessl.config.Range).
OPTION_RANGES = {"top_k": Range(ge=1, le=MAX_CLASSES), "batch_size": Range(ge=1, le=MAX_BATCH),
                 "warmup": Range(ge=0, le=MAX_RUNS), "iterations": Range(ge=1, le=MAX_RUNS),
                 "min_agreement": Range(ge=0, le=1, note="a fraction")}


def check_options(args) -> None:
    """FieldError naming the option (``--top-k``) for a number outside its range, and an
    OutputExistsError for a ``--json`` file that exists without ``--force`` (before any work)."""
    for name, rng in OPTION_RANGES.items():
        value = getattr(args, name, None)
        if value is not None:
            check_value(name, value, rng, "--" + name.replace("_", "-"))
    if getattr(args, "json", None) is not None:
        check_outputs({"--json": args.json}, force=args.force)


def read_bundle(folder: Path) -> dict:
    """The bundle description ``bundle.json`` in ``folder``."""
    path = Path(folder) / BUNDLE_FILE
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read '{path}' ({exc}); run this script from an unpacked "
                          "edgessl deploy bundle") from None
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise ConfigError(f"'{path}' is not an {BUNDLE_FORMAT} bundle; rebuild it with "
                          "edgessl deploy")
    models = bundle.get("models")
    if not isinstance(models, list) or not models or not all(
            isinstance(m, dict) and isinstance(m.get("name"), str)
            and isinstance(m.get("path"), str) for m in models):
        raise ConfigError(f"'{path}': key 'models' must list the bundle's models as tables "
                          "with a 'name' and a 'path'; the bundle is damaged: rebuild it with "
                          "edgessl deploy")
    for key, kind in (("device", str), ("profile", dict), ("smoke", dict)):
        if key in bundle and not isinstance(bundle[key], kind):
            raise ConfigError(f"'{path}': key '{key}' must be {kind.__name__}, got "
                              f"{type(bundle[key]).__name__}; the bundle is damaged: rebuild "
                              "it with edgessl deploy")
    sizes = bundle.get("profile", {}).get("batch_sizes")
    if sizes is not None:
        where = f"'{path}': key 'profile.batch_sizes'"
        if not isinstance(sizes, list) or not all(
                isinstance(b, int) and not isinstance(b, bool) for b in sizes):
            raise ConfigError(f"{where} must be a list of integers; the bundle is damaged: "
                              "rebuild it with edgessl deploy")
        check_value("batch_sizes", sizes, OPTION_RANGES["batch_size"], where)
    return bundle


def _models(bundle: dict, names: list[str] | None) -> list[dict]:
    entries = {m["name"]: m for m in bundle["models"]}
    if not names:
        return list(entries.values())
    for name in names:
        if name not in entries:
            raise unknown_choice("model in this bundle", name, entries)
    return [entries[n] for n in names]


def _default_model(bundle: dict) -> str:
    """The model the bundle's profile recommends (bundle.json "recommended"), else its first."""
    recommended = bundle.get("recommended")
    if isinstance(recommended, dict) and recommended.get("model") in {
            m["name"] for m in bundle["models"]}:
        return recommended["model"]
    return bundle["models"][0]["name"]


def _load(folder: Path, entry: dict, device: str | None, bundle: dict):
    """Load a bundled model: with the bundle's device profile (its providers, threads, hint
    and options), unless ``--device`` asked for a device explicitly."""
    from edgessl.runtime import load

    profile_file = folder / "profile.toml"
    if device is None and profile_file.is_file():
        import dataclasses

        from edgessl.devices.profile import profile_from_file

        profile = profile_from_file(profile_file)  # named after the file; use the real name
        name = bundle.get("profile", {}).get("name", profile.name)
        return load(folder / entry["path"], profile=dataclasses.replace(profile, name=name))
    return load(folder / entry["path"], device=device or bundle["device"])


def _smoke_images(folder: Path, bundle: dict) -> list[Path]:
    return [folder / p for p in bundle.get("smoke", {}).get("expected", {})]


def cmd_predict(folder: Path, bundle: dict, args) -> int:
    from edgessl.runtime.model import iter_image_files

    entry = _models(bundle, [args.model or _default_model(bundle)])[0]
    model = _load(folder, entry, args.device, bundle)
    files = iter_image_files(args.images)
    results = []
    for chunk in model.iter_predict(files, top_k=args.top_k):
        for p in chunk:
            if args.json:
                results.append(p.to_dict())
            elif p.embedding is not None:
                _print(f"{p.source}\tembedding[{p.embedding.size}]")
            else:
                _print(f"{p.source}\t" + "\t".join(f"{lb} {s:.3f}" for lb, s in p.top_k))
    if args.json:
        _write_json(args.json, {"model": entry["name"], "predictions": results}, args.force)
    return 0


def cmd_benchmark(folder: Path, bundle: dict, args) -> int:
    from edgessl.runtime.measure import benchmark, device_stamp

    profile = bundle.get("profile", {})
    sizes = args.batch_size or profile.get("batch_sizes") or [1]
    images = _smoke_images(folder, bundle) or None
    results = []
    for entry in _models(bundle, args.model):
        model = _load(folder, entry, args.device, bundle)
        first = None  # top-1 does not depend on the batch size: measured once per model
        for size in sizes:
            result = benchmark(model, batch_size=size, warmup=args.warmup,
                               iterations=args.iterations, images=images,
                               data=args.data if first is None else None, name=entry["path"])
            if first is not None:
                result.update(top1=first["top1"], val_images=first["val_images"])
            first = first or result
            results.append(result)
    if args.json:
        _write_json(args.json, {"host": device_stamp(), "bundle": bundle.get("name"),
                                "results": results}, args.force)
    if args.json != "-":
        _print(_table(results))
    return 0


def cmd_smoke(folder: Path, bundle: dict, args) -> int:
    expected = bundle.get("smoke", {}).get("expected", {})
    if not expected:
        raise ConfigError("this bundle has no smoke-test images; rebuild it with "
                          "edgessl deploy --smoke-per-class 2")
    failed = False
    for entry in _models(bundle, [args.model] if args.model else None):
        model = _load(folder, entry, args.device, bundle)
        files = list(expected)
        got = [p.label for p in model.predict([folder / f for f in files])]
        same = sum(g == expected[f].get(entry["name"]) for f, g in zip(files, got, strict=True))
        agreement = same / len(files)
        ok = agreement >= args.min_agreement
        failed |= not ok
        _print(f"{entry['name']}: {same}/{len(files)} smoke images agree with the host "
              f"({agreement:.0%}) on {model.execution.provider}: {'ok' if ok else 'FAILED'}")
    return 1 if failed else 0


def cmd_info(folder: Path, bundle: dict, args) -> int:
    from edgessl.runtime.measure import device_stamp

    print(json.dumps({"bundle": bundle.get("name"), "runtime": bundle["runtime"],
                      "device": bundle["device"], "models": [m["name"] for m in bundle["models"]],
                      "this_device": device_stamp()}, indent=2))
    return 0


def _print(text: str, file=None) -> None:
    """``print`` with control characters escaped (tabs and newlines kept): labels, file and
    model names come from files that may hold terminal escape sequences."""
    print(printable(text, lines=True), file=file or sys.stdout)


def _write_json(target: str, data: dict, force: bool) -> None:
    """Strict JSON to stdout ("-") or a file, as the host writes it (``edgessl.io``)."""
    if target == "-":
        print(dumps_json(data, "--json"), end="")
        return
    write_json(target, data, force=force)
    print(f"wrote {target}", file=sys.stderr)


def _table(results: list[dict]) -> str:
    head = ("model", "batch", "device/provider", "top-1 %", "p50 ms", "p90 ms", "p99 ms", "img/s")
    rows = [head] + [(
        r["model"], str(r["batch_size"]), f"{r['device']}/{r['provider']}",
        "-" if r["top1"] is None else f"{100 * r['top1']:.1f}",
        f"{r['latency']['p50_ms']:.3f}", f"{r['latency']['p90_ms']:.3f}",
        f"{r['latency']['p99_ms']:.3f}", f"{r['throughput_ips']:.1f}") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
                     for row in rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py", description="Run an edgessl deploy bundle.")
    p.add_argument("--device", help="device for the runtime [default: the bundle's profile's]")
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="classify images (files or folders)")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--model", help="which model of the bundle [default: the one its profile "
                                    "recommends, bundle.json 'recommended']")
    pr.add_argument("--top-k", type=int, default=1)
    pr.add_argument("--json", help="write predictions as JSON to this file ('-' = stdout)")
    pr.add_argument("--force", action="store_true", help="replace an existing --json file")
    be = sub.add_parser("benchmark", help="latency, throughput and top-1 on this device")
    be.add_argument("--model", action="append", help="model name (repeatable) [default: all]")
    be.add_argument("--batch-size", type=int, action="append",
                    help="batch size (repeatable) [default: the profile's batch sizes]")
    be.add_argument("--warmup", type=int, default=10)
    be.add_argument("--iterations", type=int, default=100)
    be.add_argument("--data", help="labeled folder (as for edgessl benchmark --data): top-1 on val")
    be.add_argument("--json", help="write results as JSON to this file ('-' = stdout)")
    be.add_argument("--force", action="store_true", help="replace an existing --json file")
    sm = sub.add_parser("smoke", help="check predictions on the bundled images against the host")
    sm.add_argument("--model")
    sm.add_argument("--min-agreement", type=float, default=0.9,
                    help="fraction of images that must match the host's labels (int8 may drift)")
    sub.add_parser("info", help="what the bundle holds and what this device is")
    return p


COMMANDS = {"predict": cmd_predict, "benchmark": cmd_benchmark, "smoke": cmd_smoke,
            "info": cmd_info}


def main(argv: list[str] | None = None, bundle_dir: str | Path = ".") -> int:
    """Run the bundle command line; returns the exit code (2 with one line for a user error)."""
    args = parser().parse_args(argv)
    folder = Path(bundle_dir)
    try:
        check_options(args)
        return COMMANDS[args.command](folder, read_bundle(folder), args)
    except EdgesslError as exc:
        _print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
