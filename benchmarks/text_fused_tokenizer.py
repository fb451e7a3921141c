"""The tokenizer fused into the OpenVINO graph against tokenizer.json beside it.

1. Fine-tunes all-MiniLM-L6-v2 as ``text_int8_bundle.py`` does (built-in set, 8 labels per
   class, seed 0, a 50/50 split: 242 val sentences).
2. Exports OpenVINO fp32 and INT8 twice: with ``tokenizer.json`` beside the model, and with
   ``--fuse-tokenizer`` (``edgessl.text.fused_tokenizer``: strings in, logits out), each
   validated on the val split.
3. Times each with ``measure_text`` (what ``edgessl benchmark`` and a bundle's ``run.py
   benchmark`` call): per sentence, tokenization + inference, batch 1, 2 threads, over every
   val sentence, in ``PASSES`` alternating passes (median of the passes' medians).
4. Compares the logits of each fused model with its unfused twin on every val sentence.
5. Deploys the classifier with ``edgessl deploy --runtime openvino --fuse-tokenizer``
   (``text_int8_bundle.cold_start``), installs its requirements.txt into a fresh virtual
   environment and times ``python run.py predict "<sentence>"``: interpreter start, imports,
   loading and the first prediction of the bundle's recommended model (median of 5 runs
   after a first run that compiles into the bundle's ``.ov_cache``).

    python benchmarks/text_fused_tokenizer.py    # writes results/text_fused_tokenizer.{json,md}
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results  # noqa: E402
from text_int8_bundle import PASSES, THREADS, cold_start, time_all, train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = (("fp32", False), ("fp32", True), ("int8", False), ("int8", True))


def export_all(classifier: Path, work: Path) -> dict:
    from edgessl.text.workflow import export_text_checkpoint

    found = {}
    for precision, fused in VARIANTS:
        begin = time.perf_counter()
        result = export_text_checkpoint(classifier, "openvino", precision,
                                        out=work / f"{precision}-{fused}", fuse_tokenizer=fused)
        found[precision, fused] = {"folder": result.folder, "size_mib": result.size_mib,
                                   "validation": result.validation,
                                   "export_s": time.perf_counter() - begin}
    return found


def logit_gap(exports: dict, data, precision: str) -> float:
    """Largest |logit difference| between the fused model and its unfused twin."""
    import numpy as np

    from edgessl.text.runtime import TextPredictor

    fused, plain = (TextPredictor(exports[precision, f]["folder"], threads=THREADS)
                    for f in (True, False))
    return max(float(np.abs(fused.logits(t) - plain.logits(t)).max()) for t, _ in data.val)


def markdown(report: dict) -> str:
    h = report["host"]
    lines = ["# The tokenizer fused into the OpenVINO graph vs tokenizer.json beside it", "",
             f"all-MiniLM-L6-v2 fully fine-tuned on the built-in set (8 labels per class, seed "
             f"0); {report['val_texts']} val sentences; batch 1, {THREADS} threads, "
             f"tokenization + inference per sentence (`measure_text`), median of {PASSES} "
             f"alternating passes. Host: {h['cpu']}, {h['logical_cores']} cores; "
             f"{report['date']}.", "",
             "| OpenVINO | tokenizer | MiB | val top-1 % | agree % | tok ms | p50 ms | load s |",
             "|---|---|---|---|---|---|---|---|"]
    for row in report["artifacts"]:
        tok = "in graph" if row["tokenize_ms"] is None else f"{row['tokenize_ms']:.2f}"
        lines.append(f"| {row['precision']} | {'fused' if row['fused'] else 'tokenizer.json'} | "
                     f"{row['size_mib']:.1f} | {100 * row['top1']:.1f} | "
                     f"{100 * row['agreement']:.1f} | {tok} | {row['p50_ms']:.2f} | "
                     f"{row['load_s']:.2f} |")
    gaps = report["logit_gap_fused_vs_file"]
    c = report["cold_start"]
    lines += ["", "Largest |logit difference|, fused vs tokenizer.json, over every val "
              f"sentence: fp32 {gaps['fp32']:.2g}, int8 {gaps['int8']:.2g}.", "",
              f"Bundle (`deploy --fuse-tokenizer`, default model {c['model']}) in a fresh venv "
              f"({', '.join(c['requirements'])}; "
              f"{c['venv_mib']:.0f} MiB): `python run.py predict` first run "
              f"{c['first_run_s']:.2f} s (compiles into `.ov_cache`), then median "
              f"{c['median_s']:.2f} s (target <= 1 s)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    from edgessl.runtime.measure import device_stamp

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        classifier, data = train(work)
        exports = export_all(classifier, work)
        timing = time_all(exports, data)
        gaps = {p: logit_gap(exports, data, p) for p in ("fp32", "int8")}
        cold = cold_start(classifier, work, "openvino", fuse_tokenizer=True)
    rows = [{"precision": p, "fused": f, "size_mib": e["size_mib"],
             "top1": e["validation"]["top1_artifact"],
             "agreement": e["validation"]["top1_agreement"], "export_s": e["export_s"],
             **{k: v for k, v in timing[p, f].items() if k != "host"}}
            for (p, f), e in exports.items()]
    report = {"date": dt.date.today().isoformat(), "host": device_stamp(),
              "val_texts": len(data.val), "artifacts": rows, "logit_gap_fused_vs_file": gaps,
              "cold_start": cold}
    write_results(RESULTS, "text_fused_tokenizer", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
