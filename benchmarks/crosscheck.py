"""Cross-check ``edgessl benchmark`` against the runtimes' own benchmark tools.

OpenVINO: its ``benchmark_app`` (shipped in the openvino wheel) and edgessl measure the same
IR with the same settings: CPU, LATENCY hint, synchronous API, one request, batch 1, input
reshaped to a static [1, 3, S, S], f32 inference for fp32 IRs, ``--threads`` inference
threads (default 1: on a small shared machine a multi-threaded run mostly measures who else is
running). benchmark_app gets the exact compile properties through ``-load_config``. Each tool
runs in a fresh process; rounds alternate between the two so that load from other processes
hits both alike, and the median of each tool's per-round p50 latency is compared: edgessl must
agree within 10%.

ONNX Runtime: its peer tool ``onnxruntime_perf_test`` is not in the pip wheel; when it is on
PATH it is used, else the output says so and shows a bare ``InferenceSession.run`` loop as a
reference (same session options; not an independent tool).

The model is made on the fly: edgessl's ``resnet_tiny`` classifier at 32 px (random weights;
latency does not depend on them) exported to OpenVINO IR fp32 and int8 and to ONNX fp32, with
the built-in digits (nothing is downloaded) for int8 calibration and export validation.

    python benchmarks/crosscheck.py              # writes benchmarks/results/crosscheck.{json,md}
    python benchmarks/crosscheck.py --rounds 3 --iterations 500
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_io import write_results

IMAGE_SIZE = 32
TOLERANCE = 0.10
RESULTS = Path(__file__).resolve().parent / "results"
PROFILE_TOML = """# The settings benchmark_app gets: CPU, LATENCY hint, static batch-1 input.
description = "crosscheck: OpenVINO CPU, latency hint, static [1, 3, S, S]"
runtimes = ["openvino", "onnxruntime"]
device = "CPU"
providers = ["CPUExecutionProvider"]
performance_hint = "LATENCY"
threads = {threads}
static_shapes = true
batch_sizes = [1]
"""


def make_models(work: Path) -> dict[str, Path]:
    """A resnet_tiny classifier at 32 px, exported as OpenVINO fp32/int8 and ONNX fp32."""
    import torch

    from edgessl.backbones import BackboneSpec, create_backbone
    from edgessl.checkpoint import ModelCard
    from edgessl.data.digits import write_digits
    from edgessl.export.api import ExportConfig, export_model
    from edgessl.models import Classifier, save_model

    data = write_digits(work / "digits", image_size=IMAGE_SIZE)
    torch.manual_seed(0)
    spec = BackboneSpec.for_images("resnet_tiny", IMAGE_SIZE)
    card = ModelCard(kind="classifier", backbone=spec.to_dict(), method="scratch",
                     labels=tuple(str(i) for i in range(10)),
                     data={"path": str(data), "val_fraction": 0.2, "seed": 0})
    checkpoint = save_model(Classifier(create_backbone(spec), 10).eval(), card,
                            work / "resnet_tiny-32")
    models = {}
    for fmt, precision in (("openvino", "fp32"), ("openvino", "int8"), ("onnx", "fp32")):
        out = work / f"{fmt}-{precision}"
        models[f"{fmt}-{precision}"] = export_model(checkpoint, ExportConfig(
            format=fmt, precision=precision, calib_size=64, out=str(out))).path
    return models


def benchmark_app_command() -> list[str] | None:
    """The benchmark_app console script, else ``python -m`` its module, else None."""
    found = shutil.which("benchmark_app")
    if found:
        return [found]
    try:
        import openvino.tools.benchmark.main  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "openvino.tools.benchmark.main"]


_STAT = re.compile(r"(Median|Average|Min|Max):\s+([\d.]+)\s+(us|ms)")


def openvino_properties(precision: str, threads: int) -> dict:
    """The compile properties edgessl uses for this IR on the crosscheck profile."""
    properties = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads)}
    if precision == "fp32":
        properties["INFERENCE_PRECISION_HINT"] = "f32"  # as edgessl compiles fp32 IRs
    return properties


def run_benchmark_app(command: list[str], xml: Path, properties: dict, iterations: int,
                      work: Path) -> dict:
    """benchmark_app's latency in ms (median, mean, min, max) and its execution devices."""
    config = work / "benchmark_app_config.json"
    config.write_text(json.dumps({"CPU": properties}))
    args = [*command, "-m", str(xml), "-d", "CPU", "-hint", "latency", "-api", "sync",
            "-niter", str(iterations), "-b", "1", "-load_config", str(config),
            "-shape", f"[1,3,{IMAGE_SIZE},{IMAGE_SIZE}]"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark_app failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    stats = {}
    for name, value, unit in _STAT.findall(done.stdout):
        stats[name.lower()] = float(value) / (1000.0 if unit == "us" else 1.0)
    devices = re.search(r"Execution Devices:\s*(.+)", done.stdout)
    fps = re.search(r"Throughput:\s+([\d.]+)\s+FPS", done.stdout)
    # benchmark_app's latencies are InferRequest.latency, timed inside the runtime; its FPS is
    # iterations over the loop's wall time, so 1000 / FPS is the wall time per inference.
    return {"p50_ms": stats["median"], "mean_ms": stats["average"], "min_ms": stats["min"],
            "max_ms": stats["max"], "wall_ms": 1000.0 / float(fps.group(1)) if fps else None,
            "executed_on": devices.group(1).strip() if devices else ""}


def run_edgessl(model: Path, profile: Path, iterations: int, work: Path) -> dict:
    """``edgessl benchmark`` on ``model`` with the crosscheck profile, in a fresh process like
    benchmark_app (so neither inherits the other's threads or the export's warm state)."""
    out = work / "edgessl-result.json"
    args = [sys.executable, "-m", "edgessl", "--quiet", "benchmark", str(model), "--profile",
            str(profile), "--warmup", "10", "--iterations", str(iterations),
            "--async-runs", "0", "--no-e2e", "--json", str(out), "--force"]  # every round
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"edgessl benchmark failed: {done.stdout[-2000:]}{done.stderr}")
    result = json.loads(out.read_text())["results"][0]
    lat = result["latency"]
    return {"p50_ms": lat["p50_ms"], "mean_ms": lat["mean_ms"], "min_ms": lat["min_ms"],
            "max_ms": lat["max_ms"], "executed_on": "+".join(result["executed_on"]),
            "settings": result["settings"]}


def run_ort_reference(onnx_path: Path, iterations: int, threads: int) -> dict:
    """A bare ONNX Runtime loop, in a fresh process (see ``ort_loop``)."""
    done = subprocess.run([sys.executable, __file__, "--ort-loop", str(onnx_path),
                           "--iterations", str(iterations), "--threads", str(threads)],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"ONNX Runtime loop failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def ort_loop(onnx_path: Path, iterations: int, threads: int) -> dict:
    """A bare ONNX Runtime loop (CPU EP, ``threads`` intra-op threads, batch 1) in ms."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).standard_normal((1, 3, IMAGE_SIZE, IMAGE_SIZE),
                                                  dtype=np.float32)
    for _ in range(10):
        session.run(None, {name: x})
    timings = []
    for _ in range(iterations):
        start = time.perf_counter()
        session.run(None, {name: x})
        timings.append(time.perf_counter() - start)
    ms = np.asarray(timings) * 1000
    return {"p50_ms": float(np.median(ms)), "mean_ms": float(ms.mean()),
            "min_ms": float(ms.min()), "max_ms": float(ms.max()),
            "executed_on": ",".join(session.get_providers())}


def compare(name: str, ours: list[dict], peer: list[dict], peer_name: str,
            independent: bool) -> dict:
    """One row: the median over rounds of each tool's p50 and mean, and their ratio."""
    p50_ours = statistics.median(r["p50_ms"] for r in ours)
    p50_peer = statistics.median(r["p50_ms"] for r in peer)
    mean_ours = statistics.median(r["mean_ms"] for r in ours)
    mean_peer = statistics.median(r["mean_ms"] for r in peer)
    ratio = p50_ours / p50_peer
    return {
        "model": name, "peer": peer_name, "independent_peer": independent,
        "edgessl_p50_ms": p50_ours, "peer_p50_ms": p50_peer, "p50_ratio": ratio,
        "edgessl_mean_ms": mean_ours, "peer_mean_ms": mean_peer,
        "mean_ratio": mean_ours / mean_peer,
        "peer_wall_ms_per_inference": statistics.median(
            r["wall_ms"] for r in peer) if all(r.get("wall_ms") for r in peer) else None,
        "edgessl_min_ms": min(r["min_ms"] for r in ours),
        "peer_min_ms": min(r["min_ms"] for r in peer),
        "within_tolerance": abs(ratio - 1) <= TOLERANCE if independent else None,
        "edgessl_executed_on": ours[0]["executed_on"], "peer_executed_on": peer[0]["executed_on"],
        "edgessl_settings": ours[0].get("settings", {}),
        "rounds": {"edgessl_p50_ms": [r["p50_ms"] for r in ours],
                   "peer_p50_ms": [r["p50_ms"] for r in peer]},
    }


def render(rows: list[dict], notes: list[str]) -> str:
    """The comparison as a Markdown table plus notes (also fine on a terminal)."""
    head = ("| model | peer tool | edgessl p50 ms | peer p50 ms | p50 ratio | edgessl mean ms | "
            "peer mean ms | peer wall ms/inference | edgessl min ms | peer min ms | within 10% |")
    out = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        verdict = {True: "yes", False: "NO", None: "n/a (reference loop)"}[r["within_tolerance"]]
        wall = ("-" if r["peer_wall_ms_per_inference"] is None
                else f"{r['peer_wall_ms_per_inference']:.4f}")
        out.append(f"| {r['model']} | {r['peer']} | {r['edgessl_p50_ms']:.4f} | "
                   f"{r['peer_p50_ms']:.4f} | {r['p50_ratio']:.3f} | {r['edgessl_mean_ms']:.4f} | "
                   f"{r['peer_mean_ms']:.4f} | {wall} | {r['edgessl_min_ms']:.4f} | "
                   f"{r['peer_min_ms']:.4f} | {verdict} |")
    return "\n".join(out + [""] + [f"- {n}" for n in notes]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds per tool")
    parser.add_argument("--iterations", type=int, default=300, help="timed runs per round")
    parser.add_argument("--threads", type=int, default=1, help="inference threads, both tools")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    parser.add_argument("--ort-loop", type=Path, help=argparse.SUPPRESS)  # internal
    parser.add_argument("--make-models", type=Path, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    if args.ort_loop:
        print(json.dumps(ort_loop(args.ort_loop, args.iterations, args.threads)))
        return 0
    if args.make_models:
        print(json.dumps({k: str(v) for k, v in make_models(args.make_models).items()}))
        return 0

    from edgessl.benchmark.report import host_line, host_stamp

    command = benchmark_app_command()
    if command is None:
        print("OpenVINO's benchmark_app is not installed (pip install openvino); nothing to "
              "cross-check", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edgessl-crosscheck-") as tmp:
        work = Path(tmp)
        # Exporting (torch, NNCF) happens in a child process: this one stays idle while the
        # tools measure, with no thread pools left spinning from the export.
        done = subprocess.run([sys.executable, __file__, "--make-models", str(work)],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"making the models failed: {done.stderr[-2000:]}")
        models = {k: Path(v) for k, v in json.loads(done.stdout.splitlines()[-1]).items()}
        profile = work / "crosscheck.toml"
        profile.write_text(PROFILE_TOML.format(threads=args.threads))
        rows = []
        for name in ("openvino-fp32", "openvino-int8"):
            ours, peer = [], []
            for _ in range(args.rounds):
                ours.append(run_edgessl(models[name], profile, args.iterations, work))
                properties = openvino_properties(name.split("-")[1], args.threads)
                peer.append(run_benchmark_app(command, models[name], properties,
                                              args.iterations, work))
            rows.append(compare(f"resnet_tiny-32 {name}", ours, peer,
                                "benchmark_app (OpenVINO)", True))
        perf_test = shutil.which("onnxruntime_perf_test")
        ours, ref = [], []
        for _ in range(args.rounds):
            ours.append(run_edgessl(models["onnx-fp32"], profile, args.iterations, work))
            ref.append(run_ort_reference(models["onnx-fp32"], args.iterations, args.threads))
        rows.append(compare("resnet_tiny-32 onnx-fp32", ours, ref,
                            "bare InferenceSession.run loop", False))
    stamp = host_stamp()
    notes = [
        f"OpenVINO: same IR, CPU, LATENCY hint, sync API, batch 1, static [1,3,{IMAGE_SIZE},"
        f"{IMAGE_SIZE}], f32 inference for fp32, {args.threads} inference thread(s) (the same "
        "compile properties given to benchmark_app with -load_config); each tool in a fresh "
        f"process, {args.rounds} alternating rounds of {args.iterations} runs, median over "
        "rounds of each round's p50; within 10% means |p50 ratio - 1| <= 0.10",
        "benchmark_app's latencies are InferRequest.latency, timed inside the runtime (without "
        "the Python call); edgessl times the call an application makes (input copy, infer, "
        "output copy), so a few µs more per run are expected; 'peer wall ms/inference' is "
        "benchmark_app's loop wall time per inference (1000 / FPS), timed like edgessl's mean",
        "ONNX Runtime: " + (f"onnxruntime_perf_test found at {perf_test} but not wired in; "
                            if perf_test else
                            "no peer tool: onnxruntime_perf_test is not in the onnxruntime pip "
                            "wheel (it comes with a source build); ") +
        "compared with a bare InferenceSession.run loop as a reference only",
        f"host: {host_line(stamp)}",
    ]
    text = render(rows, notes)
    print(text)
    write_results(args.out, "crosscheck",
                  {"host": stamp, "rounds": args.rounds, "iterations": args.iterations,
                   "tolerance": TOLERANCE, "rows": rows, "notes": notes},
                  "# edgessl benchmark cross-check\n\n" + text)
    print(f"wrote {args.out / 'crosscheck.json'} and {args.out / 'crosscheck.md'}")
    failed = [r for r in rows if r["within_tolerance"] is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
