"""The ONNX Runtime and OpenVINO runtimes: what they accept, what they refuse, what ran."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgessl.backends import onnxruntime_rt, openvino_rt
from edgessl.backends.registry import load_any
from edgessl.errors import CheckpointError, DataError, DeviceUnavailableError
from edgessl.export.api import ExportConfig, export_model

RUNTIME_MODULES = {"onnx": onnxruntime_rt, "openvino": openvino_rt}
SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}


@pytest.fixture(scope="module")
def artifacts(tiny_classifier, tmp_path_factory):
    """fp32 artifacts of the tiny classifier: {"onnx": path, "openvino": path}."""
    root = tmp_path_factory.mktemp("artifacts")
    return {
        name: export_model(tiny_classifier, ExportConfig(format=name, out=str(root / name))).path
        for name in RUNTIME_MODULES
    }


@pytest.mark.parametrize("name", list(RUNTIME_MODULES))
def test_accepts_only_its_files(name, artifacts, tiny_classifier, tmp_path):
    module = RUNTIME_MODULES[name]
    assert module.accepts(artifacts[name])
    other = "openvino" if name == "onnx" else "onnx"
    assert not module.accepts(artifacts[other])
    assert not module.accepts(tiny_classifier)
    assert not module.accepts(tmp_path / f"missing{SUFFIX[name]}")


@pytest.mark.parametrize("name", list(RUNTIME_MODULES))
def test_execution_is_read_back(name, artifacts):
    loaded = RUNTIME_MODULES[name].load(artifacts[name], device="cpu")
    ex = loaded.execution
    assert ex.device == "CPU" and ex.version
    if name == "onnx":
        assert (ex.runtime, ex.provider) == ("onnxruntime", "CPUExecutionProvider")
    else:
        import openvino as ov

        full_name = ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
        assert ex.runtime == "openvino" and full_name in ex.provider
        assert "f32" in ex.provider  # fp32 artifacts run at fp32, never silently bf16


@pytest.mark.parametrize("name", list(RUNTIME_MODULES))
def test_unknown_device_is_unavailable(name, artifacts):
    with pytest.raises(DeviceUnavailableError, match="available"):
        RUNTIME_MODULES[name].load(artifacts[name], device="NOSUCHDEVICE")


@pytest.mark.parametrize("name", list(RUNTIME_MODULES))
def test_random_bytes_are_refused(name, tmp_path):
    path = tmp_path / f"model{SUFFIX[name]}"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    if name == "openvino":
        path.with_suffix(".bin").write_bytes(b"\0" * 64)
    for load in (RUNTIME_MODULES[name].load, load_any):
        with pytest.raises(CheckpointError) as info:
            load(path)
        assert "\n" not in str(info.value) and str(path.name) in str(info.value)


def test_openvino_xml_like_garbage_is_refused(tmp_path):
    path = tmp_path / "model.xml"
    path.write_text("<net><layers><oops")
    path.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a valid OpenVINO IR"):
        openvino_rt.load(path)


def test_openvino_without_bin_is_refused(artifacts, tmp_path):
    xml = tmp_path / "model.xml"
    shutil.copy(artifacts["openvino"], xml)
    with pytest.raises(CheckpointError, match=r"model\.bin' is missing"):
        openvino_rt.load(xml)


def test_onnx_without_metadata_is_refused(artifacts, tmp_path):
    import onnx

    model = onnx.load(str(artifacts["onnx"]))
    del model.metadata_props[:]
    path = tmp_path / "foreign.onnx"
    onnx.save(model, str(path))
    with pytest.raises(CheckpointError, match="no edgessl metadata"):
        onnxruntime_rt.load(path)


@pytest.mark.parametrize("name", list(RUNTIME_MODULES))
def test_wrong_input_shape_is_a_data_error(name, artifacts):
    loaded = RUNTIME_MODULES[name].load(artifacts[name])
    with pytest.raises(DataError, match=r"\[N, 3, 16, 16\]"):
        loaded.run(np.zeros((2, 3, 8, 8), np.float32))


@pytest.mark.parametrize("name", list(RUNTIME_MODULES))
def test_runtimes_agree_with_each_other(name, artifacts):
    x = np.random.default_rng(1).standard_normal((3, 3, 16, 16), dtype=np.float32)
    onnx_out = onnxruntime_rt.load(artifacts["onnx"]).run(x)
    other = RUNTIME_MODULES[name].load(artifacts[name]).run(x.astype(np.float64))
    assert other.dtype == np.float32
    assert np.abs(other - onnx_out).max() <= 1e-4
