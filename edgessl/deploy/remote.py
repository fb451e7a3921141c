"""Benchmark on a device over SSH: build a bundle, copy it, run its benchmark there, clean up.

Uses the system ``ssh`` and ``scp`` clients (argument lists, never a shell on this side) in
batch mode: key auth only, from the user's ``~/.ssh/config`` and agent, so a missing key fails
at once instead of waiting at a password prompt. Each way this can fail has its own one-line
message that says how to fix it: unreachable host, refused key, unknown host key, no Python or
no runtime on the device, timeout. The remote working folder is removed afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from edgessl.config import Range
from edgessl.errors import ConfigError, DeviceUnavailableError
from edgessl.runtime.bench import MeasureConfig

log = logging.getLogger("edgessl")

MIN_PYTHON = (3, 10)
# An ssh config file for edgessl's connections instead of ~/.ssh/config (ssh -F).
SSH_CONFIG_ENV = "EDGESSL_SSH_CONFIG"
# Import name -> pip name of what the runner needs besides its runtime.
BASE_MODULES = {"numpy": "numpy", "PIL": "pillow"}
# Runs on the device with any Python 3: reports version and missing modules, makes the folder.
PROBE = """import sys, json, tempfile, importlib.util
missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]
ok = sys.version_info[:2] >= MIN_PYTHON and not missing
folder = tempfile.mkdtemp(prefix="edgessl-") if ok else ""
print(json.dumps({"version": ".".join(map(str, sys.version_info[:3])), "missing": missing,
                  "folder": folder, "executable": sys.executable}))
""".replace("MIN_PYTHON", repr(MIN_PYTHON))
# What the probe's mkdtemp(prefix="edgessl-") may return: no spaces, quotes or shell syntax.
SAFE_REMOTE_FOLDER = re.compile(r"(/[A-Za-z0-9._-]+)*/edgessl-[A-Za-z0-9._-]+")
UNREACHABLE = ("connection refused", "timed out", "no route to host", "could not resolve",
               "network is unreachable", "name or service not known", "connection closed",
               "connection reset", "kex_exchange_identification", "temporary failure")


class RemoteError(DeviceUnavailableError):
    """The device could not be reached, refused the key, or cannot run the bundle.

    Attributes:
        kind: "unreachable", "auth", "host-key", "python", "runtime", "timeout" or "remote".
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SshTarget:
    """Where to connect: ``ssh://[user@]host[:port]``."""

    host: str
    user: str | None = None
    port: int | None = None

    @property
    def destination(self) -> str:
        """``user@host`` as ssh and scp take it (IPv6 addresses in brackets for scp)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        return f"{user}{host}" + (f":{self.port}" if self.port else "")

    def ssh_command(self) -> str:
        """The ssh command a user types to reach this target (for messages)."""
        return shlex.join(["ssh", *(["-p", str(self.port)] if self.port else []),
                           self.destination.strip("[]")])


def parse_target(url: str) -> SshTarget:
    """Parse ``ssh://[user@]host[:port]``.

    Raises:
        ConfigError: for another scheme, a path, a bad port or a host/user starting with '-'.
    """
    example = "pass --remote ssh://user@host or ssh://user@host:2222"
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise ConfigError(f"remote '{url}' is not an ssh:// address; {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.password:
        raise ConfigError(f"remote '{url}' has a path, query or password; {example}")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"remote '{url}' has a bad port; {example}") from None
    user = parts.username
    # A leading '-' would make ssh read the host or user as an option.
    if parts.hostname.startswith("-") or (user or "").startswith("-"):
        raise ConfigError(f"remote '{url}' has a host or user starting with '-'; {example}")
    return SshTarget(host=parts.hostname, user=user, port=port)


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


class SshSession:
    """Runs commands on and copies files to one target with the system ssh/scp clients."""

    def __init__(self, target: SshTarget, config: RemoteConfig) -> None:
        self.target = target
        self.config = config

    def _options(self) -> list[str]:
        c = self.config
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={c.connect_timeout}",
                   "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if c.ssh_config:
            options += ["-F", c.ssh_config]
        if c.identity:
            options += ["-i", c.identity]
        return options

    def run(self, argv: list[str], what: str, timeout: float | None = None
            ) -> subprocess.CompletedProcess:
        """Run ``argv`` on the target (quoted for its shell); ssh failures become RemoteError."""
        port = ["-p", str(self.target.port)] if self.target.port else []
        command = ["ssh", *self._options(), *port, self.target.destination.strip("[]"),
                   shlex.join(argv)]
        return self._call(command, what, timeout)

    def copy(self, local: Path, remote_folder: str) -> None:
        """Copy the folder ``local`` into ``remote_folder`` on the target (scp -r)."""
        port = ["-P", str(self.target.port)] if self.target.port else []
        command = ["scp", "-q", "-r", *self._options(), *port, str(local),
                   f"{self.target.destination}:{remote_folder}/"]
        result = self._call(command, f"copying the bundle to {self.target}")
        if result.returncode != 0:
            raise RemoteError("remote", f"copying the bundle to {self.target}:{remote_folder} "
                              f"failed ({_last_line(result.stderr)}); check the free space there")

    def _call(self, command: list[str], what: str, timeout: float | None = None
              ) -> subprocess.CompletedProcess:
        limit = timeout or self.config.timeout
        log.debug("running %s", shlex.join(command))
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=limit,
                                    stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise RemoteError("unreachable", f"'{command[0]}' is not installed on this host; "
                              "install the OpenSSH client (e.g. apt install openssh-client)"
                              ) from None
        except subprocess.TimeoutExpired:
            raise RemoteError("timeout", f"{what} on {self.target} took longer than {limit:g} s; "
                              "check the device or raise --remote-timeout") from None
        if result.returncode == 255:
            raise _ssh_failure(self.target, result.stderr)
        return result


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no message"


def _ssh_failure(target: SshTarget, stderr: str) -> RemoteError:
    """The RemoteError for ssh's exit code 255, told apart by ssh's message."""
    text = (stderr or "").lower()
    detail = _last_line(stderr)
    if "permission denied" in text or "too many authentication failures" in text:
        return RemoteError("auth", f"{target} refused every key offered ({detail}); edgessl "
                           "uses key auth only: install your key there (ssh-copy-id"
                           f"{' -p ' + str(target.port) if target.port else ''} "
                           f"{target.destination.strip('[]')}) or load it (ssh-add), then check "
                           f"that `{target.ssh_command()} true` works without a password")
    if "host key verification failed" in text or "host identification has changed" in text:
        return RemoteError("host-key", f"the host key of {target} is unknown or changed "
                           f"({detail}); connect once with `{target.ssh_command()}` to check "
                           "and accept it")
    if any(marker in text for marker in UNREACHABLE):
        return RemoteError("unreachable", f"cannot reach {target} ({detail}); check the host "
                           "name, the port and that sshd runs on the device")
    return RemoteError("remote", f"ssh to {target} failed ({detail}); try "
                       f"`{target.ssh_command()} true` to see why")


def probe(session: SshSession, runtime: str, requirements: list[str]) -> dict:
    """Check Python and the runtime on the device and make the remote working folder.

    Returns:
        {"version", "missing", "folder", "executable"} as the device reported them.

    Raises:
        RemoteError: no Python, a Python older than 3.10, or missing packages (kind "python"
            or "runtime"), each with the command that fixes it.
    """
    python = session.config.python
    modules = [*BASE_MODULES, runtime]
    result = session.run([python, "-c", PROBE, *modules], "checking Python on the device",
                         timeout=session.config.connect_timeout + 60)
    target = session.target
    try:
        info = json.loads(result.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        if result.returncode == 127 or "not found" in result.stderr.lower() or \
                "no such file" in result.stderr.lower():
            raise RemoteError("python", f"no Python '{python}' on {target} "
                              f"({_last_line(result.stderr)}); install Python 3.10+ there "
                              "(e.g. sudo apt install python3 python3-venv) or pass "
                              "--remote-python PATH") from None
        raise RemoteError("python", f"'{python}' on {target} did not run the check "
                          f"({_last_line(result.stderr)}); pass --remote-python PATH to a "
                          "Python 3.10+ there") from None
    if tuple(int(v) for v in info["version"].split(".")[:2]) < MIN_PYTHON:
        raise RemoteError("python", f"'{python}' on {target} is Python {info['version']}; the "
                          f"bundle needs {'.'.join(map(str, MIN_PYTHON))} or newer: install one "
                          "and pass --remote-python PATH")
    if info["missing"]:
        names = [BASE_MODULES.get(m, m) for m in info["missing"]]
        wanted = [r for r in requirements if _req_name(r) in names] or names
        fix = shlex.join([python, "-m", "pip", "install", *wanted])
        raise RemoteError("runtime", f"'{python}' on {target} lacks {', '.join(names)}; "
                          f"install them on the device ({target.ssh_command()}): {fix}")
    if not SAFE_REMOTE_FOLDER.fullmatch(str(info.get("folder", ""))):
        # scp may hand the path to the remote shell: only a plain mkdtemp path is accepted.
        raise RemoteError("remote", f"'{python}' on {target} reported an unexpected working "
                          f"folder {str(info.get('folder'))[:100]!r}; check that it is a real "
                          "Python (pass --remote-python PATH)")
    return info


def _req_name(requirement: str) -> str:
    for sep in ("==", ">=", "<=", "~=", ">", "<"):
        requirement = requirement.split(sep, 1)[0]
    name = requirement.strip().lower()
    # onnxruntime-gpu and friends provide the module onnxruntime
    return "onnxruntime" if name.startswith("onnxruntime") else name


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
    from edgessl.deploy.bundle import DeployConfig, build_bundle, requirements
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
    from edgessl.deploy.bundle import choose_runtime

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
                          f"{_last_line(result.stderr).removeprefix('error: ')}")
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise RemoteError("remote", f"the benchmark on {session.target} printed no JSON "
                          f"({_last_line(result.stdout)})") from None
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
