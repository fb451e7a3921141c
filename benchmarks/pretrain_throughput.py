"""Pretraining throughput: images/s of each SSL method on each backbone, on this machine.

What is measured is what ``edgessl pretrain`` does per step, in steady state. Each row builds
the objects ``edgessl.ssl.pretrain.pretrain`` builds, with its own helpers and defaults: the
method class from ``METHODS`` with its default options, ``BatchViews`` with the method's
augmentation preset (DINO's local crops included), the optimiser and LR from ``_setup``
(``build_optimizer``), channels-last and precision as ``_setup`` decides (channels-last for
CNNs; bf16 autocast on GPUs that support it), and the seeded ``epoch_loader`` over an
``ImageDataset``. Each step is then one call of pretrain's own ``_train_epoch`` on one
batch: loading the batch, augmenting it on the CPU, forward, backward, optimiser and
scheduler step, EMA/teacher update and the loss/collapse monitoring. ``--warmup`` steps are
run first and not timed (allocator, oneDNN/cuDNN kernel choice); the table gives the median
of ``--steps`` timed steps, and images/s = batch / median step time (images, not views).
Not included: decoding image files (done once when a dataset is loaded) and the
per-epoch checkpoint and kNN evaluation.

Images are random noise PNGs of ``--image-size`` px, ``--batch-size`` of them (the cost of a
step does not depend on the pixels). Each row runs in a fresh Python process, so its peak RSS
(``resource.getrusage``; includes torch itself, ~0.3-0.5 GB) is that row's alone.
MAE rows are only run on ViT backbones (it needs patch tokens).

    python benchmarks/pretrain_throughput.py   # -> benchmarks/results/pretrain_throughput.{json,md}
    python benchmarks/pretrain_throughput.py --methods simclr dino --backbones resnet_tiny_s2
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # a test loads this file by path
    sys.path.append(str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_BACKBONES = ("resnet_tiny_s2", "resnet_tiny", "vit_tiny")
# (JSON key, Markdown header): the table's columns, in order.
COLUMNS = (
    ("method", "method"), ("backbone", "backbone"), ("params_m", "params (M)"),
    ("trained_params_m", "trained params (M)"), ("batch", "batch"),
    ("views", "views (incl. local)"), ("step_ms", "step ms (median)"),
    ("images_per_s", "images/s"), ("peak_rss_mb", "peak RSS MB"), ("device", "device"),
    ("precision", "precision"), ("threads", "threads"),
)


@dataclass(frozen=True)
class Settings:
    """How each row is measured.

    Attributes:
        batch_size: images per step.
        steps: timed steps (the median is reported).
        warmup: untimed steps before them.
        device: "cpu", "cuda" or "cuda:N".
        image_size: side of the images and global views in pixels.
        channels_last: NHWC layout; None = pretrain's default (on for CNNs).
    """

    batch_size: int = 256
    steps: int = 5
    warmup: int = 2
    device: str = "cpu"
    image_size: int = 32
    channels_last: bool | None = None


def synthetic_images(folder: Path, count: int, size: int, seed: int = 0) -> Path:
    """``count`` random-noise RGB PNGs of ``size`` px in ``folder``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")
    return folder


class _NoBar:
    """Stands in for pretrain's tqdm bar."""

    def set_postfix(self, **_values) -> None:
        pass

    def update(self, _n: int = 1) -> None:
        pass


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(method: str, backbone: str, settings: Settings, data: Path) -> dict:
    """Time pretraining steps of ``method`` on ``backbone`` over the images in ``data``.

    ``data`` must hold at least ``settings.batch_size`` images. See the module docstring for
    what one step includes.

    Returns:
        One table row: the ``COLUMNS`` keys plus ``step_ms_all`` (every timed step, ms),
        ``local_crops``, ``optimizer``, ``channels_last`` and ``peak_cuda_mb`` (GPU only).

    Raises:
        ConfigError: an unknown method or backbone, or MAE on a CNN.
    """
    import torch

    from edgessl.backbones import BackboneSpec, create_backbone
    from edgessl.checkpoint import IMAGENET_MEAN, IMAGENET_STD
    from edgessl.data.images import find_images
    from edgessl.data.tensors import ImageDataset
    from edgessl.errors import ConfigError
    from edgessl.ssl import METHODS
    from edgessl.ssl import pretrain as pt
    from edgessl.ssl.augment import BatchViews
    from edgessl.ssl.base import build_method_config
    from edgessl.ssl.ddp import Distributed
    from edgessl.ssl.optim import build_optimizer
    from edgessl.training import GracefulStop, cosine_with_warmup, seed_everything

    config = pt.PretrainConfig(data=str(data), method=method, backbone=backbone,
                               image_size=settings.image_size, epochs=1,
                               batch_size=settings.batch_size, device=settings.device,
                               channels_last=settings.channels_last)
    pt._check(config)
    method_cls = METHODS.get(method)
    dist = Distributed()
    seed_everything(config.seed)
    net = create_backbone(BackboneSpec.for_images(backbone, settings.image_size))
    if method_cls.needs_vit and not pt._is_vit(net):
        raise ConfigError(f"{method} needs a ViT backbone, not '{backbone}'")
    setup = pt._setup(config, method_cls, net, dist, settings.batch_size, continued=False)
    views = BatchViews(setup.augment, settings.image_size, IMAGENET_MEAN, IMAGENET_STD,
                       method_cls.num_views)
    dataset = ImageDataset(find_images(data)[:settings.batch_size], settings.image_size)
    if len(dataset) < settings.batch_size:
        raise ConfigError(f"'{data}' has {len(dataset)} images, fewer than the batch of "
                          f"{settings.batch_size}")
    model = method_cls(net, build_method_config(method_cls, {})).to(setup.device).train()
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, setup.optimizer, setup.lr, config.weight_decay)
    total = settings.warmup + settings.steps
    run = pt._Run(model, optimizer, cosine_with_warmup(optimizer, total, 0))
    if setup.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(setup.device)
    times = []
    for step in range(total):
        # The dataset is one batch, so every epoch is one step, as in a real epoch's steps.
        batches = iter(pt.epoch_loader(dataset, settings.batch_size, config.seed, step, 0))
        _synchronize(setup.device)
        start = time.perf_counter()
        batch = next(batches)
        pt._train_epoch(run, model, model, [batch], views, setup, total, _NoBar(),
                        GracefulStop(), dist, config.grad_clip, Path(data))
        _synchronize(setup.device)
        if step >= settings.warmup:
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {
        "method": method, "backbone": backbone,
        "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 3),
        "trained_params_m": round(sum(p.numel() for p in model.parameters()
                                      if p.requires_grad) / 1e6, 3),
        "batch": settings.batch_size,
        "views": method_cls.num_views + setup.augment.local_crops,
        "local_crops": setup.augment.local_crops,
        "step_ms": round(step_s * 1e3, 2), "images_per_s": round(settings.batch_size / step_s, 1),
        # ru_maxrss is in KiB on Linux
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_cuda_mb": (round(torch.cuda.max_memory_allocated(setup.device) / 2**20, 1)
                         if setup.device.type == "cuda" else None),
        "device": str(setup.device), "precision": "bf16" if setup.bf16 else "fp32",
        "threads": torch.get_num_threads(), "optimizer": setup.optimizer,
        "channels_last": setup.channels_last, "image_size": settings.image_size,
        "step_ms_all": [round(t * 1e3, 2) for t in times],
    }


def _pairs(methods: list[str], backbones: list[str], image_size: int):
    """(method, backbone) rows to run, and notes on the ones left out (MAE on CNNs)."""
    import torch

    from edgessl.backbones import BackboneSpec, create_backbone
    from edgessl.ssl import METHODS
    from edgessl.ssl.pretrain import _is_vit

    classes = {m: METHODS.get(m) for m in methods}  # unknown names fail here, with a hint
    is_vit = {}
    for b in backbones:
        with torch.device("meta"):  # checks the name and the size without allocating weights
            is_vit[b] = _is_vit(create_backbone(BackboneSpec.for_images(b, image_size)))
    pairs, notes = [], []
    for m in methods:
        for b in backbones:
            if classes[m].needs_vit and not is_vit[b]:
                notes.append(f"{m} on {b}: not run, {m} needs a ViT backbone")
            else:
                pairs.append((m, b))
    return pairs, notes


def _run_row(method: str, backbone: str, settings: Settings, data: Path) -> dict:
    """``measure`` in a fresh process (its own peak RSS, no state left by earlier rows)."""
    command = [sys.executable, __file__, "--row", f"{method}:{backbone}", "--data", str(data),
               "--batch-size", str(settings.batch_size), "--steps", str(settings.steps),
               "--warmup", str(settings.warmup), "--device", settings.device,
               "--image-size", str(settings.image_size),
               *({True: ["--channels-last"], False: ["--no-channels-last"]}
                 .get(settings.channels_last, []))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {"method": method, "backbone": backbone, "error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def render_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (failed rows show their error)."""
    columns = list(COLUMNS)
    if any(r.get("peak_cuda_mb") is not None for r in rows):
        columns.insert(9, ("peak_cuda_mb", "peak GPU MB"))
    lines = ["| " + " | ".join(h for _, h in columns) + " |",
             "|" + "|".join("---" if k in ("method", "backbone", "device", "precision")
                            else "---:" for k, _ in columns) + "|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['backbone']} | error: {r['error']} |")
            continue
        cells = [_cell(r.get(k)) for k, _ in columns]
        if r.get("local_crops"):
            cells[5] = f"{r['views']} ({r['views'] - r['local_crops']} + {r['local_crops']} local)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _host() -> dict:
    import platform

    import torch

    from edgessl.runtime.measure import device_stamp

    stamp = device_stamp()
    return {"cpu": stamp["cpu"], "logical_cores": stamp["logical_cores"],
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def _markdown(rows: list[dict], notes: list[str], host: dict, command: str, date: str) -> str:
    lines = [
        "# SSL pretraining throughput", "",
        f"Command: `{command}`  ", f"Date (UTC): {date}  ",
        f"CPU: {host['cpu']} ({host['logical_cores']} logical cores); torch {host['torch']}, "
        f"{host['torch_threads']} threads" + (f"; GPU: {host['cuda_device']}"
                                             if host["cuda_device"] else ""), "",
        "One step = pretrain's own training step on one batch (loading, augmenting on the CPU, "
        "forward, backward, optimiser, EMA/teacher update); median of the timed steps after "
        "untimed warm-up steps. images/s = batch / median step. Peak RSS is per row (a fresh "
        "process each) and includes torch itself.", "",
        render_table(rows).rstrip("\n"),
    ]
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else [])) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", help="SSL methods (default: all of METHODS)")
    parser.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES),
                        help="edgessl or timm:NAME backbones (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size)
    parser.add_argument("--steps", type=int, default=Settings.steps, help="timed steps")
    parser.add_argument("--warmup", type=int, default=Settings.warmup,
                        help="untimed steps before the timed ones")
    parser.add_argument("--device", default=Settings.device, help="cpu, cuda or cuda:N")
    parser.add_argument("--image-size", type=int, default=Settings.image_size)
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="NHWC layout (default: pretrain's choice, on for CNNs)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for pretrain_throughput.json and .md (default: %(default)s)")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: METHOD:BACKBONE, one row
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)  # internal: the images
    return parser


def _check(args) -> Settings:
    from edgessl.errors import ConfigError
    from edgessl.ssl.ddp import resolve_device

    for name in ("batch_size", "steps", "image_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ConfigError(f"--warmup must be ≥ 0, got {args.warmup}")
    if args.device == "auto":
        raise ConfigError("--device auto is not accepted here; say cpu or cuda")
    resolve_device(args.device)  # cuda without a GPU: DeviceUnavailableError
    return Settings(args.batch_size, args.steps, args.warmup, args.device, args.image_size,
                    args.channels_last)


def run(args, argv: list[str]) -> int:
    from edgessl.ssl import METHODS

    settings = _check(args)
    if args.row:
        method, _, backbone = args.row.partition(":")
        print(json.dumps(measure(method, backbone, settings, args.data)))
        return 0
    pairs, notes = _pairs(args.methods or METHODS.names(), args.backbones, settings.image_size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgessl-throughput-") as tmp:
        data = synthetic_images(Path(tmp) / "images", settings.batch_size, settings.image_size)
        for method, backbone in pairs:
            rows.append(_run_row(method, backbone, settings, data))
            row = rows[-1]
            print(f"{method} on {backbone}: " + (f"error: {row['error']}" if "error" in row
                  else f"{row['images_per_s']} images/s ({row['step_ms']} ms/step)"),
                  file=sys.stderr)
    host = _host()
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
    command = " ".join(["python", "benchmarks/pretrain_throughput.py", *argv])
    write_results(args.out, "pretrain_throughput",  # a rerun replaces its results
                  {"command": command, "date": date, "host": host, "settings": asdict(settings),
                   "rows": rows, "notes": notes},
                  _markdown(rows, notes, host, command, date))
    print(render_table(rows), end="")
    for note in notes:
        print(f"- {note}")
    print(f"wrote {args.out / 'pretrain_throughput.json'} and .md")
    return 1 if any("error" in r for r in rows) else 0


def main(argv: list[str] | None = None) -> int:
    from edgessl.errors import EdgesslError

    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    try:
        return run(args, argv)
    except EdgesslError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
