"""Benchmark on a device over SSH: build a bundle, copy it, run its benchmark there, clean up.

The connection is ``edgessl.deploy.ssh`` (system ssh/scp, key auth only, one-line messages for
each way it fails), the device check ``edgessl.deploy.remote_probe`` (no Python or no runtime
on the device); this module runs the bundle's benchmark there and reads its results back. The
remote working folder is removed afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgessl.deploy.remote_config import RemoteConfig
from edgessl.deploy.remote_probe import probe
from edgessl.deploy.ssh import RemoteError, SshSession, last_line, parse_target
from edgessl.errors import ConfigError
from edgessl.runtime.bench import MeasureConfig

log = logging.getLogger("edgessl")

# An ssh config file for edgessl's connections instead of ~/.ssh/config (ssh -F).
SSH_CONFIG_ENV = "EDGESSL_SSH_CONFIG"


@dataclass(frozen=True)
class RemoteBenchmark:
    """Results of a remote benchmark.

    Attributes:
        results: one BenchmarkResult-shaped dict per model and batch size, ``host`` set to the
            target (``user@host:port``).
        device: what the device says it is (hostname, machine, CPU, Python).
        folder: the remote working folder (removed unless ``keep``).
    """

    results: list[dict]
    device: dict = field(default_factory=dict)
    folder: str = ""


def remote_benchmark(model: str | Path, remote: str, profile: str = "cpu",
                     config: RemoteConfig | None = None) -> RemoteBenchmark:
    """Benchmark ``model`` on the device at ``remote`` (``ssh://user@host[:port]``).

    Builds a bundle for ``profile`` here, checks Python and the runtime on the device, copies
    the bundle, runs ``run.py benchmark`` there with the profile's settings and removes the
    remote folder again.

    Args:
        model: a classifier checkpoint (exported for the profile) or a .onnx/.xml artifact.
        remote: ``ssh://[user@]host[:port]``.
        profile: a device profile name or ``.toml`` path.
        config: how to connect and what to time (default RemoteConfig()).

    Raises:
        ConfigError: a bad address or profile.
        RemoteError: the device cannot be reached or cannot run the bundle (one line each).
    """
    from edgessl.deploy.bundle import build_bundle
    from edgessl.deploy.bundle_config import DeployConfig, requirements
    from edgessl.devices.profile import load_profile

    config = config or RemoteConfig()
    target = parse_target(remote)
    prof = load_profile(profile)
    runtime = bundle_runtime(model, prof, config.inference_precisions)
    session = SshSession(target, config)
    info = probe(session, runtime, requirements(prof, runtime))
    folder = info["folder"]
    try:
        with tempfile.TemporaryDirectory(prefix="edgessl-remote-") as tmp:
            bundle = build_bundle(model, DeployConfig(
                profile=profile, out=str(Path(tmp) / "bundle"), runtime=runtime,
                baseline=False, smoke_per_class=1))
            session.copy(bundle.path, folder)
        return _run_remote(session, folder, config, prof.name)
    finally:
        if not config.keep:
            _cleanup(session, folder)


def bundle_runtime(model: str | Path, profile, precisions=()) -> str:
    """The runtime of the bundle that benchmarks ``model`` on ``profile``: an artifact's own
    (as the host runs it); for a checkpoint, the profile's first that takes the inference
    ``precisions`` asked for, else its first a bundle can use.

    Raises:
        ConfigError: a runtime the profile does not list, or precisions none of its take.
    """
    from edgessl.deploy.bundle_config import choose_runtime

    if Path(model).is_file():
        from edgessl.runtime.model import runtime_of

        return choose_runtime(profile, runtime_of(model)[0])
    if precisions:
        from edgessl.runtime.bench import precision_variants

        profile = precision_variants([profile], precisions[:1])[0]
    return choose_runtime(profile, None)


def _run_remote(session: SshSession, folder: str, config: RemoteConfig, profile: str
                ) -> RemoteBenchmark:
    argv = [session.config.python, f"{folder}/bundle/run.py", "benchmark", "--json", "-",
            *config.benchmark_argv()]
    result = session.run(argv, "the benchmark")
    if result.returncode != 0:
        raise RemoteError("remote", f"the benchmark failed on {session.target}: "
                          f"{last_line(result.stderr).removeprefix('error: ')}")
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise RemoteError("remote", f"the benchmark on {session.target} printed no JSON "
                          f"({last_line(result.stdout)})") from None
    # the runner names the profile it ran ("cpu@bf16" with --inference-precision)
    results = [{**r, "host": str(session.target), "profile": r.get("profile") or profile}
               for r in report["results"]]
    return RemoteBenchmark(results=results, device=report.get("host", {}), folder=folder)


def _cleanup(session: SshSession, folder: str) -> None:
    # Only ever a folder the probe made with mkdtemp(prefix="edgessl-").
    if not folder or "/edgessl-" not in folder:
        return
    try:
        session.run(["rm", "-rf", "--", folder], "removing the remote folder", timeout=60)
    except RemoteError as exc:
        log.warning("could not remove %s on %s (%s); remove it by hand", folder,
                    session.target, exc)


def as_benchmark_results(results: list[dict]) -> list:
    """BenchmarkResult objects for remote dicts (fields this version lacks are dropped: the
    device may run a newer edgessl)."""
    from edgessl.runtime.result import BenchmarkResult

    return [BenchmarkResult.from_dict(r, strict=False) for r in results]


def remote_results(models, remote: str, profiles, bench, python: str = "python3") -> list:
    """``edgessl benchmark --remote``: each model benchmarked on the device, as BenchmarkResults.

    The device measures what the host would with the profile: one result per inference
    precision at ``bench.batch_size``, with the batch sweep (``bench.batch_sizes``, else the
    profile's), end-to-end latency and async throughput as asked.

    Args:
        models: checkpoint folders or .onnx/.xml artifacts.
        remote: ``ssh://[user@]host[:port]``.
        profiles: at most one device profile (default "cpu").
        bench: the BenchmarkConfig of the command.
        python: the Python executable on the device.

    Raises:
        ConfigError: more than one profile, or --data (the data is on this host, not there).
    """
    from edgessl.devices.profile import load_profile

    profiles = list(profiles or [])
    if len(profiles) > 1:
        raise ConfigError(f"--remote benchmarks one device; pass one --profile, got "
                          f"{', '.join(profiles)}")
    if bench.data is not None:
        raise ConfigError("--data is a folder on this host; with --remote, run the bundle's "
                          "`python run.py benchmark --data DIR` on the device instead")
    profile = profiles[0] if profiles else "cpu"
    measured = {f.name: getattr(bench, f.name) for f in dataclasses.fields(MeasureConfig)}
    config = RemoteConfig(**{
        **measured, "batch_sizes": bench.batch_sizes or load_profile(profile).batch_sizes,
        "inference_precisions": tuple(bench.inference_precisions), "python": python,
        "ssh_config": os.environ.get(SSH_CONFIG_ENV) or None})
    results = []
    for model in models:
        run = remote_benchmark(model, remote, profile, config)
        results += as_benchmark_results(run.results)
    return results
