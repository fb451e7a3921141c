"""Remote benchmark over SSH against a real OpenSSH server on 127.0.0.1, and each way it fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import exported, local_ssh
from sshd import LocalSshd, client_config, find_sshd, free_port, keygen

from edgessl.benchmark.host import BenchmarkConfig
from edgessl.benchmark.report import render_table
from edgessl.deploy.remote import as_benchmark_results, remote_benchmark, remote_results
from edgessl.deploy.remote_config import RemoteConfig
from edgessl.deploy.ssh import RemoteError, parse_target
from edgessl.errors import ConfigError

FAST = {"warmup": 1, "iterations": 3, "connect_timeout": 5, "timeout": 120}


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, tiny_classifier):
    return exported(tmp_path_factory, tiny_classifier, "onnx")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    binary = find_sshd()
    if binary is None:
        pytest.skip("no sshd on this host (.ci/run installs openssh-server; or "
                    "apt-get install -y openssh-server)")
    server = LocalSshd.start(tmp_path_factory.mktemp("sshd"), binary)
    yield server
    server.stop()


def config_for(server: LocalSshd, **changes) -> RemoteConfig:
    return RemoteConfig(**{"python": sys.executable, "ssh_config": str(server.ssh_config),
                           **FAST, **changes})


@pytest.mark.parametrize("url,expected", [
    ("ssh://pi@raspberrypi.local", ("raspberrypi.local", "pi", None)),
    ("ssh://root@127.0.0.1:2222", ("127.0.0.1", "root", 2222)),
    ("ssh://nuc", ("nuc", None, None)),
    ("ssh://me@[::1]:22", ("::1", "me", 22)),
])
def test_parse_target(url, expected):
    target = parse_target(url)
    assert (target.host, target.user, target.port) == expected


@pytest.mark.parametrize("url,message", [
    ("pi@raspberrypi", "is not an ssh:// address"),
    ("http://host", "is not an ssh:// address"),
    ("ssh://host/some/path", "has a path"),
    ("ssh://host:99999", "bad port"),
    ("ssh://-oProxyCommand=touch%20x", "starting with '-'"),
])
def test_bad_targets(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_target(url)


def test_unreachable_host(onnx_model):
    port = free_port()  # nothing listens there
    with pytest.raises(RemoteError) as info:
        remote_benchmark(onnx_model, f"ssh://nobody@127.0.0.1:{port}",
                         config=RemoteConfig(**FAST))
    assert info.value.kind == "unreachable"
    assert str(info.value).startswith(f"cannot reach nobody@127.0.0.1:{port} (")
    assert "Connection refused" in str(info.value)


def test_round_trip_through_local_sshd(sshd, onnx_model):
    run = remote_benchmark(onnx_model, sshd.url, config=config_for(sshd, batch_size=2,
                                                                   batch_sizes=(1, 2)))
    assert [r["batch_size"] for r in run.results] == [2]
    first = run.results[0]
    assert [p["batch_size"] for p in first["sweep"]] == [1, 2]
    assert first["host"] == f"{sshd.user}@127.0.0.1:{sshd.port}"
    assert first["runtime"] == "onnxruntime" and first["provider"] == "CPUExecutionProvider"
    assert first["latency"]["p50_ms"] > 0 and first["iterations"] == 3
    assert run.device["python"] and run.device["machine"]
    # The remote working folder is gone (the "device" is this machine).
    assert run.folder.startswith("/") and "/edgessl-" in run.folder
    assert not Path(run.folder).exists()
    # The dicts become the benchmark's own results and render in its table.
    table = render_table(as_benchmark_results(run.results))
    assert "onnx-fp32/model.onnx" in table and f"127.0.0.1:{sshd.port}" in table
    assert first["executed_on"] == ["CPUExecutionProvider"] and first["profile"] == "cpu"


def test_auth_failure(sshd, onnx_model, tmp_path):
    wrong = keygen(tmp_path / "wrong_key")
    config = client_config(tmp_path, sshd.port, wrong, sshd.known_hosts)
    with pytest.raises(RemoteError) as info:
        remote_benchmark(onnx_model, sshd.url, config=config_for(sshd, ssh_config=str(config)))
    assert info.value.kind == "auth"
    message = str(info.value)
    assert "refused every key offered (" in message and "Permission denied" in message
    assert f"ssh-copy-id -p {sshd.port} {sshd.user}@127.0.0.1" in message


def test_unknown_host_key(sshd, onnx_model, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = client_config(tmp_path, sshd.port, sshd.key, empty)
    with pytest.raises(RemoteError) as info:
        remote_benchmark(onnx_model, sshd.url, config=config_for(sshd, ssh_config=str(config)))
    assert info.value.kind == "host-key"
    assert f"connect once with `ssh -p {sshd.port} {sshd.user}@127.0.0.1`" in str(info.value)


def test_missing_python(sshd, onnx_model):
    with pytest.raises(RemoteError) as info:
        remote_benchmark(onnx_model, sshd.url,
                         config=config_for(sshd, python="/nonexistent/python3"))
    assert info.value.kind == "python"
    assert "no Python '/nonexistent/python3' on" in str(info.value)
    assert "--remote-python PATH" in str(info.value)


def test_missing_runtime(sshd, onnx_model, tmp_path):
    # A Python with nothing installed: what a fresh device has.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")],
                   check=True, timeout=120)
    bare = str(tmp_path / "bare" / "bin" / "python")
    with pytest.raises(RemoteError) as info:
        remote_benchmark(onnx_model, sshd.url, config=config_for(sshd, python=bare))
    message = str(info.value)
    assert info.value.kind == "runtime"
    assert f"'{bare}' on {sshd.user}@127.0.0.1:{sshd.port} lacks numpy, pillow, onnxruntime" \
        in message
    assert f"{bare} -m pip install 'numpy>=1.26' 'pillow>=10.0' onnxruntime==" in message


def invoke(*args):
    from typer.testing import CliRunner

    from edgessl.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_benchmark_cli_remote(sshd, onnx_model, monkeypatch):
    monkeypatch.setenv("EDGESSL_SSH_CONFIG", str(sshd.ssh_config))
    result = invoke("benchmark", onnx_model, "--remote", sshd.url, "--remote-python",
                    sys.executable, "--iterations", "3", "--warmup", "1")
    assert result.exit_code == 0, result.output
    assert "onnx-fp32/model.onnx" in result.stdout
    assert f"{sshd.user}@127.0.0.1:{sshd.port}" in result.stdout


@pytest.mark.parametrize("extra,expected", [
    ((), "cannot reach nobody@127.0.0.1:{port} (ssh: connect to host 127.0.0.1 port {port}: "
         "Connection refused)"),
    (("--data", "."), "--data is a folder on this host"),
    (("--profile", "cpu", "--profile", "raspberry-pi-5"), "--remote benchmarks one device"),
])
def test_benchmark_cli_remote_errors(onnx_model, extra, expected):
    port = free_port()
    result = invoke("benchmark", onnx_model, "--remote", f"ssh://nobody@127.0.0.1:{port}",
                    *extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected.format(port=port) in lines[0], result.stderr


def test_remote_passes_every_measurement_flag_to_the_device(onnx_model, monkeypatch, tmp_path):
    """Without sshd: the device's commands run here (deploy_helpers.local_ssh). The bundle's
    runner gets each flag of the host benchmark and its figures land in the host's table."""
    sent = local_ssh(monkeypatch)
    out = tmp_path / "remote.json"
    result = invoke("benchmark", onnx_model, "--remote", "ssh://nobody@127.0.0.1:1",
                    "--remote-python", sys.executable, "--warmup", "0", "--time", "0.05",
                    "--batch-size", "2", "--batch-sizes", "1,2", "--async-runs", "3",
                    "--requests", "2", "--no-e2e", "--json", out)
    assert result.exit_code == 0, result.output
    argv = next(a for a in sent if "benchmark" in a)
    assert argv[argv.index("benchmark"):] == [
        "benchmark", "--json", "-", "--warmup", "0", "--iterations", "100", "--batch-size", "2",
        "--async-runs", "3", "--requests", "2", "--time", "0.05", "--batch-sizes", "1,2",
        "--no-e2e"]
    (r,) = json.loads(out.read_text())["results"]
    assert r["host"] == "nobody@127.0.0.1:1" and r["profile"] == "cpu"
    assert r["batch_size"] == 2 and [p["batch_size"] for p in r["sweep"]] == [1, 2]
    assert r["e2e_latency"] is None and r["iterations"] >= 1
    assert r["async_throughput"]["requests"] == 2 and r["async_throughput"]["runs"] == 3
    assert "async img/s: ONNX Runtime session run from 2 threads" in result.stdout
    assert "batch sweep (synchronous):" in result.stdout
    assert sent[-1][:3] == ["rm", "-rf", "--"]  # the remote folder is removed again


def test_remote_default_measures_what_the_host_does_with_the_profile(onnx_model, monkeypatch):
    sent = local_ssh(monkeypatch)
    (r,) = remote_results([onnx_model], "ssh://nobody@127.0.0.1:1", [], BenchmarkConfig(
        warmup=0, iterations=2, async_runs=2), python=sys.executable)
    argv = next(a for a in sent if "benchmark" in a)
    assert "--no-e2e" not in argv and "--time" not in argv
    assert [p.batch_size for p in r.sweep] == [1, 8]  # the cpu profile's batch sizes
    assert r.e2e_latency is not None and r.async_throughput.runs == 2
    assert r.host == "nobody@127.0.0.1:1" and r.executed_on == ("CPUExecutionProvider",)
