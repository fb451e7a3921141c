"""How close is ``edgessl.memory``'s estimate to what a training step really takes?

For each backbone and batch, in a fresh process: the estimate ``check_training_memory`` works
from (every leaf module's output on the meta device, for the batch's forward pass, plus the
largest once more; every layer trains here), then the
growth of the process's peak resident memory over one real forward and backward pass of a
random batch. The estimate should sit a little above the real growth (it refuses only batches
that cannot fit; one that it underestimates by far would still meet the OOM killer).

    python benchmarks/memory_estimate.py

Writes results/memory_estimate.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from results_io import write_results

RESULTS = Path(__file__).resolve().parent / "results"
CASES = (("efficientnet_lite0.in1k", 224, 16), ("efficientnet_lite0.in1k", 224, 64),
         ("scratch:resnet_tiny", 128, 64), ("scratch:resnet_tiny", 256, 32))

CHILD = """
import json, resource, sys, torch
from edgessl.backbone_source import resolve_backbone
from edgessl.memory import activation_bytes
name, side, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
backbone = resolve_backbone(name, side, "resnet_tiny", None, None).backbone.train()
total, largest = activation_bytes(backbone, (batch, 3, side, side))
x = torch.randn(batch, 3, side, side)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
backbone(x).sum().backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"estimate_gib": (total + largest) / 2**30, "largest_gib": largest / 2**30,
                  "measured_gib": (after - before) / 2**20}))
"""


def main() -> None:
    from edgessl.runtime.measure import device_stamp

    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    rows = []
    for name, side, batch in CASES:
        out = subprocess.run([sys.executable, "-c", CHILD, name, str(side), str(batch)],
                             check=True, capture_output=True, text=True).stdout
        row = {"backbone": name, "side": side, "batch": batch,
               **json.loads(out.strip().splitlines()[-1])}
        row["ratio"] = row["estimate_gib"] / max(row["measured_gib"], 1e-9)
        rows.append(row)
        print(row, flush=True)
    report = {"date": dt.date.today().isoformat(), "host": device_stamp(), "rows": rows}
    lines = ["# Training-memory estimate vs one real step", "",
             "Estimate: every leaf module's output for the batch's forward pass, plus the "
             "largest once more, on the meta device (`edgessl.memory`, as "
             "`check_training_memory` adds them for a training step). Measured: growth of "
             "the process's peak resident memory over one forward and backward pass (fresh "
             "process). Host: "
             f"{report['host']['cpu']}, {report['host']['logical_cores']} cores; "
             f"{report['date']}.", "",
             "| backbone | side | batch | estimate GiB | measured GiB | estimate / measured |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['backbone']} | {r['side']} | {r['batch']} | {r['estimate_gib']:.2f} | "
              f"{r['measured_gib']:.2f} | {r['ratio']:.2f} |" for r in rows]
    write_results(RESULTS, "memory_estimate", report, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
