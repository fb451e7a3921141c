"""Files from elsewhere, round two (issue 12): ONNX external data as the runtime reads it,
files that would make edgessl allocate gigabytes, EXIF orientation, and `.ckpt` by content."""

from __future__ import annotations

import numpy as np
import pytest

from edgessl.errors import CheckpointError
from edgessl.safety import check_onnx_external_data

# --- ONNX external data: the location the runtime reads -------------------------------------
#
# The hostile models are built with onnx.helper around a tensor whose only external-data entry
# is a long placeholder; its bytes are then swapped, at the same length, for what a hostile
# serializer would write (a padding field with an unknown number keeps every length valid).

PLACEHOLDER = "P" * 90
GOOD, BAD = "w.data", "../secret.bin"


def _varint(n: int) -> bytes:
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        out += bytes([low | (0x80 if n else 0)])
        if not n:
            return out


def _ld(field: int, payload: bytes | str) -> bytes:
    """A length-delimited protobuf field."""
    payload = payload.encode() if isinstance(payload, str) else payload
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _entry(*fields: tuple[int, str]) -> bytes:
    """An external_data entry (TensorProto field 13) with the given (field, text) pairs."""
    return _ld(13, b"".join(_ld(f, text) for f, text in fields))


LOC = 1, "location"
HOSTILE_ENTRIES = {
    "two locations, good first": _entry(LOC, (2, GOOD)) + _entry(LOC, (2, BAD)),
    "two locations, bad first": _entry(LOC, (2, BAD)) + _entry(LOC, (2, GOOD)),
    "two values in one entry": _entry(LOC, (2, GOOD), (2, BAD)),
    "value before key": _entry((2, BAD), LOC),
    "key rewritten": _entry((1, "offset"), (2, BAD), LOC),
}


def _external_tensor(name: str = "w"):
    from onnx import TensorProto, helper

    tensor = helper.make_tensor(name, TensorProto.FLOAT, [4], np.ones(4, np.float32))
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", PLACEHOLDER
    return tensor


def _io():
    from onnx import TensorProto, helper

    return ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])


def _subgraph(name: str):
    """A graph y = x + w whose w is the external tensor (for If/Loop bodies)."""
    from onnx import helper

    inputs, outputs = _io()
    return helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], name, [], outputs,
                             [_external_tensor()])


def _model(where: str):
    """A model holding the placeholder tensor at ``where``."""
    from onnx import TensorProto, helper

    inputs, outputs = _io()
    nodes, inits, sparse, functions = [], [], [], []
    if where == "initializer":
        nodes, inits = [helper.make_node("Add", ["x", "w"], ["y"])], [_external_tensor()]
    elif where == "Constant attribute":
        nodes = [helper.make_node("Constant", [], ["w"], value=_external_tensor()),
                 helper.make_node("Add", ["x", "w"], ["y"])]
    elif where == "If branch":
        cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
        inits = [cond]
        nodes = [helper.make_node("If", ["c"], ["y"], then_branch=_subgraph("then"),
                                  else_branch=_subgraph("else"))]
    elif where == "Loop body":
        body = _subgraph("body")
        nodes = [helper.make_node("Loop", ["", ""], ["y"], body=body)]
    elif where == "sparse initializer":
        values = _external_tensor("w_values")
        indices = helper.make_tensor("w_indices", TensorProto.INT64, [4], [0, 1, 2, 3])
        sparse = [helper.make_sparse_tensor(values, indices, [4])]
        sparse[0].values.name = "w"
        nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    elif where == "function":
        fn = helper.make_function(
            "custom", "AddW", ["x"], ["y"],
            [helper.make_node("Constant", [], ["w"], value=_external_tensor()),
             helper.make_node("Add", ["x", "w"], ["y"])],
            [helper.make_opsetid("", 17)])
        functions = [fn]
        nodes = [helper.make_node("AddW", ["x"], ["y"], domain="custom")]
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits, sparse_initializer=sparse)
    return helper.make_model(graph, functions=functions,
                             opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("custom", 1)])


def _swap(data: bytes, new: bytes) -> bytes:
    """Replace the placeholder entry by ``new``, padded to the same length."""
    old = _entry(LOC, (2, PLACEHOLDER))
    assert data.count(old) >= 1 and len(new) + 3 <= len(old) < len(new) + 3 + 128
    pad = _varint(1000 << 3 | 2) + _varint(len(old) - len(new) - 3)
    new = new + pad + b"x" * (len(old) - len(new) - len(pad))
    assert len(new) == len(old)
    return data.replace(old, new)


def _write(folder, data: bytes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder.parent / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    (folder / GOOD).write_bytes(np.ones(4, np.float32).tobytes())
    path = folder / "model.onnx"
    path.write_bytes(data)
    return path


PLACES = ["initializer", "Constant attribute", "If branch", "Loop body", "sparse initializer",
          "function"]


@pytest.mark.parametrize("where", PLACES)
@pytest.mark.parametrize("case", list(HOSTILE_ENTRIES))
def test_onnx_external_data_is_checked_where_and_as_the_runtime_reads_it(tmp_path, where, case):
    data = _model(where).SerializeToString()
    good = _write(tmp_path / "ok", _swap(data, _entry(LOC, (2, GOOD))))
    assert check_onnx_external_data(good) == [good.parent / GOOD]  # the same model, benign
    path = _write(tmp_path / "models", _swap(data, HOSTILE_ENTRIES[case]))
    with pytest.raises(CheckpointError) as info:
        check_onnx_external_data(path)
    message = str(info.value)
    assert "\n" not in message
    assert ("outside its folder" in message and BAD in message) or "ambiguous" in message
    from edgessl.runtime import load

    with pytest.raises(CheckpointError, match="outside its folder|ambiguous"):
        load(path)  # refused before ONNX Runtime opens anything


def test_onnx_merged_singular_messages_are_walked(tmp_path):
    """A second ``graph`` field is merged into the first by protobuf: its tensors count too."""
    clean = _swap(_model("initializer").SerializeToString(), _entry(LOC, (2, GOOD)))
    extra = _ld(5, _ld(8, "v") + _entry(LOC, (2, BAD)))  # GraphProto.initializer = 5
    path = _write(tmp_path / "models", clean + _ld(7, extra))  # ModelProto.graph = 7
    with pytest.raises(CheckpointError, match=r"outside its folder.*"):
        check_onnx_external_data(path)


@pytest.mark.parametrize("tail, message", [
    (b"\x3a\xff", "damaged protobuf"),              # graph field whose length runs past the end
    (b"\x3b", "damaged protobuf"),                  # a group start (wire type 3)
    (b"\x3a\x02\x2a\x05", "damaged protobuf"),      # an initializer cut short inside the graph
    (b"\x38\x01", "damaged protobuf"),              # graph as a varint: not what a runtime reads
])
def test_malformed_onnx_protobuf_is_refused(tmp_path, tail, message):
    clean = _swap(_model("initializer").SerializeToString(), _entry(LOC, (2, GOOD)))
    path = _write(tmp_path / "models", clean + tail)
    with pytest.raises(CheckpointError, match=message):
        check_onnx_external_data(path)


def test_onnx_location_through_a_hard_link_is_refused(tmp_path):
    data = _swap(_model("initializer").SerializeToString(), _entry(LOC, (2, GOOD)))
    path = _write(tmp_path / "models", data)
    (path.parent / GOOD).unlink()
    (path.parent / GOOD).hardlink_to(tmp_path / "secret.bin")
    with pytest.raises(CheckpointError, match="hard link"):
        check_onnx_external_data(path)


def test_a_real_export_with_external_data_loads_and_predicts(tmp_path_factory, tiny_classifier,
                                                             digits_dir):
    """What must keep working: an exported model whose weights sit in model.onnx.data."""
    import onnx
    from deploy_helpers import exported

    from edgessl.runtime import load

    artifact = exported(tmp_path_factory, tiny_classifier, "onnx")
    folder = tmp_path_factory.mktemp("external")
    model = onnx.load(str(artifact))
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="model.onnx.data",
              size_threshold=1024)
    assert check_onnx_external_data(path) == [folder / "model.onnx.data"]
    image = sorted((digits_dir / "val").glob("*/*.png"))[0]
    ours, reference = load(path).predict(image)[0], load(artifact).predict(image)[0]
    assert ours.label == reference.label and ours.score == pytest.approx(reference.score)


def test_openvino_never_reads_an_onnx_file_handed_to_it(tmp_path):
    """OpenVINO's ONNX frontend reads external data too: edgessl only gives it IR XML files."""
    from edgessl.backends import openvino_rt

    data = _swap(_model("initializer").SerializeToString(), _entry(LOC, (2, BAD)))
    path = _write(tmp_path / "models", data).rename(tmp_path / "models" / "model.xml")
    path.with_suffix(".bin").write_bytes(b"\0" * 16)
    with pytest.raises(CheckpointError, match="not an OpenVINO IR"):
        openvino_rt.load(path)


# --- tiny files, huge memory: the bounds of edgessl.limits ---------------------------------

@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, tiny_classifier):
    from deploy_helpers import exported

    return exported(tmp_path_factory, tiny_classifier, "onnx")


def _long_thin_png(path, width=2_000_000, height=1):
    """A PNG of a few KB that declares width x height pixels."""
    from PIL import Image

    Image.new("L", (width, height), 128).save(path, optimize=True)
    return path


def test_long_thin_image_is_one_line_in_predict_and_skipped_in_training(tmp_path,
                                                                       tiny_classifier,
                                                                       onnx_model):
    from cli_helpers import invoke, one_line_error
    from PIL import Image

    from edgessl.data.images import usable_images
    from edgessl.errors import DataError
    from edgessl.runtime import load

    thin = _long_thin_png(tmp_path / "thin.png")
    assert thin.stat().st_size < 10_000
    for model in (tiny_classifier, onnx_model):
        line = one_line_error(invoke("predict", model, thin))
        assert "thin.png" in line and "2000000 x 1 pixels" in line and "50:1" in line
    with pytest.raises(DataError, match="side ratio over 50:1"):
        load(onnx_model).predict(thin)
    Image.new("RGB", (16, 16)).save(tmp_path / "ok.png")
    good = usable_images([tmp_path / "ok.png", thin], tmp_path)
    assert good == [tmp_path / "ok.png"]


def test_resizing_a_long_thin_image_costs_only_the_crop():
    """Memory of resize_center_crop is that of the output, whatever the input's shape (the
    whole-image resize took 3.5 GB for a 1 x 2,000,000 image)."""
    from deploy_helpers import run_blocked

    code = """
    import resource
    from PIL import Image
    from edgessl.data.preprocess import resize_center_crop
    img = Image.new("RGB", (2_000_000, 1), (10, 20, 30))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = resize_center_crop(img, 224)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(out.size, out.getpixel((0, 0)), grew)
    """
    proc = run_blocked(code)
    assert proc.returncode == 0, proc.stderr
    assert "(224, 224) (10, 20, 30)" in proc.stdout, proc.stdout
    assert int(proc.stdout.split()[-1]) < 100_000, proc.stdout  # KiB: the output, not 1.3 GB


def _with_meta(folder, artifact, **changes):
    """A copy of an exported ONNX file with fields of its edgessl metadata changed."""
    import json

    import onnx

    model = onnx.load(str(artifact))
    for prop in model.metadata_props:
        if prop.key == "edgessl":
            prop.value = json.dumps({**json.loads(prop.value), **changes})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("field, value", [
    ("image_size", 100000), ("image_size", 0), ("image_size", -1), ("image_size", 1.5),
    ("image_size", "x"), ("image_size", True), ("mean", [0.5, 0.5]), ("std", [0.2, 0.0, 0.2]),
    ("std", "abc"), ("labels", ["x" * 5000] * 10),
])
def test_absurd_metadata_is_refused_at_load_naming_the_field(tmp_path, onnx_model, field, value):
    """Bounds from edgessl.limits, checked where the metadata is read (edgessl.artifact)."""
    from cli_helpers import invoke, one_line_error
    from PIL import Image

    from edgessl.runtime import load

    path = _with_meta(tmp_path / "bad", onnx_model, **{field: value})
    with pytest.raises(CheckpointError, match=f"'{field}'"):
        load(path)
    Image.new("RGB", (16, 16)).save(tmp_path / "x.png")
    line = one_line_error(invoke("predict", path, tmp_path / "x.png"))
    assert field in line and "model.onnx" in line


def test_labels_that_do_not_match_the_outputs_are_refused(tmp_path, onnx_model):
    from PIL import Image

    from edgessl.runtime import load

    path = _with_meta(tmp_path / "bad", onnx_model, labels=["a", "b", "c"])
    Image.new("RGB", (16, 16)).save(tmp_path / "x.png")
    with pytest.raises(CheckpointError, match=r"outputs \[10\] scores .* lists 3 labels"):
        load(path).predict(tmp_path / "x.png")


# --- EXIF orientation -----------------------------------------------------------------------

def _sideways_photo(path, orientation: int = 6):
    """A 40 x 20 (landscape) image with a red block at its top-left, tagged with an EXIF
    orientation: 6 means "rotate 90° clockwise to display", as a phone held upright writes."""
    from PIL import Image

    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:6, :6] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)
    return path


@pytest.mark.parametrize("name", ["photo.jpg", "photo.png"])
def test_exif_orientation_is_applied_wherever_images_are_read(tmp_path, onnx_model, name):
    from PIL import Image

    from edgessl.data.images import open_rgb
    from edgessl.data.preprocess import preprocess
    from edgessl.data.tensors import load_uint8
    from edgessl.runtime import load

    path = _sideways_photo(tmp_path / name)
    upright = open_rgb(path)
    assert upright.size == (20, 40)  # portrait, as displayed
    red = np.asarray(upright)[..., 0] > 128
    assert red[:6, -6:].all() and not red[-6:, :6].any()  # top-left went to the top-right
    with Image.open(path) as raw:
        expected = raw.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    assert np.array_equal(np.asarray(upright, np.int16), np.asarray(expected, np.int16))
    # the same upright pixels in training, host preprocessing and the deploy runtime
    reference = preprocess(expected, 16, (0.5,) * 3, (0.5,) * 3)
    assert np.allclose(preprocess(path, 16, (0.5,) * 3, (0.5,) * 3), reference)
    x = load_uint8(path, 16).permute(1, 2, 0).numpy()
    assert np.allclose(x / 255.0, reference.transpose(1, 2, 0) * 0.5 + 0.5, atol=1 / 255)
    model = load(onnx_model)
    assert np.allclose(model.preprocess([path]), model.preprocess([expected]))


# --- transparency -------------------------------------------------------------------------

def _transparent_images(folder):
    """The same red square on a transparent background, stored four ways: RGBA whose
    transparent pixels hold black, RGBA holding green, LA (grey + alpha), and a palette PNG
    with a transparent colour (PIL's plain convert("RGB") shows each background differently)."""
    from PIL import Image

    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 4:12] = (255, 0, 0, 255)
    green = rgba.copy()
    green[rgba[..., 3] == 0] = (0, 255, 0, 0)
    la = np.zeros((16, 16, 2), np.uint8)
    la[4:12, 4:12] = (76, 255)  # the grey of pure red
    Image.fromarray(rgba, "RGBA").save(folder / "black.png")
    Image.fromarray(green, "RGBA").save(folder / "green.png")
    Image.fromarray(la, "LA").save(folder / "la.png")
    pal = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    index = pal.getpixel((0, 0))
    pal.save(folder / "palette.png", transparency=index)
    return [folder / n for n in ("black.png", "green.png", "la.png", "palette.png")]


def test_transparent_pixels_are_white_wherever_images_are_read(tmp_path, onnx_model):
    from PIL import Image

    from edgessl.data.images import open_rgb, to_rgb
    from edgessl.data.preprocess import preprocess
    from edgessl.runtime import load

    model = load(onnx_model)
    for path in _transparent_images(tmp_path):
        image = np.asarray(open_rgb(path))
        assert (image[0, 0] == 255).all() and (image[-1, -1] == 255).all(), path.name
        assert image[8, 8].tolist() != [255, 255, 255], path.name  # the square stays
        with Image.open(path) as raw:
            raw.load()
            in_memory = to_rgb(raw)  # a PIL image handed to the API, not a path
            assert np.array_equal(np.asarray(in_memory), image)
            assert np.allclose(preprocess(raw, 16, (0.5,) * 3, (0.5,) * 3),
                               preprocess(path, 16, (0.5,) * 3, (0.5,) * 3))
            assert np.allclose(model.preprocess([raw]), model.preprocess([path]))
    opaque = Image.fromarray(np.full((4, 4, 3), 7, np.uint8))
    assert to_rgb(opaque) is opaque


# --- .ckpt: decided by content --------------------------------------------------------------

class _Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (self.marker,))


def _lightning_ckpt(path, state, extra=None):
    """A Lightning/solo-learn checkpoint: the weights under state_dict with a ``backbone.``
    prefix, and training state beside them."""
    import torch

    torch.save({"state_dict": {f"backbone.{k}": v for k, v in state.items()}, "epoch": 9,
                "global_step": 500, "pytorch-lightning_version": "2.2.0",
                "hyper_parameters": {"method": "simclr", "lr": 0.3}, "optimizer_states": [],
                "lr_schedulers": [], **(extra or {})}, path)
    return path


@pytest.mark.parametrize("name", ["solo.ckpt", "weights.model", "no_suffix"])
def test_a_ckpt_of_tensors_loads_whatever_its_name(tmp_path, name):
    import torch

    from edgessl.backbones import BackboneSpec, create_backbone
    from edgessl.backbones.weights import load_backbone_weights

    spec = BackboneSpec.for_images("resnet_micro", 16)
    source = create_backbone(spec)
    path = _lightning_ckpt(tmp_path / name, source.model.state_dict())
    target = create_backbone(spec)
    report = load_backbone_weights(target, path)
    assert report.matched == report.total and report.nested_key == "state_dict"
    assert report.prefix == "backbone."
    for key, value in target.model.state_dict().items():
        assert torch.equal(value, source.model.state_dict()[key]), key


def test_a_ckpt_with_code_is_one_line_without_torch_noise_and_never_runs(tmp_path, digits_dir):
    import torch
    from cli_helpers import invoke, one_line_error

    marker = tmp_path / "PWNED"
    path = _lightning_ckpt(tmp_path / "evil.ckpt", {"conv1.weight": torch.zeros(2)},
                           {"callbacks": _Payload(marker)})
    line = one_line_error(invoke("finetune", digits_dir, "--backbone", "resnet_micro",
                                 "--weights", path, "--image-size", "16",
                                 "--out", tmp_path / "clf"))
    assert "evil.ckpt" in line and "code or Python objects beyond tensors" in line
    assert "save_file(model.state_dict()" in line and "weights_only" not in line
    assert not marker.exists() and not (tmp_path / "clf").exists()
