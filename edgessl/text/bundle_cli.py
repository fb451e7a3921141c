"""``run.py`` of a text bundle: classify strings, benchmark and smoke-test on the device.

What ``edgessl deploy TEXT_MODEL`` writes (``edgessl.text.bundle``)::

    run.py              python run.py predict "a sentence" ... | benchmark | smoke | info
    bundle.json         the models, the one the build recommends (the default), smoke texts
    models/<name>/      an exported text model folder (model file, tokenizer.json, sidecar)
    lib/edgessl/        this light part of edgessl (no torch, no transformers)
    requirements.txt    numpy, tokenizers and the model's runtime

Errors are one line on stderr with exit code 2, as on the host. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from edgessl.errors import CheckpointError, ConfigError, EdgesslError, printable
from edgessl.io import check_outputs
from edgessl.runtime.bundle_cli import (
    OneLineParser,
    print_line,
    read_bundle,
    select_models,
    write_output,
)

BUNDLE_FORMAT = "edgessl-text-bundle/1"
# OpenVINO's compiled models, kept in the bundle: the first run on a device compiles and
# writes them, later runs load them (MiniLM: 0.6 s -> 0.2 s). Not used where not writable.
CACHE_DIR = ".ov_cache"


def _cache(folder: Path, bundle: dict) -> Path | None:
    if bundle.get("runtime") != "openvino":
        return None
    cache = folder / CACHE_DIR
    try:
        cache.mkdir(exist_ok=True)
    except OSError:  # a read-only bundle: compile every time
        return None
    return cache if os.access(cache, os.W_OK) else None


def _folder(folder: Path, entry: dict) -> Path:
    path = (folder / entry["path"]).resolve()
    if folder.resolve() not in path.parents:
        raise CheckpointError(f"bundle.json names model path '{printable(entry['path'])}' "
                              "outside the bundle; copy the bundle again")
    return path


def _read_texts(args) -> list[str]:
    from edgessl.text.runtime import check_texts, read_text_lines

    texts = list(args.texts or []) + (read_text_lines(args.file) if args.file else [])
    if not texts:
        raise ConfigError("no text to classify; give texts after predict, or --file")
    check_texts(texts, "the bundle's model")
    return texts


def cmd_predict(folder: Path, bundle: dict, args) -> int:
    from edgessl.text.runtime import TextPredictor

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be 1 or more, got {args.top_k}")
    if args.json not in (None, "-"):
        check_outputs({"--json": Path(args.json)}, {}, force=args.force)
    texts = _read_texts(args)
    entry = select_models(bundle, [args.model] if args.model else None)[0]
    predictor = TextPredictor(_folder(folder, entry), threads=args.threads,
                              cache_dir=_cache(folder, bundle))
    found = predictor.top_k(texts, args.top_k)
    for p in [] if args.json else found:
        print_line(f"{p['text']}\t" + "\t".join(f"{lb} {s:.3f}" for lb, s in p["top_k"]))
    if args.json:
        write_output(args.json, {"model": entry["name"], "runtime": predictor.runtime,
                                "predictions": found}, args.force)
    return 0


def cmd_benchmark(folder: Path, bundle: dict, args) -> int:
    from edgessl.text.bench import measure_text, render_text_table

    smoke = bundle.get("smoke") or {}
    texts, labels = smoke.get("texts") or [], smoke.get("labels")
    if args.file:
        texts, labels = _read_texts(argparse.Namespace(texts=[], file=args.file)), None
    if not texts:
        raise ConfigError("this bundle has no smoke texts to time; pass --file with one "
                          "sentence per line")
    if args.json not in (None, "-"):
        check_outputs({"--json": Path(args.json)}, {}, force=args.force)
    cache = _cache(folder, bundle)
    results = [measure_text(_folder(folder, entry), texts, labels, runs=args.runs,
                            warmup=args.warmup, threads=args.threads, cache_dir=cache)
               for entry in select_models(bundle, args.model)]
    if args.json:
        write_output(args.json, {"bundle": bundle.get("name"),
                                "results": [r.to_dict() for r in results]}, args.force)
    if args.json != "-":
        print_line(render_text_table(results))
    return 0


def cmd_smoke(folder: Path, bundle: dict, args) -> int:
    from edgessl.text.runtime import TextPredictor

    smoke = bundle.get("smoke") or {}
    texts, expected = smoke.get("texts") or [], smoke.get("expected") or {}
    if not texts:
        raise ConfigError("this bundle has no smoke texts; rebuild it with edgessl deploy "
                          "--smoke-per-class 2")
    failed = False
    for entry in select_models(bundle, [args.model] if args.model else None):
        predictor = TextPredictor(_folder(folder, entry), threads=args.threads,
                              cache_dir=_cache(folder, bundle))
        want = expected.get(entry["name"]) or []
        got = [p.label for p in predictor.predict(texts)]
        same = sum(g == w for g, w in zip(got, want, strict=False))
        agreement = same / len(texts)
        ok = len(want) == len(texts) and agreement >= args.min_agreement
        failed |= not ok
        print_line(f"{entry['name']}: {same}/{len(texts)} smoke texts agree with the host "
               f"({agreement:.0%}) on {predictor.runtime}: {'ok' if ok else 'FAILED'}")
    return 1 if failed else 0


def cmd_info(folder: Path, bundle: dict, args) -> int:
    from edgessl.runtime.measure import device_stamp

    print(json.dumps({"bundle": bundle.get("name"), "runtime": bundle.get("runtime"),
                      "models": [m["name"] for m in bundle["models"]],
                      "recommended": bundle.get("recommended"),
                      "this_device": device_stamp()}, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="run.py", description="Run an edgessl text bundle.")
    p.add_argument("--threads", type=int, help="inference threads [default: the runtime's]")
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="classify texts (arguments, or --file lines)")
    pr.add_argument("texts", nargs="*")
    pr.add_argument("--file", help="a UTF-8 file of texts, one per line")
    pr.add_argument("--model", help="which model of the bundle [default: the recommended one]")
    pr.add_argument("--top-k", type=int, default=1)
    pr.add_argument("--json", help="write predictions as JSON to this file ('-' = stdout)")
    pr.add_argument("--force", action="store_true", help="replace an existing --json file")
    be = sub.add_parser("benchmark", help="ms per sentence (tokenize + run), load time, top-1 "
                                          "on the smoke texts, as edgessl benchmark measures")
    be.add_argument("--model", action="append", help="model name (repeatable) [default: all]")
    be.add_argument("--runs", type=int, default=200, help="timed sentences")
    be.add_argument("--warmup", type=int, default=10, help="untimed sentences first")
    be.add_argument("--file", help="time these sentences (one per line) instead")
    be.add_argument("--json", help="write results as JSON to this file ('-' = stdout)")
    be.add_argument("--force", action="store_true", help="replace an existing --json file")
    sm = sub.add_parser("smoke", help="check predictions on the bundled texts against the host")
    sm.add_argument("--model")
    sm.add_argument("--min-agreement", type=float, default=0.9,
                    help="fraction of texts that must match the host's labels")
    sub.add_parser("info", help="what the bundle holds and what this device is")
    return p


COMMANDS = {"predict": cmd_predict, "benchmark": cmd_benchmark, "smoke": cmd_smoke,
            "info": cmd_info}


def main(argv: list[str] | None = None, bundle_dir: str | Path = ".") -> int:
    """Run the text bundle's command line; returns the exit code (2 for a user error)."""
    args = parser().parse_args(argv)
    folder = Path(bundle_dir)
    try:
        if args.threads is not None and not 1 <= args.threads <= 1024:
            raise ConfigError(f"--threads must be 1 to 1024, got {args.threads}")
        return COMMANDS[args.command](folder, read_bundle(folder, BUNDLE_FORMAT), args)
    except EdgesslError as exc:
        print_line(f"error: {printable(exc)}", file=sys.stderr)
        return 2
