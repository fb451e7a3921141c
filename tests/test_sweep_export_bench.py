"""What a bug sweep of export, benchmark, predict and data found: inputs a user gives that
the other tests did not cover. Each test names the class of bug it pins down."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgessl.cli import app
from edgessl.errors import ConfigError, DeviceUnavailableError, OutputExistsError
from edgessl.export.api import ExportConfig, export_model
from edgessl.export.schemes import QuantizeConfig
from tests.cli_helpers import invoke, one_line_error
from tests.deploy_helpers import exported

QUICK = ("--iterations", "1", "--warmup", "0", "--async-runs", "0", "--no-e2e")


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, tiny_classifier):
    return exported(tmp_path_factory, tiny_classifier, "onnx")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- --force replaces an earlier output, never the user's other files -------------------------

def test_export_force_never_replaces_a_folder_or_file_no_export_wrote(tiny_classifier,
                                                                      onnx_model, tmp_path):
    desktop = tmp_path / "Desktop"
    desktop.mkdir()
    (desktop / "notes.txt").write_text("precious")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(photo)
    # a folder edgessl wrote, but not an export: a checkpoint is not replaced by an export
    other = tmp_path / "ckpt-copy"
    other.mkdir()
    (other / "card.json").write_text("{}")
    (other / "model.safetensors").write_bytes(b"")
    edgessl = "a folder edgessl wrote"
    for out, words, what in (
            (desktop, "holds 1 file(s) that are not a folder edgessl wrote (notes.txt)", edgessl),
            (photo, "is a file, not a folder edgessl wrote", edgessl),
            (onnx_model, "is a file, not a folder edgessl wrote", edgessl),  # an export's file
            (other, "holds 1 file(s) that are not an earlier export (card.json)",
             "an earlier export")):
        before = _snapshot(out.parent)
        line = one_line_error(invoke("export", tiny_classifier, "--out", out, "--force"))
        assert words in line and f"--force replaces only {what}" in line, line
        assert _snapshot(out.parent) == before
    with pytest.raises(OutputExistsError, match="notes.txt"):
        export_model(tiny_classifier, ExportConfig(out=str(desktop), force=True))


def test_text_export_force_never_replaces_a_folder_no_export_wrote(tmp_path):
    from edgessl.text.model import CARD_FILE, CARD_FORMAT

    model = tmp_path / "text-clf"
    model.mkdir()
    (model / CARD_FILE).write_text(json.dumps({"format": CARD_FORMAT}))  # checked before loading
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    line = one_line_error(invoke("export", model, "--out", mine, "--force"))
    assert "not a folder edgessl wrote (notes.txt)" in line
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_export_force_still_replaces_an_earlier_export(tiny_classifier, tmp_path):
    out = tmp_path / "o"
    export_model(tiny_classifier, ExportConfig(out=str(out)))
    (out / ".DS_Store").write_text("")  # what a file manager leaves is not the user's work
    result = export_model(tiny_classifier, ExportConfig(out=str(out), force=True))
    assert result.path == out / "model.onnx" and not (out / ".DS_Store").exists()


@pytest.mark.parametrize("args", [("export", "{model}", "--out", ".", "--force"),
                                  ("export", "{model}", "--out", "", "--force"),
                                  ("export", "{model}", "--out", "..", "--force"),
                                  ("data", "digits", ".", "--force"),
                                  ("data", "digits", "")])
def test_an_output_that_is_the_working_folder_is_one_line(args, tiny_classifier, tmp_path,
                                                          monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("x")
    monkeypatch.chdir(work)
    line = one_line_error(invoke(*(str(a).format(model=tiny_classifier) for a in args)))
    assert "current" in line and "choose a new folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    assert [p.name for p in work.iterdir()] == ["mine.txt"]


def test_data_digits_force_replaces_only_an_earlier_digits_folder(tmp_path):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"jpeg")
    line = one_line_error(invoke("data", "digits", mine, "--force"))
    assert "not an earlier digits folder (cat.jpg)" in line
    assert [p.name for p in mine.iterdir()] == ["cat.jpg"]
    digits = tmp_path / "digits"
    for _ in range(2):
        result = invoke("data", "digits", digits, "--image-size", "8", "--force")
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in digits.iterdir()) == ["edgessl-digits.json", "train", "val"]


# -- inputs the export reads without being told ------------------------------------------------

def test_export_into_the_checkpoints_own_data_is_refused(tiny_classifier, digits_dir):
    """Without --data, validation reads the card's data folder: an export written there
    would turn up as a class or split folder in the next run."""
    out = digits_dir / "export"
    line = one_line_error(invoke("export", tiny_classifier, "--out", out))
    assert "lies inside the input --data (the checkpoint's own, from card.json)" in line
    assert not out.exists()


@pytest.mark.parametrize("flags, named", [(("--calib", "{data}"), "--calib is"),
                                          (("--calib-size", "5"), "--calib-size is"),
                                          (("--calib", "{data}", "--calib-size", "5"),
                                           "--calib and --calib-size are")])
def test_calibration_flags_without_int8_are_refused(flags, named, tiny_classifier, digits_dir,
                                                    tmp_path):
    args = [str(f).format(data=digits_dir) for f in flags]
    line = one_line_error(invoke("export", tiny_classifier, "--out", tmp_path / "o", *args))
    assert f"{named} for int8 calibration; this export is fp32" in line
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="--calib is for int8"):
        export_model(tiny_classifier, ExportConfig(precision="fp16", calib=str(digits_dir)))
    # one calibration size for every precision of a loop is fine in the Python API
    assert export_model(tiny_classifier, ExportConfig(calib_size=5, out=str(tmp_path / "a")))


def test_int8_that_quantizes_no_layer_is_refused(tiny_classifier, tmp_path, one_torch_thread):
    config = ExportConfig(precision="int8", calib_size=8, out=str(tmp_path / "o"),
                          quant=QuantizeConfig(ignored=(".*",)))
    with pytest.raises(ConfigError, match=r"quantized none of its \d+ compute layers "
                                          r"\(--ignore '\.\*' matches every one\)"):
        export_model(tiny_classifier, config)
    assert list(tmp_path.iterdir()) == []


# -- devices: an index is honoured or refused, never dropped ------------------------------------

@pytest.mark.parametrize("device", ["cuda:x", "CUDA:", "cuda:-1", "gpu:one"])
def test_a_bad_gpu_index_is_one_line_for_every_runtime(device, tiny_classifier, onnx_model,
                                                       digits_dir):
    image = sorted((digits_dir / "val").rglob("*.png"))[0]
    for model in (tiny_classifier, onnx_model):
        line = one_line_error(invoke("predict", model, image, "--device", device))
        assert f"device '{device}' names no GPU" in line
    line = one_line_error(invoke("benchmark", tiny_classifier, *QUICK, "--device", device))
    assert "names no GPU" in line


def test_onnxruntime_passes_the_gpu_index_on_and_refuses_one_for_the_cpu(monkeypatch):
    import onnxruntime as ort

    from edgessl.backends import onnxruntime_rt

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    names, options = onnxruntime_rt._providers("CUDA:1", None)
    assert names == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert options == [{"device_id": "1"}, {}]
    assert onnxruntime_rt._providers("CUDA", None)[1] == [{}, {}]
    with pytest.raises(ConfigError, match="CPUExecutionProvider takes no device index"):
        onnxruntime_rt._providers("CPU:1", None)


# -- predict -------------------------------------------------------------------------------------

@pytest.mark.parametrize("blank", ["", " "])
def test_predict_refuses_an_empty_image_argument(blank, onnx_model, digits_dir):
    """An unset shell variable must not become the current folder, searched recursively."""
    image = sorted((digits_dir / "val").rglob("*.png"))[0]
    line = one_line_error(invoke("predict", onnx_model, image, blank))
    assert f"IMAGE_OR_DIR {blank!r} is empty" in line


def test_predict_refuses_device_with_profile(onnx_model, digits_dir):
    image = sorted((digits_dir / "val").rglob("*.png"))[0]
    line = one_line_error(invoke("predict", onnx_model, image, "--profile", "cpu",
                                 "--device", "GPU"))
    assert "either --device or --profile" in line
    assert invoke("predict", onnx_model, image, "--profile", "cpu").exit_code == 0


def test_an_export_folder_given_as_the_model_names_its_file(onnx_model, digits_dir):
    image = sorted((digits_dir / "val").rglob("*.png"))[0]
    for args in (("predict", onnx_model.parent, image), ("benchmark", onnx_model.parent, *QUICK)):
        line = one_line_error(invoke(*args))
        assert f"holding the model '{onnx_model}'; pass that file" in line


# -- benchmark -----------------------------------------------------------------------------------

def test_benchmark_json_to_stdout_is_json_and_writes_no_file(onnx_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["benchmark", str(onnx_model), *QUICK, "--json", "-"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # the table went to stderr
    assert document["results"][0]["provider"] == "CPUExecutionProvider"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags, words", [(("--plot", "-"), "--plot writes a PNG file"),
                                          (("--json", "-", "--csv", "-"),
                                           "--json and --csv cannot both go to stdout")])
def test_benchmark_outputs_stdout_cannot_take_are_refused_before_measuring(
        flags, words, onnx_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    import edgessl.benchmark.host as host

    monkeypatch.setattr(host, "benchmark_models", lambda *a, **k: pytest.fail("measured"))
    line = one_line_error(invoke("benchmark", onnx_model, *QUICK, *flags))
    assert words in line
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_a_fixed_batch_model_cannot_run_is_refused_not_shortened():
    from edgessl.runtime.bench import MeasureConfig, Target, measure

    model = SimpleNamespace(meta=SimpleNamespace(extra={"static_batch": 2}))
    with pytest.raises(ConfigError, match=r"fixed batch of 2, so --batch-sizes 1,2,4 cannot "
                                          r"run 1, 4; pass --batch-sizes 2"):
        measure(model, MeasureConfig(batch_size=2, batch_sizes=(1, 2, 4)), Target("m.onnx"))


def test_nothing_to_measure_names_the_missing_device_not_an_unrelated_profile(onnx_model):
    import onnxruntime as ort

    from edgessl.benchmark.host import BenchmarkConfig, benchmark_models

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this host has TensorRT: the nvidia-gpu profile is available")
    config = BenchmarkConfig(iterations=1, warmup=0, async_runs=0, end_to_end=False,
                             profiles=("intel-npu", "nvidia-gpu"))
    with pytest.raises(DeviceUnavailableError) as info:
        benchmark_models([onnx_model], config)
    assert "profile 'nvidia-gpu' (onnxruntime) is unavailable" in str(info.value)
    assert "(and 1 other reason)" in str(info.value)


# -- the Python API: array images are taken as they are, or refused, never guessed -------------

@pytest.mark.parametrize("array, words", [
    (np.full((8, 8, 3), 200.0), "float images must lie in [0, 1] (values up to 255"),
    (np.full((8, 8, 3), -1.5, np.float32), "a normalised tensor?"),
    (np.full((8, 8, 3), np.nan), "NaN or infinite"),
    (np.full((8, 8, 3), 4000, np.uint16), "integer images must lie in 0..255"),
    (np.ones((8, 8, 3), complex), "has dtype complex128"),
    (np.zeros((0, 0, 3), np.uint8), "is empty (shape [0, 0, 3])"),
    (Image.new("RGB", (0, 3)), "is 0 x 3 pixels"),
])
def test_array_images_out_of_range_are_refused_not_clipped(array, words, onnx_model):
    """Floats in [0, 255] clipped to white (and 16-bit values wrapped) gave a confident
    prediction of a blank image."""
    from edgessl.errors import DataError
    from edgessl.runtime import load

    with pytest.raises(DataError, match=re.escape(words)):
        load(onnx_model).predict(array)


def test_integer_arrays_in_range_are_pixels(onnx_model):
    from edgessl.runtime import load

    model = load(onnx_model)
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3))
    same = model.predict([pixels, pixels.astype(np.uint8), pixels / 255.0])
    np.testing.assert_allclose([p.score for p in same], same[1].score, atol=1e-4)


def test_a_profile_batch_mismatch_is_refused_before_any_target_is_measured(onnx_model, tmp_path,
                                                                           monkeypatch):
    import edgessl.benchmark.host as host

    fixed = tmp_path / "fixed4.toml"
    fixed.write_text('runtimes = ["onnxruntime"]\nstatic_batch = 4\nbatch_sizes = [4]\n')
    monkeypatch.setattr(host, "benchmark_model", lambda *a, **k: pytest.fail("measured"))
    line = one_line_error(invoke("benchmark", onnx_model, *QUICK, "--profile", "cpu",
                                 "--profile", fixed))
    assert "profile 'fixed4' runs a fixed batch of 4; pass --batch-size 4" in line


def test_openvino_reports_the_device_that_ran_last_not_the_one_at_load(tiny_classifier,
                                                                        tmp_path_factory):
    """AUTO starts on the CPU while the accelerator compiles, then moves: the device a
    result names is read after the measurement."""
    pytest.importorskip("openvino")
    from edgessl.backends.openvino_rt import load
    from edgessl.runtime.bench import MeasureConfig, Target, measure

    model = load(exported(tmp_path_factory, tiny_classifier, "openvino"), device="AUTO")
    assert model.execution.device == "CPU" and model.execution_devices == ("CPU",)

    class MovedToGpu:  # the compiled model once AUTO has moved to the GPU
        def __init__(self, compiled):
            self._compiled = compiled

        def get_property(self, key):
            return ["GPU.0"] if key == "EXECUTION_DEVICES" else self._compiled.get_property(key)

    model.compiled = MovedToGpu(model.compiled)
    config = MeasureConfig(iterations=1, warmup=0, async_runs=0, end_to_end=False,
                           runtime_memory=False)
    result = measure(model, config, Target("m.xml", device="AUTO"))
    assert result.device == "GPU.0" and result.executed_on == ("GPU.0",)
    assert result.provider.startswith("OpenVINO GPU.0")
    assert result.settings["EXECUTION_DEVICES"] == "GPU.0"


def test_openvino_takes_a_bare_device_kind_on_a_host_with_two_of_them():
    """Availability said 'GPU' was there (GPU.0, GPU.1); loading must not say it is not."""
    pytest.importorskip("openvino")
    from edgessl.backends.openvino_rt import _check_device

    core = SimpleNamespace(available_devices=["CPU", "GPU.0", "GPU.1"])
    assert _check_device(core, "gpu") == "GPU" and _check_device(core, "GPU.1") == "GPU.1"
    for missing in ("NPU", "GPU.2"):
        with pytest.raises(DeviceUnavailableError, match=f"sees no device '{missing}'"):
            _check_device(core, missing)
