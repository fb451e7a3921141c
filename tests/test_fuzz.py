"""Property tests: any config, profile or CLI input gives a result or an edgessl error.

Never an unhandled exception or a traceback. Examples are small and few (max_examples ~50)
so the file runs in seconds on 2 cores.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgessl.cli import app
from edgessl.config import from_dict
from edgessl.deploy.bundle_config import DeployConfig
from edgessl.devices.profile import DeviceProfile, load_profile
from edgessl.errors import ConfigError, EdgesslError
from edgessl.finetune.train import FinetuneConfig
from edgessl.ssl.pretrain import PretrainConfig

# EDGESSL_FUZZ_EXAMPLES=500 explores more (for a run by hand).
FAST = settings(max_examples=int(os.environ.get("EDGESSL_FUZZ_EXAMPLES", "50")), deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
CONFIGS = (DeviceProfile, FinetuneConfig, PretrainConfig, DeployConfig)

scalars = st.one_of(st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
toml_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6)


def keys_for(cls) -> st.SearchStrategy[str]:
    import dataclasses

    return st.one_of(st.sampled_from([f.name for f in dataclasses.fields(cls)]),
                     st.text(max_size=10))


@st.composite
def config_dicts(draw):
    cls = draw(st.sampled_from(CONFIGS))
    data = draw(st.dictionaries(keys_for(cls), toml_values, max_size=6))
    return cls, data


@FAST
@given(config_dicts())
def test_from_dict_gives_a_config_or_a_config_error(case):
    cls, data = case
    try:
        result = from_dict(cls, data, where="fuzz")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz") and "\n" not in str(exc)
    else:
        assert isinstance(result, cls)


@FAST
@given(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers())))
def test_from_dict_refuses_what_is_not_a_table(data):
    with pytest.raises(ConfigError, match="expected a table"):
        from_dict(DeviceProfile, data)


def toml_value(value) -> str:
    """A minimal TOML writer for the values ``toml_values`` draws."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if math.isfinite(value) else "nan"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@FAST
@given(st.dictionaries(keys_for(DeviceProfile), toml_values, max_size=6))
def test_any_profile_table_loads_or_is_a_config_error(tmp_path, data):
    path = tmp_path / "fuzz.toml"
    path.write_text("".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in data.items()),
                    encoding="utf-8")
    try:
        profile = load_profile(str(path))
    except ConfigError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(profile, DeviceProfile)


@FAST
@given(st.text(max_size=80))
def test_any_profile_text_loads_or_is_a_config_error(tmp_path, text):
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_profile(str(path))
    except ConfigError:
        pass


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "empty").mkdir()
    (root / "file.txt").write_text("a file")
    (root / "junk.onnx").write_bytes(b"\x08\x07junk" * 20)
    (root / "junk.xml").write_text("<net>")
    (root / "bad.toml").write_text("threads = 'x'\n")
    return {"missing": str(root / "missing"), "empty": str(root / "empty"),
            "file": str(root / "file.txt"), "onnx": str(root / "junk.onnx"),
            "xml": str(root / "junk.xml"), "toml": str(root / "bad.toml"),
            "under_file": str(root / "file.txt" / "out"), "out": str(root / "out")}


NUMBERS = ["0", "-1", "1", "16", "abc", "nan", "inf", "1e9", ""]
# Per command: positional choices and option -> value choices (None = a flag). Data and model
# paths are never valid, so no command gets as far as training or exporting.
COMMANDS = {
    "pretrain": (["missing", "empty", "file"], {
        "--method": ["simclr", "simclrr", ""], "--backbone": ["resnet_micro", "nope", ""],
        "--image-size": NUMBERS, "--epochs": NUMBERS, "--batch-size": NUMBERS,
        "--lr": NUMBERS, "--hflip": NUMBERS, "--out": ["out", "under_file"],
        "--resume": None, "--force": None}),
    "finetune": (["missing", "empty", "file"], {
        "--backbone": ["scratch", "scratch:resnet_micro", "nope_model", "file", "x.pt",
                       "empty", "missing"],
        "--mode": ["linear", "full", "x"], "--labels-per-class": NUMBERS,
        "--image-size": NUMBERS, "--epochs": NUMBERS, "--lr": NUMBERS, "--hflip": NUMBERS,
        "--out": ["out", "under_file"], "--force": None}),
    "export": (["missing", "empty", "onnx"], {
        "--format": ["onnx", "openvino", "onxx"], "--precision": ["fp32", "fp16", "int8", "x"],
        "--calib-size": NUMBERS, "--static-batch": NUMBERS, "--scheme": ["auto", "s8s8", "w9"],
        "--max-drop": NUMBERS, "--simplify": None, "--out": ["out", "under_file"]}),
    "predict": (["missing", "onnx", "xml", "empty"], {
        "--top-k": NUMBERS, "--batch-size": NUMBERS, "--device": ["CPU", "NPU", ""],
        "--profile": ["cpu", "nope", "toml"], "--json": ["out", "under_file"]}),
    "deploy": (["missing", "onnx", "xml"], {
        "--profile": ["cpu", "nope", "toml", "missing"], "--out": ["out", "under_file"],
        "--runtime": ["onnxruntime", "pytorch", "x"], "--precision": ["fp16", "int4"],
        "--smoke-per-class": NUMBERS, "--iterations": NUMBERS, "--archive": None}),
}


@st.composite
def command_lines(draw):
    name = draw(st.sampled_from(sorted(COMMANDS)))
    positionals, options = COMMANDS[name]
    args = [name, draw(st.sampled_from(positionals))]
    if name == "predict":
        args.append(draw(st.sampled_from(["missing", "empty", "file"])))
    for option in draw(st.lists(st.sampled_from(sorted(options)), max_size=5)):
        args.append(option)
        if options[option] is not None:
            args.append(draw(st.sampled_from(options[option])))
    return args


@FAST
@given(command_lines())
def test_cli_option_combinations_never_crash(places, monkeypatch, args):
    monkeypatch.setenv("EDGESSL_PROGRESS", "0")
    argv = [places.get(a, a) for a in args]
    result = CliRunner().invoke(app, ["--quiet", *argv])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        argv, repr(result.exception))
    assert result.exit_code in (0, 2), (argv, result.output)
    assert "Traceback" not in result.output, (argv, result.output)
    if result.exit_code == 2 and "error: " in result.output:
        errors = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1, (argv, result.output)


def test_edgessl_errors_share_one_base():
    from edgessl import errors

    kinds = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert all(issubclass(k, EdgesslError) for k in kinds)
    assert Path(errors.__file__).is_file()
