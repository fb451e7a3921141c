"""Remote benchmark over SSH against a real OpenSSH server on 127.0.0.1, and each way it fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import exported
from sshd import LocalSshd, client_config, find_sshd, free_port, keygen

from edgessl.benchmark.report import render_table
from edgessl.deploy.remote import (
    RemoteConfig,
    RemoteError,
    as_benchmark_results,
    parse_target,
    remote_benchmark,
)
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
    run = remote_benchmark(onnx_model, sshd.url, config=config_for(sshd, batch_sizes=(1, 2)))
    assert [r["batch_size"] for r in run.results] == [1, 2]
    first = run.results[0]
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


@pytest.mark.parametrize("flags", [["--time", "1"], ["--async-runs", "5"], ["--no-e2e"],
                                   ["--batch-sizes", "1,8"]])
def test_remote_refuses_measurements_the_device_runner_does_not_make(flags, tiny_classifier):
    from typer.testing import CliRunner

    from edgessl.cli import app

    result = CliRunner().invoke(app, ["benchmark", str(tiny_classifier), "--remote",
                                      "ssh://nobody@127.0.0.1:1", *flags])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and flags[0] in lines[0] and "--remote" in lines[0]
