"""The command line of a deploy bundle's ``run.py``: predict, benchmark, smoke test, info.

Standard library (argparse) plus numpy, Pillow and the bundle's runtime: this runs on the
device, where neither edgessl's CLI dependencies nor torch are installed. The bundle's
``bundle.json`` (written by ``edgessl deploy``) says which models it holds and how to run them.

    python run.py predict photo.jpg more_photos/ --top-k 3
    python run.py benchmark --data my_labeled_images --json results.json
    python run.py benchmark --time 5 --batch-sizes 1,8,32 --requests 4 --no-e2e
    python run.py smoke

``benchmark`` measures with ``edgessl.runtime.bench.measure``, the code ``edgessl benchmark``
measures with on the host, and takes the same options, so the figures are comparable
(``edgessl benchmark --remote`` runs it over SSH).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from edgessl.config import MAX_BATCH, Range, check_value
from edgessl.errors import (
    ConfigError,
    DeviceUnavailableError,
    EdgesslError,
    printable,
    unknown_choice,
)
from edgessl.io import check_outputs, dumps_json, write_json
from edgessl.limits import MAX_CLASSES

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = "edgessl-bundle/1"
# The runner's own numeric options, checked as edgessl's flags are (edgessl.config.Range); the
# benchmark's timing options are MeasureConfig's fields, checked by MeasureConfig itself.
OPTION_RANGES = {"top_k": Range(ge=1, le=MAX_CLASSES), "batch_size": Range(ge=1, le=MAX_BATCH),
                 "min_agreement": Range(ge=0, le=1, note="a fraction")}


def check_options(args) -> None:
    """FieldError naming the option (``--top-k``, ``--time``) for a number outside its range,
    ConfigError for an unknown ``--inference-precision``, and OutputExistsError for a
    ``--json`` file that exists without ``--force`` (all before any work)."""
    for name, rng in OPTION_RANGES.items():
        value = getattr(args, name, None)
        if value is not None:
            check_value(name, value, rng, "--" + name.replace("_", "-"))
    if args.command == "benchmark":
        measure_config(args, 1)
        from edgessl.devices.profile import INFERENCE_PRECISIONS

        for precision in args.inference_precision or ():
            if precision not in INFERENCE_PRECISIONS:
                raise unknown_choice("--inference-precision", precision, INFERENCE_PRECISIONS)
    if getattr(args, "json", None) is not None:
        check_outputs({"--json": args.json}, force=args.force)


def measure_config(args, batch_size: int):
    """The benchmark options as a MeasureConfig for one batch size (what the host takes)."""
    from edgessl.runtime.bench import MeasureConfig, parse_batch_sizes

    return MeasureConfig(warmup=args.warmup, iterations=args.iterations, time_budget_s=args.time,
                         batch_size=batch_size, batch_sizes=parse_batch_sizes(args.batch_sizes),
                         async_runs=args.async_runs, async_requests=args.requests,
                         end_to_end=args.e2e)


def read_bundle(folder: Path, fmt: str = BUNDLE_FORMAT) -> dict:
    """The bundle description ``bundle.json`` in ``folder``, of format ``fmt`` (an image
    bundle's, or ``edgessl.text.bundle_cli``'s for text)."""
    path = Path(folder) / BUNDLE_FILE
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read '{path}' ({exc}); run this script from an unpacked "
                          "edgessl deploy bundle") from None
    if not isinstance(bundle, dict) or bundle.get("format") != fmt:
        raise ConfigError(f"'{path}' is not an {fmt} bundle; rebuild it with "
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


def select_models(bundle: dict, names: list[str] | None) -> list[dict]:
    """The bundle's entries named (in that order), else all of them (the default first)."""
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


def _profile(folder: Path, bundle: dict, device: str | None, precision: str | None):
    """The DeviceProfile to load with: the bundle's (its providers, threads, hint and options),
    unless ``--device`` asked for a device explicitly; with an inference precision, that
    profile (or one for the device) at that precision, named ``<profile>@<precision>`` as on
    the host. None = runtime defaults on the device.

    Raises:
        ConfigError: an inference precision this bundle's runtime has no setting for.
    """
    import dataclasses

    from edgessl.devices.profile import DeviceProfile, profile_from_file

    profile = None
    profile_file = folder / "profile.toml"
    if device is None and profile_file.is_file():
        profile = profile_from_file(profile_file)  # named after the file; use the real name
        profile = dataclasses.replace(profile, name=bundle.get("profile", {}).get("name",
                                                                                  profile.name))
    if precision is None:
        return profile
    from edgessl.runtime.bench import precision_variants
    from edgessl.runtime_specs import RUNTIME_SPECS

    runtime = bundle["runtime"]
    if precision not in RUNTIME_SPECS.get(runtime).inference_precisions:
        able = [n for n, s in RUNTIME_SPECS.items() if s.inference_precisions]
        raise ConfigError(f"--inference-precision applies to {' and '.join(able)}; this bundle "
                          f"runs {runtime}: build one with edgessl deploy --runtime {able[0]}")
    if profile is None:
        where = device or bundle["device"]
        profile = DeviceProfile(name=where.lower(), runtimes=(runtime,), device=where)
    return precision_variants([profile], [precision])[0]


def _load(folder: Path, entry: dict, device: str | None, bundle: dict, profile=None):
    """Load a bundled model with ``profile`` (default: the bundle's, see ``_profile``), or
    on the device that ``--device`` asked for."""
    from edgessl.runtime import load

    profile = profile or _profile(folder, bundle, device, None)
    if profile is not None:
        return load(folder / entry["path"], profile=profile)
    return load(folder / entry["path"], device=device or bundle["device"])


def _smoke_images(folder: Path, bundle: dict) -> list[Path]:
    return [folder / p for p in bundle.get("smoke", {}).get("expected", {})]


def cmd_predict(folder: Path, bundle: dict, args) -> int:
    from edgessl.runtime.model import iter_image_files, refuse_blank_paths

    refuse_blank_paths(args.images)
    entry = select_models(bundle, [args.model or _default_model(bundle)])[0]
    model = _load(folder, entry, args.device, bundle)
    files = iter_image_files(args.images)
    results = []
    for chunk in model.iter_predict(files, top_k=args.top_k):
        for p in chunk:
            if args.json:
                results.append(p.to_dict())
            elif p.embedding is not None:
                print_line(f"{p.source}\tembedding[{p.embedding.size}]")
            else:
                print_line(f"{p.source}\t" + "\t".join(f"{lb} {s:.3f}" for lb, s in p.top_k))
    if args.json:
        write_output(args.json, {"model": entry["name"], "predictions": results}, args.force)
    return 0


def cmd_benchmark(folder: Path, bundle: dict, args) -> int:
    from edgessl.runtime.measure import device_stamp

    entries = select_models(bundle, args.model)
    precisions = args.inference_precision or [None]
    profiles = {p: _profile(folder, bundle, args.device, p) for p in precisions}
    several = len(entries) * len(precisions) > 1
    results = [r for entry in entries for p in precisions
               for r in _benchmark_entry(folder, bundle, entry, profiles[p], args, several)]
    if all(r.skipped for r in results):
        raise DeviceUnavailableError(f"nothing to measure: {results[0].skipped}")
    if args.json:
        write_output(args.json, {"host": device_stamp(), "bundle": bundle.get("name"),
                                "results": [r.to_dict() for r in results]}, args.force)
    if args.json != "-":
        print_line(_table(results))
    return 0


def _benchmark_entry(folder: Path, bundle: dict, entry: dict, profile, args, several: bool
                     ) -> list:
    """One model on one profile: a BenchmarkResult per batch size (``--batch-size``, else the
    profile's), or one skipped result when the device cannot run it and ``several``."""
    from edgessl.runtime.accuracy import load_val
    from edgessl.runtime.bench import Target, measure
    from edgessl.runtime.measure import reset_peak_rss
    from edgessl.runtime.result import BenchmarkResult

    reset_peak_rss()
    try:
        model = _load(folder, entry, args.device, bundle, profile)
    except DeviceUnavailableError as exc:  # e.g. a precision this device lacks: say so
        if not several:
            raise
        return [BenchmarkResult(model=entry["path"], profile=getattr(profile, "name", ""),
                                runtime=bundle["runtime"], skipped=str(exc))]
    data = None if args.data is None else load_val(args.data, model.meta)
    sources = [p for p, _ in data.val] if data is not None else _smoke_images(folder, bundle)
    target = Target.of(entry["path"], profile, args.device or bundle["device"])
    sizes = args.batch_size or bundle.get("profile", {}).get("batch_sizes") or [1]
    rows = []
    for size in sizes:  # top-1 does not depend on the batch size: scored once per model
        result = measure(model.loaded, measure_config(args, size), target, sources or None,
                         data=None if rows else data)
        if rows:
            result = dataclasses.replace(result, top1=rows[0].top1,
                                         val_images=rows[0].val_images)
        rows.append(result)
    return rows


def cmd_smoke(folder: Path, bundle: dict, args) -> int:
    expected = bundle.get("smoke", {}).get("expected", {})
    if not expected:
        raise ConfigError("this bundle has no smoke-test images; rebuild it with "
                          "edgessl deploy --smoke-per-class 2")
    failed = False
    for entry in select_models(bundle, [args.model] if args.model else None):
        model = _load(folder, entry, args.device, bundle)
        files = list(expected)
        got = [p.label for p in model.predict([folder / f for f in files])]
        same = sum(g == expected[f].get(entry["name"]) for f, g in zip(files, got, strict=True))
        agreement = same / len(files)
        ok = agreement >= args.min_agreement
        failed |= not ok
        print_line(f"{entry['name']}: {same}/{len(files)} smoke images agree with the host "
              f"({agreement:.0%}) on {model.execution.provider}: {'ok' if ok else 'FAILED'}")
    return 1 if failed else 0


def cmd_info(folder: Path, bundle: dict, args) -> int:
    from edgessl.runtime.measure import device_stamp

    print(json.dumps({"bundle": bundle.get("name"), "runtime": bundle["runtime"],
                      "device": bundle["device"], "models": [m["name"] for m in bundle["models"]],
                      "this_device": device_stamp()}, indent=2))
    return 0


def print_line(text: str, file=None) -> None:
    """``print`` with control characters escaped (tabs and newlines kept): labels, file and
    model names come from files that may hold terminal escape sequences."""
    print(printable(text, lines=True), file=file or sys.stdout)


def write_output(target: str, data: dict, force: bool) -> None:
    """Strict JSON to stdout ("-") or a file, as the host writes it (``edgessl.io``)."""
    if target == "-":
        print(dumps_json(data, "--json"), end="")
        return
    write_json(target, data, force=force)
    print(f"wrote {target}", file=sys.stderr)


def _table(results: list) -> str:
    """The results as aligned text (one line per batch size), skipped targets and the batch
    sweep below."""
    head = ("model", "batch", "device/provider", "top-1 %", "p50 ms", "p90 ms", "p99 ms",
            "e2e p50 ms", "img/s", "async img/s")
    rows, notes = [head], []
    for r in results:
        name = r.model + (f" on {r.profile}" if r.profile else "")
        if r.skipped:
            notes.append(f"skipped: {name}: {r.skipped}")
            continue
        lat, e2e, a = r.latency, r.e2e_latency, r.async_throughput
        rows.append((name, str(r.batch_size), f"{r.device}/{r.provider}",
                     "-" if r.top1 is None else f"{100 * r.top1:.1f}", f"{lat.p50_ms:.3f}",
                     f"{lat.p90_ms:.3f}", f"{lat.p99_ms:.3f}",
                     "-" if e2e is None else f"{e2e.p50_ms:.3f}", f"{r.throughput_ips:.1f}",
                     "-" if a is None else f"{a.throughput_ips:.1f}"))
        if r.sweep:
            notes.append(f"batch sweep of {name}: " + ", ".join(
                f"b{p.batch_size} {p.throughput_ips:.0f} img/s (p50 {p.p50_ms:.3f} ms)"
                for p in r.sweep))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join(["  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                                for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
                      for row in rows] + notes)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, as edgessl's own (argparse prints the whole
    usage box first), naming where to get help; exit code 2 as argparse's."""

    def error(self, message: str):
        print_line(f"error: {printable(message)}; see 'python {self.prog} --help'",
                   file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py", description="Run an edgessl deploy bundle.")
    p.add_argument("--device", help="device for the runtime [default: the bundle's profile's]")
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="classify images (files or folders)")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--model", help="which model of the bundle [default: the one its profile "
                                    "recommends, bundle.json 'recommended']")
    pr.add_argument("--top-k", type=int, default=1)
    pr.add_argument("--json", help="write predictions as JSON to this file ('-' = stdout)")
    pr.add_argument("--force", action="store_true", help="replace an existing --json file")
    be = sub.add_parser("benchmark", help="latency, throughput, memory and top-1 on this device, "
                                          "measured as edgessl benchmark does on the host")
    be.add_argument("--model", action="append", help="model name (repeatable) [default: all]")
    be.add_argument("--batch-size", type=int, action="append",
                    help="batch size, one result each (repeatable) [default: the profile's "
                         "batch sizes]")
    be.add_argument("--batch-sizes", metavar="1,8,32",
                    help="synchronous throughput sweep at these batch sizes, in each result")
    be.add_argument("--warmup", type=int, default=10, help="untimed runs before timing")
    be.add_argument("--iterations", type=int, default=100, help="timed runs per measurement")
    be.add_argument("--time", type=float, metavar="SECONDS",
                    help="seconds per measurement instead of a fixed --iterations")
    be.add_argument("--async-runs", type=int, default=200,
                    help="batches in the asynchronous throughput run; 0 skips it")
    be.add_argument("--requests", type=int, default=0,
                    help="inferences in flight for it; 0 = the profile's / the runtime's optimum")
    be.add_argument("--e2e", action=argparse.BooleanOptionalAction, default=True,
                    help="also time decode + resize + preprocess + infer")
    be.add_argument("--inference-precision", action="append", metavar="PRECISION",
                    help="f32, bf16 or f16: compute float layers in it (OpenVINO), one result "
                         "each; refused where the device does not (repeatable)")
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
        print_line(f"error: {printable(exc)}", file=sys.stderr)
        return 2
