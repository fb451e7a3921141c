"""How to reach a device over SSH and what to measure there: ``RemoteConfig``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from edgessl.config import Range
from edgessl.runtime.bench import MeasureConfig


@dataclass(frozen=True)
class RemoteConfig(MeasureConfig):
    """How to reach the device, and what to measure there: the fields of
    ``edgessl.runtime.bench.MeasureConfig`` (warmup, iterations, time budget, batch size, sweep,
    async runs and requests, end to end), which the bundle's ``run.py benchmark`` takes as
    ``edgessl benchmark`` does, and:

    Attributes:
        python: the Python executable on the device.
        connect_timeout: ssh ConnectTimeout, in s.
        timeout: limit for each copy and for the remote benchmark, in s.
        ssh_config: an ssh config file (``ssh -F``); None = the user's ``~/.ssh/config``.
        identity: a private key file (``ssh -i``); None = the config's and the agent's keys.
        inference_precisions: one result per precision (``--inference-precision``).
        data: a labeled folder *on the device* (as for ``--data``): top-1 on its val split.
        keep: leave the remote working folder in place (for debugging).
    """

    FIELD_LABEL = ""  # not the flags of one command: messages name the fields
    python: str = "python3"
    connect_timeout: Annotated[int, Range(ge=1, le=3600, note="seconds")] = 10
    timeout: Annotated[float, Range(gt=0, le=86_400, note="seconds")] = 900.0
    ssh_config: str | None = None
    identity: str | None = None
    inference_precisions: tuple[str, ...] = ()
    data: str | None = None
    keep: bool = False

    def benchmark_argv(self) -> list[str]:
        """The options of ``run.py benchmark`` that ask for these measurements."""
        argv = ["--warmup", str(self.warmup), "--iterations", str(self.iterations),
                "--batch-size", str(self.batch_size), "--async-runs", str(self.async_runs),
                "--requests", str(self.async_requests)]
        if self.time_budget_s is not None:
            argv += ["--time", repr(float(self.time_budget_s))]
        if self.batch_sizes:
            argv += ["--batch-sizes", ",".join(map(str, self.batch_sizes))]
        if not self.end_to_end:
            argv.append("--no-e2e")
        for precision in self.inference_precisions:
            argv += ["--inference-precision", precision]
        if self.data:
            argv += ["--data", self.data]
        return argv
