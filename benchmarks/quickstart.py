"""Time ``edgessl quickstart`` end to end in a fresh folder and keep its tables.

Usage: python benchmarks/quickstart.py [--text] [--keep DIR]

Runs the real CLI in a subprocess (cold imports included, as a user sees it), prints the wall
time and the quickstart's output, and writes benchmarks/results/quickstart.json with the wall
time, the per-stage timings, the accuracy table and the benchmark rows. With ``--text`` it
times ``edgessl quickstart --text`` and writes benchmarks/results/quickstart_text.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="Run in this folder and keep its outputs.")
    parser.add_argument("--text", action="store_true", help="Time the text quickstart.")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgessl-quickstart-"))
    work.mkdir(parents=True, exist_ok=True)
    # a fresh cache, so the built-in dataset is written as on a new machine
    env = {**os.environ, "EDGESSL_PROGRESS": "0", "EDGESSL_HOME": str(work / ".edgessl-home")}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgessl", "quickstart",
                           *(["--text"] if args.text else [])], cwd=work, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    print(proc.stdout)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        sys.exit(proc.returncode)
    from dataclasses import asdict

    from edgessl.devices.host import cpu_info

    if args.text:
        summary = json.loads((work / "quickstart-text.json").read_text())
        record = {"wall_s": round(wall, 1), "cpu_count": os.cpu_count(),
                  "host": asdict(cpu_info()), "timings_s": summary["timings_s"],
                  "accuracy": summary["accuracy"], "exports": summary["exports"],
                  "stdout": proc.stdout}
        name = "quickstart_text.json"
    else:
        record, name = _image_record(work, wall, proc.stdout), "quickstart.json"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(json.dumps(record, indent=2) + "\n")
    print(f"quickstart{' --text' if args.text else ''} wall time: {wall:.0f} s on "
          f"{os.cpu_count()} cores of {record['host']['model']} "
          f"({', '.join(record['host']['flags']) or 'no AVX'})")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


def _image_record(work: Path, wall: float, stdout: str) -> dict:
    from dataclasses import asdict

    from edgessl.devices.host import cpu_info

    summary = json.loads((work / "quickstart.json").read_text())
    return {"wall_s": round(wall, 1), "cpu_count": os.cpu_count(),
              "host": asdict(cpu_info()),
              "timings_s": summary["timings_s"], "accuracy": summary["accuracy"],
              "exports": [{k: e[k] for k in ("format", "precision", "max_abs_diff",
                                             "top1_artifact", "top1_pytorch",
                                             "top1_drop_points", "size_mib")}
                          for e in summary["exports"]],
              "stdout": stdout}


if __name__ == "__main__":
    main()
