"""The runtime table (``edgessl.runtime_specs``): profiles, formats, bundles and hints
derive from it, and reading it imports no runtime."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from edgessl.devices.profile import DeviceProfile
from edgessl.errors import ConfigError
from edgessl.runtime_specs import (
    RUNTIME_SPECS,
    bundle_runtimes,
    runtime_for_format,
    runtime_for_suffix,
)


@pytest.fixture
def extra_runtime(monkeypatch):
    """A runtime added to the table the way a contributor adds one (one registration)."""
    spec = dataclasses.replace(RUNTIME_SPECS.get("openvino"), name="myrt", format="myfmt",
                               suffixes=(".myrt",), package="myrt-runtime")
    monkeypatch.setitem(RUNTIME_SPECS._entries, "myrt", spec)
    return spec


def test_profiles_accept_exactly_the_runtimes_of_the_table(extra_runtime):
    assert DeviceProfile(name="p", runtimes=("myrt",)).runtime == "myrt"
    with pytest.raises(ConfigError, match="unknown runtime 'nosuch'.*myrt"):
        DeviceProfile(name="p", runtimes=("nosuch",))


def test_a_new_runtime_is_found_by_suffix_format_and_bundles(extra_runtime):
    assert runtime_for_suffix(".MYRT") is extra_runtime
    assert runtime_for_format("myfmt") is extra_runtime
    assert extra_runtime in bundle_runtimes()
    with pytest.raises(KeyError, match="no runtime runs export format 'nofmt'"):
        runtime_for_format("nofmt")


def test_every_export_format_has_one_runtime_and_the_pytorch_runtime_is_not_bundled():
    from edgessl.export.formats import FORMATS

    for name, fmt in FORMATS.items():
        spec = RUNTIME_SPECS.get(fmt.runtime)
        assert spec.format == name and fmt.suffix in spec.suffixes
        assert runtime_for_suffix(fmt.suffix) is spec
    assert RUNTIME_SPECS.get("pytorch") not in bundle_runtimes()
    assert {s.format for s in bundle_runtimes()} == set(FORMATS.names())


def test_provider_packages_and_hints_come_from_the_table():
    from edgessl.deploy.bundle_config import requirements

    ort = RUNTIME_SPECS.get("onnxruntime")
    assert ort.provider_package("CUDAExecutionProvider") == "onnxruntime-gpu"
    assert ort.provider_package("CPUExecutionProvider") == "onnxruntime"
    assert "onnxruntime-qnn" in ort.provider_fix("QNNExecutionProvider")
    assert ort.provider_fix("NoSuchExecutionProvider") is None
    cuda = DeviceProfile(name="gpu", providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    lines = requirements(cuda, "onnxruntime")
    assert any(line.split("=")[0] == "onnxruntime-gpu" for line in lines), lines


def test_reading_the_table_and_a_profile_imports_no_runtime():
    code = ("import sys, edgessl.runtime_specs, edgessl.devices.profile\n"
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _onnx_with_external_data(folder, data_name: str = "weights.bin"):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [weight])
    path = folder / "model.onnx"
    onnx.save(helper.make_model(graph), str(path), save_as_external_data=True,
              location=data_name, size_threshold=0)
    return path


def test_an_artifact_is_every_file_its_runtime_reads(tmp_path):
    from edgessl.runtime_specs import artifact_files, artifact_size_mib, companion_files

    onnx_path = _onnx_with_external_data(tmp_path)  # a data file with an unusual name
    assert artifact_files(onnx_path) == [onnx_path, tmp_path / "weights.bin"]
    total = onnx_path.stat().st_size + (tmp_path / "weights.bin").stat().st_size
    assert artifact_size_mib(onnx_path) == pytest.approx(total / 2**20)
    xml = tmp_path / "ov" / "model.xml"
    xml.parent.mkdir()
    xml.write_text("<net/>")
    assert companion_files(xml) == [xml.with_suffix(".bin")]
    assert artifact_files(xml) == [xml]  # the .bin is listed once it exists
    xml.with_suffix(".bin").write_bytes(b"\0" * 10)
    assert artifact_files(xml) == [xml, xml.with_suffix(".bin")]
    assert companion_files(tmp_path / "notes.txt") == []


def test_a_bundle_and_the_benchmark_count_the_same_files(tmp_path):
    from edgessl.benchmark.host import model_size_mib
    from edgessl.runtime.measure import size_mib

    onnx_path = _onnx_with_external_data(tmp_path)
    assert model_size_mib(onnx_path) == pytest.approx(size_mib(onnx_path))
    assert size_mib(onnx_path) > onnx_path.stat().st_size / 2**20


def test_a_fixed_batch_artifact_predicts_any_number_of_images(tiny_classifier, digits_dir,
                                                               tmp_path):
    """``predict`` cuts and pads batches for an artifact exported for a fixed batch (NPUs,
    ExecuTorch) instead of failing on a batch of another size."""
    from edgessl.data.images import find_images
    from edgessl.export.api import ExportConfig, export_model
    from edgessl.runtime.model import load

    fixed = export_model(tiny_classifier, ExportConfig(static_batch=4, out=str(tmp_path / "f")))
    dynamic = export_model(tiny_classifier, ExportConfig(out=str(tmp_path / "d")))
    images = sorted(find_images(digits_dir / "val"))[:6]
    model = load(fixed.path)
    assert model.meta.fixed_batch == 4
    got = model.predict(images, batch_size=5)
    want = load(dynamic.path).predict(images)
    assert [p.label for p in got] == [p.label for p in want]
    assert [p.score for p in got] == pytest.approx([p.score for p in want], abs=1e-5)
