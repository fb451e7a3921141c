"""Small valid edgessl artifacts, and hypothesis strategies that corrupt them, for the CLI fuzz.

``build_artifacts(root)`` writes one of each kind of file edgessl reads (an image folder, a
pretrain checkpoint, a classifier checkpoint with card.json and labels.json, its ONNX export
with metadata, an OpenVINO IR, a recipe, a device profile, a safetensors file, a .pt pickle)
once per session. ``path_values(artifacts)`` draws what a path argument gets: a valid artifact,
a corrupted copy of one (truncated, bytes flipped, a JSON/TOML field dropped or given a wrong
type or range, NaN weights, huge sizes, a pickle that would run code), or a path that does not
exist, is a folder, is a file of the wrong kind or lies under a file. ``materialize`` makes the
drawn value real inside one example's workspace. A drawn value is a short tuple, so hypothesis
prints it and a failure can be rebuilt by hand.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from edgessl.config import tomllib

MARKER_NAME = "PWNED"  # what a malicious pickle creates when it is unpickled
SIZE = 16

# Values a JSON field or a TOML key is set to: wrong types, wrong ranges, non-finite numbers,
# huge sizes, and text that would change the terminal if printed raw.
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\rover"
BAD_VALUES = (None, True, False, 0, -1, 1, 10**12, 2**63, 1e308, -1e-300, math.nan, math.inf,
              -math.inf, "", "abc", "x" * 100_000, ESCAPES, "../../../etc/passwd", [], {},
              [1, 2], ["a"] * 200_000, {"a": {"b": [None]}})


# A recipe that replaces someone else's folder: ``out`` is ``workspace/victim``.
HIJACK = ("set_many", ((("force",), True), (("out",), "{victim}")))


class _Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@dataclass(frozen=True)
class Artifacts:
    """Pristine files, one per kind (``paths[kind]`` is what a command gets as its path)."""

    root: Path
    paths: dict[str, Path]

    @property
    def marker(self) -> Path:
        return self.root / MARKER_NAME


# ---------------------------------------------------------------- building the artifacts

def _png(width: int, height: int, pixel: bytes = b"\x00") -> bytes:
    """A grayscale PNG of ``width`` x ``height`` (written by hand: no decoder sees it first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"".join(b"\x00" + pixel * width for _ in range(height)), 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                             0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def _bomb_png() -> bytes:
    """A PNG whose header claims 100000 x 100000 pixels (its data is one row)."""
    data = bytearray(_png(4, 1))
    ihdr = struct.pack(">II", 100_000, 100_000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def _write_images(root: Path) -> Path:
    """10 classes of real digits at 16 px: 4 train and 2 val images each."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    counts: dict[tuple[str, int], int] = {}
    for image, target in zip(digits.images, digits.target, strict=True):
        split = "train" if counts.get(("train", target), 0) < 4 else "val"
        if counts.get((split, target), 0) >= (4 if split == "train" else 2):
            continue
        counts[(split, target)] = counts.get((split, target), 0) + 1
        folder = root / split / str(target)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image * 255 / 16).astype("uint8")
        Image.fromarray(pixels).convert("RGB").resize((SIZE, SIZE)).save(
            folder / f"{counts[(split, target)]}.png")
    return root


def _write_ir(onnx_path: Path, out: Path) -> Path:
    """The ONNX model as OpenVINO IR with the same edgessl metadata (no second export)."""
    import onnx
    import openvino as ov

    meta = json.loads({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
                      ["edgessl"])
    model = ov.Core().read_model(str(onnx_path))
    model.set_rt_info(json.dumps({**meta, "format": "openvino"}, sort_keys=True), "edgessl")
    out.mkdir(parents=True)
    ov.save_model(model, str(out / "model.xml"), compress_to_fp16=False)
    shutil.copy(onnx_path.parent / "metadata.json", out / "metadata.json")
    return out / "model.xml"


def build_artifacts(root: Path) -> Artifacts:
    """Write one small valid file (or folder) of every kind edgessl reads under ``root``."""
    import torch
    from conftest import make_classifier_checkpoint
    from safetensors.torch import save_file

    from edgessl.backbones import BackboneSpec, create_backbone
    from edgessl.export.api import ExportConfig, export_model
    from edgessl.ssl.pretrain import PretrainConfig, pretrain

    images = _write_images(root / "images")
    flat = root / "flat"
    flat.mkdir()
    for i, path in enumerate(sorted((images / "train").rglob("*.png"))[:12]):
        shutil.copy(path, flat / f"{i:02d}.png")
    classifier = make_classifier_checkpoint(root / "classifier", images)
    backbone = pretrain(PretrainConfig(data=str(flat), backbone="resnet_micro", image_size=SIZE,
                                       epochs=1, batch_size=4, out=str(root / "backbone"))).path
    onnx_path = export_model(classifier, ExportConfig(format="onnx",
                                                      out=str(root / "onnx"))).path
    state = create_backbone(BackboneSpec.for_images("resnet_micro", SIZE)).model.state_dict()
    state = {k: v.clone().contiguous() for k, v in state.items()}
    save_file(state, str(root / "weights.safetensors"))
    torch.save({"state_dict": state}, root / "weights.pt")
    torch.save({**state, "x": _Payload(root / MARKER_NAME)}, root / "evil.pt")
    (root / "recipe.toml").write_text(
        'method = "simclr"\nbackbone = "resnet_micro"\nimage_size = 16\nepochs = 1\n'
        'batch_size = 4\n\n[augment]\nblur_p = 0.0\n\n[method_options]\ntemperature = 0.2\n',
        encoding="utf-8")
    shutil.copy(Path(__file__).parents[1] / "devices" / "cpu.toml", root / "profile.toml")
    (root / "strip.png").write_bytes(_png(2_000_000, 1))
    (root / "bomb.png").write_bytes(_bomb_png())
    (root / "secret.bin").write_bytes(struct.pack("<f", 1234.5) * 4096)
    paths = {"images": images, "flat": flat, "classifier": classifier, "backbone": backbone,
             "onnx": onnx_path, "openvino": _write_ir(onnx_path, root / "openvino"),
             "recipe": root / "recipe.toml", "profile": root / "profile.toml",
             "safetensors": root / "weights.safetensors", "pickle": root / "weights.pt"}
    return Artifacts(root, paths)


# ---------------------------------------------------------------- strategies

def _keypaths(data, prefix: tuple = (), depth: int = 2) -> list[tuple]:
    """Every key path of a JSON/TOML document down to ``depth`` (list items: the first)."""
    out = []
    items = (data.items() if isinstance(data, dict)
             else [(0, data[0])] if isinstance(data, list) and data else [])
    for key, value in items:
        out.append((*prefix, key))
        if depth > 1:
            out += _keypaths(value, (*prefix, key), depth - 1)
    return out


bytes_ops = st.one_of(
    st.tuples(st.just("truncate"), st.sampled_from([0.0, 0.01, 0.3, 0.5, 0.9, 0.999])),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)),
                                        min_size=1, max_size=8)),
    st.tuples(st.just("append"), st.sampled_from([b"\x00" * 64, b"garbage", b"\xff" * 4096])),
    st.tuples(st.just("replace"), st.sampled_from([b"", b"{}", b"\x80\x81 not utf-8",
                                                   b"not this kind of file\n", os.urandom(512)])),
)
bad_values = st.sampled_from(BAD_VALUES)


def _json_ops(document) -> st.SearchStrategy:
    paths = _keypaths(document) or [("x",)]
    return st.one_of(
        st.tuples(st.just("drop"), st.sampled_from(paths)),
        st.tuples(st.just("set"), st.sampled_from(paths), bad_values),
        st.tuples(st.just("set"), st.just(("unknown_key",)), bad_values),
        st.tuples(st.just("bytes"), bytes_ops),
    )


def _toml_ops(document) -> st.SearchStrategy:
    paths = _keypaths(document) or [("x",)]
    toml_bad = st.sampled_from([v for v in BAD_VALUES if v is not None
                                and not (isinstance(v, int) and v >= 2**63)])
    return st.one_of(
        st.tuples(st.just("drop"), st.sampled_from(paths)),
        st.tuples(st.just("set"), st.sampled_from(paths), toml_bad),
        st.tuples(st.just("set"), st.just(("unknown_key",)), toml_bad),
        # a recipe must never bring its own destructive switches
        st.just(HIJACK),
        st.tuples(st.just("set"), st.sampled_from([("force",), ("resume",)]), st.just(True)),
        st.tuples(st.just("bytes"), bytes_ops),
    )


def _load(path: Path):
    text = path.read_text(encoding="utf-8")
    return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)


def _member_ops(folder: Path) -> st.SearchStrategy:
    """Corruptions of one file in a checkpoint folder, or of the folder itself."""
    strategies = [st.tuples(st.just("remove"), st.sampled_from(sorted(
        p.name for p in folder.iterdir())))]
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            strategies.append(st.tuples(st.just(path.name), _json_ops(_load(path))))
        elif path.suffix == ".safetensors":
            strategies.append(st.tuples(st.just(path.name), _safetensors_ops()))
    strategies.append(st.tuples(st.just("train_state.pt"), st.sampled_from(
        [("evil",), ("replace", b"not a pickle")])))
    return st.one_of(strategies)


def _safetensors_ops() -> st.SearchStrategy:
    return st.one_of(bytes_ops, st.sampled_from([("nan",), ("inf",), ("header_len", 2**40),
                                                 ("header_len", 7)]),
                     st.tuples(st.just("header"), st.sampled_from(["dtype", "shape", "offsets"]),
                               bad_values))


IMAGE_FILES = ("empty", "text", "truncated", "strip", "bomb", "link_loop", "unicode_name")


def corruptions(kind: str, artifacts: Artifacts) -> st.SearchStrategy:
    """The ways the pristine artifact of ``kind`` is damaged."""
    path = artifacts.paths[kind]
    if kind in ("classifier", "backbone"):
        return _member_ops(path)
    if kind in ("recipe", "profile"):
        return _toml_ops(_load(path))
    if kind == "onnx":
        import onnx

        meta = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}
                          ["edgessl"])
        return st.one_of(bytes_ops, st.tuples(st.just("meta"), _json_ops(meta)),
                         st.just(("external_escape",)))
    if kind == "openvino":
        meta = _load(path.parent / "metadata.json")
        return st.one_of(st.tuples(st.sampled_from(["model.xml", "model.bin"]), bytes_ops),
                         st.tuples(st.just("meta"), _json_ops(meta)),
                         st.just(("remove", "model.bin")))
    if kind == "safetensors":
        return _safetensors_ops()
    if kind == "pickle":
        return st.one_of(bytes_ops, st.sampled_from([("evil",), ("nan",), ("not_dict",)]))
    # image folders
    return st.one_of(st.tuples(st.just("add"), st.sampled_from(IMAGE_FILES)),
                     st.sampled_from([("only", "train"), ("only", "val"), ("one_class",),
                                      ("empty_class",), ("no_images",)]))


def path_values(artifacts: Artifacts, kinds=None) -> st.SearchStrategy:
    """What a path argument gets: a tuple that ``materialize`` turns into a path."""
    kinds = sorted(kinds or artifacts.paths)
    return st.one_of(
        st.sampled_from([("missing",), ("folder",), ("text_file",), ("under_file",),
                         ("existing_output",), ("existing_file",)]),
        st.sampled_from([("artifact", k) for k in kinds]),
        st.sampled_from(kinds).flatmap(lambda k: st.tuples(
            st.just("corrupt"), st.just(k), corruptions(k, artifacts))),
    )


# ---------------------------------------------------------------- applying them

def _apply_bytes(path: Path, op) -> None:
    name = op[0]
    if name == "replace":
        path.write_bytes(op[1])
        return
    data = path.read_bytes()
    if name == "truncate":
        data = data[:int(len(data) * op[1])]
    elif name == "flip":
        buf = bytearray(data)
        for where, xor in op[1]:
            if buf:
                buf[min(int(where * len(buf)), len(buf) - 1)] ^= xor
        data = bytes(buf)
    else:
        data += op[1]
    path.write_bytes(data)


def _set_path(document, keys: tuple, value, victim: Path) -> None:
    if value == "{victim}":
        value = str(victim)
    target = document
    for key in keys[:-1]:
        target = target[key]
    if isinstance(target, dict):
        target[keys[-1]] = value
    elif isinstance(target, list) and isinstance(keys[-1], int) and keys[-1] < len(target):
        target[keys[-1]] = value
    elif isinstance(target, list):
        target.append(value)  # an unknown key of a list: one more item of the wrong type


def _drop_path(document, keys: tuple) -> None:
    target = document
    for key in keys[:-1]:
        target = target[key]
    if isinstance(target, dict):
        target.pop(keys[-1], None)
    elif isinstance(target, list) and target:
        del target[0]


def _edit_document(document, op, victim: Path):
    if op[0] == "set_many":
        for keys, value in op[1]:
            _set_path(document, keys, value, victim)
    elif op[0] == "drop":
        _drop_path(document, op[1])
    else:
        _set_path(document, op[1], op[2], victim)
    return document


def _toml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_scalar(v)}"
                           for k, v in (value or {}).items()) + "}"


def _dump_toml(document: dict) -> str:
    lines = [f"{json.dumps(k)} = {_toml_scalar(v)}" for k, v in document.items()
             if not isinstance(v, dict)]
    for key, table in document.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {_toml_scalar(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _apply_document(path: Path, op, victim: Path) -> None:
    if op[0] == "bytes":
        _apply_bytes(path, op[1])
        return
    document = _edit_document(_load(path), op, victim)
    if path.suffix == ".toml":
        path.write_text(_dump_toml(document), encoding="utf-8")
    else:
        path.write_text(json.dumps(document), encoding="utf-8")  # NaN is written as NaN


def _apply_safetensors(path: Path, op) -> None:
    if op[0] in ("nan", "inf"):
        from safetensors.torch import load_file, save_file

        state = load_file(str(path))
        state = {k: v.fill_(math.nan if op[0] == "nan" else math.inf)
                 if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(path))
        return
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    if op[0] == "header_len":
        path.write_bytes(struct.pack("<Q", op[1]) + data[8:])
    elif op[0] == "header":
        header = json.loads(data[8:8 + length])
        name = next(k for k in header if k != "__metadata__")
        field = {"offsets": "data_offsets"}.get(op[1], op[1])
        header[name][field] = op[2]
        text = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + length:])
    else:
        _apply_bytes(path, op)


def _apply_pickle(path: Path, op, marker: Path) -> None:
    import torch

    if op[0] == "evil":
        torch.save({"conv.weight": torch.zeros(2), "x": _Payload(marker)}, path)
    elif op[0] == "nan":
        state = torch.load(path, weights_only=True)["state_dict"]
        torch.save({k: v.fill_(math.nan) if v.is_floating_point() else v
                    for k, v in state.items()}, path)
    elif op[0] == "not_dict":
        torch.save([1, 2, 3], path)
    else:
        _apply_bytes(path, op)


def _onnx_meta(path: Path, op, victim: Path) -> None:
    import onnx

    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "edgessl":
            if op[0] == "bytes":
                raw = prop.value.encode()
                tmp = path.with_suffix(".meta")
                tmp.write_bytes(raw)
                _apply_bytes(tmp, op[1])
                prop.value = tmp.read_bytes().decode("utf-8", "replace")
                tmp.unlink()
            else:
                prop.value = json.dumps(_edit_document(json.loads(prop.value), op, victim))
    onnx.save(model, str(path))


def _external_escape(path: Path, secret: Path) -> None:
    """One initializer's data moved to ``weights.bin``, then a second ``location`` entry that
    points outside the folder: protobuf readers take the last one."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load(str(path))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin",
                                   size_threshold=0)
    onnx.save(model, str(path))
    model = onnx.load(str(path), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.external_data)
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", os.path.relpath(secret, path.parent)
    path.write_bytes(model.SerializeToString())


def _ov_meta(xml: Path, op, victim: Path, source: Path) -> None:
    """Rewrite the IR's metadata. The model is read from ``source``: OpenVINO maps the .bin it
    reads, and writing over a mapped file kills the process with SIGBUS."""
    import openvino as ov

    model = ov.Core().read_model(str(source))
    meta = json.loads(model.get_rt_info(["edgessl"]).astype(str))
    if op[0] == "bytes":
        text = json.dumps(meta)
        raw = bytearray(text.encode())
        tmp = xml.with_suffix(".meta")
        tmp.write_bytes(bytes(raw))
        _apply_bytes(tmp, op[1])
        value = tmp.read_bytes().decode("utf-8", "replace")
        tmp.unlink()
    else:
        value = json.dumps(_edit_document(meta, op, victim))
    model.set_rt_info(value, "edgessl")
    ov.save_model(model, str(xml), compress_to_fp16=False)


def _add_image(folder: Path, name: str, artifacts: Artifacts) -> None:
    target = next((p.parent for p in sorted(folder.rglob("*.png"))), folder)
    if name == "empty":
        (target / "empty.png").write_bytes(b"")
    elif name == "text":
        (target / "text.png").write_text("not an image")
    elif name == "truncated":
        first = next(iter(sorted(target.glob("*.png"))), None)
        data = first.read_bytes() if first else _png(4, 4)
        (target / "truncated.png").write_bytes(data[:len(data) // 2])
    elif name in ("strip", "bomb"):
        shutil.copy(artifacts.root / f"{name}.png", target / f"{name}.png")
    elif name == "link_loop":
        (target / "loop").symlink_to(folder, target_is_directory=True)
    else:
        first = next(iter(sorted(target.glob("*.png"))), None)
        if first is not None:
            shutil.copy(first, target / "évèn ünïcode \u202e name.png")


def _damage_folder(folder: Path, op, artifacts: Artifacts) -> None:
    if op[0] == "add":
        _add_image(folder, op[1], artifacts)
    elif op[0] == "only":
        for split in ("train", "val"):
            if split != op[1] and (folder / split).exists():
                shutil.rmtree(folder / split)
    elif op[0] in ("one_class", "empty_class"):
        for split in ("train", "val"):
            classes = sorted(p for p in (folder / split).iterdir()) if (
                folder / split).is_dir() else []
            for cls in classes[1:] if op[0] == "one_class" else classes[:1]:
                shutil.rmtree(cls) if op[0] == "one_class" else [
                    f.unlink() for f in cls.iterdir()]
    else:
        for image in list(folder.rglob("*.png")):
            image.unlink()


def _corrupt(kind: str, path: Path, op, artifacts: Artifacts, victim: Path) -> None:
    if kind in ("classifier", "backbone"):
        member, inner = op
        if member == "remove":
            target = path / inner
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        elif member == "train_state.pt":
            _apply_pickle(path / member, inner, artifacts.marker) if inner[0] == "evil" \
                else _apply_bytes(path / member, inner)
        elif member.endswith(".safetensors"):
            _apply_safetensors(path / member, inner)
        else:
            _apply_document(path / member, inner, victim)
    elif kind in ("recipe", "profile"):
        _apply_document(path, op, victim)
    elif kind == "onnx":
        if op[0] == "meta":
            _onnx_meta(path, op[1], victim)
        elif op[0] == "external_escape":
            _external_escape(path, artifacts.root / "secret.bin")
        else:
            _apply_bytes(path, op)
    elif kind == "openvino":
        if op[0] == "meta":
            _ov_meta(path, op[1], victim, artifacts.paths["openvino"])
        elif op[0] == "remove":
            (path.parent / op[1]).unlink()
        else:
            _apply_bytes(path.parent / op[0], op[1])
    elif kind == "safetensors":
        _apply_safetensors(path, op)
    elif kind == "pickle":
        _apply_pickle(path, op, artifacts.marker)
    else:
        _damage_folder(path, op, artifacts)


def _copy(source: Path, dest: Path) -> Path:
    """A copy of an artifact under ``dest``; for a file inside an artifact folder (ONNX, IR),
    the whole folder, and the returned path is the file in the copy."""
    if source.is_dir():
        shutil.copytree(source, dest, symlinks=True)
        return dest
    if source.parent.name in ("onnx", "openvino"):
        shutil.copytree(source.parent, dest)
        return dest / source.name
    dest.mkdir()
    shutil.copy(source, dest / source.name)
    return dest / source.name


def materialize(value: tuple, artifacts: Artifacts, workspace: Path, slot: str) -> Path:
    """The path for a drawn ``value``, made under ``workspace`` (``slot`` names it uniquely).

    ``workspace / "victim"`` is a folder of someone else's work that a corrupted recipe's
    ``out`` points at.
    """
    place = workspace / slot
    kind = value[0]
    if kind == "missing":
        return place / "missing"
    if kind == "folder":
        place.mkdir()
        return place
    if kind in ("text_file", "under_file"):
        place.mkdir()
        (place / "notes.txt").write_text("just a text file\n")
        return place / "notes.txt" / ("out" if kind == "under_file" else "")
    if kind == "existing_output":
        place.mkdir()
        (place / "precious.txt").write_text("someone's earlier result\n")
        return place
    if kind == "existing_file":
        place.mkdir()
        (place / "result.json").write_text('{"earlier": true}\n')
        return place / "result.json"
    path = _copy(artifacts.paths[value[1]], place)
    if kind == "corrupt":
        _corrupt(value[1], path, value[2], artifacts, workspace / "victim")
    return path
