"""Per-epoch training history of a pretraining run: CSV, JSON and a PNG of loss and kNN top-1."""

from __future__ import annotations

import csv
import io
import logging
import math

log = logging.getLogger("edgessl")

HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"
HISTORY_PNG = "history.png"
COLUMNS = ("epoch", "loss", "lr", "knn_top1", "embedding_spread", "collapsed", "seconds",
           "images_per_second")


def _missing(value) -> bool:
    return value is None or isinstance(value, float) and not math.isfinite(value)


def history_csv(rows: list[dict]) -> str:
    """The rows as CSV text with a fixed header (empty cells where a value was not measured)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if _missing(row.get(k)) else row.get(k) for k in COLUMNS})
    return buf.getvalue()


def plot_history(rows: list[dict], title: str) -> bytes | None:
    """Loss and (where measured) kNN top-1 per epoch as PNG bytes; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no %s", HISTORY_PNG)
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["loss"] for r in rows], color="tab:blue", marker=".")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:blue")
    knn = [(r["epoch"], r["knn_top1"]) for r in rows if r.get("knn_top1") is not None]
    if knn:
        ax2 = ax.twinx()
        ax2.plot(*zip(*knn, strict=True), color="tab:orange", marker="o")
        ax2.set_ylabel("kNN top-1 (%)", color="tab:orange")
    ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def history_files(rows: list[dict], title: str) -> dict[str, bytes]:
    """history.csv, history.json and history.png as file name -> bytes.

    Both are strict: a value that is not finite (a NaN embedding spread) is an empty cell
    and a JSON null, never a bare ``NaN`` that strict JSON parsers refuse.
    """
    from edgessl.io import dumps_json

    files = {HISTORY_CSV: history_csv(rows).encode(),  # strict JSON: NaN is written as null
             HISTORY_JSON: dumps_json(rows, HISTORY_JSON).encode()}
    png = plot_history(rows, title) if rows else None
    if png is not None:
        files[HISTORY_PNG] = png
    return files
