"""``load(path)`` -> a ``DeployedModel`` whose ``predict`` takes images and returns labels.

Only numpy and Pillow are imported here; the runtime (onnxruntime or openvino) is imported by
``load`` for the artifact at hand. An artifact exported with its preprocessing inside (input
uint8 [N, H, W, 3]) is fed resized RGB pixels; any other gets float32 [N, 3, S, S] normalised
exactly as on the host (``edgessl.data.preprocess``), so device and host results agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgessl.errors import CheckpointError, DataError, DeviceUnavailableError, EdgesslError

DEFAULT_BATCH = 32


@dataclass(frozen=True)
class Prediction:
    """What the model says about one image.

    Attributes:
        source: the image's path, or ``<image i>`` for an in-memory image.
        label: the top class (classifiers); None for an embedding model.
        score: softmax probability of ``label`` in [0, 1]; None for an embedding model.
        top_k: the best (label, probability) pairs, best first.
        embedding: float32 [D] output of an embedding model; None for a classifier.
    """

    source: str
    label: str | None = None
    score: float | None = None
    top_k: tuple[tuple[str, float], ...] = ()
    embedding: np.ndarray | None = None

    def to_dict(self) -> dict:
        out: dict = {"source": self.source}
        if self.embedding is not None:
            out["embedding"] = [float(v) for v in self.embedding]
        else:
            out.update(label=self.label, score=self.score,
                       top_k=[{"label": lb, "score": s} for lb, s in self.top_k])
        return out


def runtime_of(path: str | Path) -> tuple[str, str, str]:
    """(runtime name, module name, pip package) for an artifact path, by its suffix.

    Raises:
        CheckpointError: for a path that is not a ``.onnx`` or ``.xml`` artifact.
    """
    from edgessl.runtime_specs import artifact_kinds, runtime_for_suffix

    path = Path(path)
    spec = runtime_for_suffix(path.suffix)
    if spec is None or spec.format is None:
        raise CheckpointError(f"'{path}' is not an exported model; pass a file written by "
                              f"edgessl export: {artifact_kinds()}")
    return spec.name, spec.module, spec.package


def load(path: str | Path, device: str = "CPU", profile=None) -> DeployedModel:
    """Load an exported artifact with the one runtime it needs.

    Args:
        path: a ``.onnx`` file (ONNX Runtime) or ``.xml`` file (OpenVINO IR) from edgessl export.
        device: the device the runtime should use ("CPU", "GPU", "CUDA", "NPU", ...).
        profile: a DeviceProfile whose providers, threads, hint and options the runtime uses
            (``device`` is then the profile's); None = runtime defaults on ``device``.

    Raises:
        CheckpointError: missing file, unknown kind of file, or no edgessl metadata in it.
        DeviceUnavailableError: the runtime is not installed, or lacks ``device``.
    """
    path = Path(path)
    from edgessl.runtime_specs import RUNTIME_SPECS

    runtime, module_name, package = runtime_of(path)
    import_name = RUNTIME_SPECS.get(runtime).import_name
    if not path.is_file():
        raise CheckpointError(f"model '{path}' does not exist; check the path")
    try:
        importlib.import_module(import_name)
    except ImportError:
        raise DeviceUnavailableError(
            f"'{path.name}' needs {runtime}, which is not installed for this Python; "
            f"install it with: python -m pip install {package}") from None
    if runtime == "onnxruntime":  # before ONNX Runtime opens any external data file
        from edgessl.safety import check_onnx_external_data

        check_onnx_external_data(path)
    if profile is not None:
        device = profile.device
    loaded = importlib.import_module(module_name).load(path, device=device, profile=profile)
    return DeployedModel(loaded)


def _as_image(item, index: int):
    """(source name, RGB PIL image or path) for one input item."""
    from PIL import Image

    if isinstance(item, (str, Path)):
        return str(item), Path(item)
    if isinstance(item, Image.Image):
        return f"<image {index}>", item
    if isinstance(item, np.ndarray):
        array = item
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            raise DataError(f"image {index} has shape {list(array.shape)} (channels first); "
                            "pass images as [H, W, 3] or [H, W] arrays like PIL gives them")
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
            raise DataError(f"image {index} has shape {list(array.shape)}; pass [H, W, 3] RGB "
                            "or [H, W] grayscale arrays")
        return f"<image {index}>", Image.fromarray(_as_uint8(array, index)).convert("RGB")
    raise DataError(f"image {index} is a {type(item).__name__}; pass a path, a PIL image or "
                    "a numpy array [H, W, 3]")


def _as_uint8(array: np.ndarray, index: int) -> np.ndarray:
    """Pixels of an array image as uint8: integers in [0, 255] as they are, floats (and bools)
    taken as values in [0, 1].

    Anything else is an error rather than a guess: floats in [0, 255] (``img.astype(float)``)
    would all clip to white, 16-bit integers would wrap, normalised inputs would clip to
    black, and each would still get a confident prediction.

    Raises:
        DataError: non-finite values, or values outside the range of their type.
    """
    if array.size == 0:
        raise DataError(f"image {index} is empty (shape {list(array.shape)}); pass an image of "
                        "at least 1 x 1 pixels")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise DataError(f"image {index} is {array.dtype} with values {low}..{high}; integer "
                            "images must lie in 0..255: scale 16-bit images to uint8 first")
        return array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_):
        raise DataError(f"image {index} has dtype {array.dtype}; pass uint8 [0, 255] or float "
                        "[0, 1] pixels")
    values = np.asarray(array, np.float32)
    if not np.isfinite(values).all():
        raise DataError(f"image {index} holds NaN or infinite values; pass finite pixels")
    low, high = float(values.min()), float(values.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        hint = (" (values up to 255: divide by 255, or pass uint8)" if high > 1 else
                " (a normalised tensor? pass the pixels before normalisation)")
        raise DataError(f"image {index} is {array.dtype} with values {low:.3g}..{high:.3g}; "
                        f"float images must lie in [0, 1]{hint}")
    return np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _images(images) -> list:
    """predict's argument as a list: one image, a sequence of them, or an [N, H, W, 3] array."""
    from PIL import Image

    if isinstance(images, (str, Path, Image.Image)):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    return list(images)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class DeployedModel:
    """An exported model loaded for inference.

    Attributes:
        path: the artifact.
        meta: labels, input size, normalisation and task embedded in it (ArtifactMeta).
        execution: the runtime, device and provider that actually run it (ExecutionInfo).
        load_seconds: time to load/compile the artifact, in s.
        raw_input: True when preprocessing is inside the graph (input uint8 [N, S, S, 3]).
    """

    def __init__(self, loaded) -> None:
        self.loaded = loaded
        self.path = loaded.path
        self.meta = loaded.meta
        self.load_seconds = loaded.load_seconds
        self.raw_input = _takes_uint8(loaded)

    @property
    def execution(self):
        """What runs the model, as the runtime reports it now (OpenVINO's AUTO moves from the
        CPU to the accelerator once that has compiled)."""
        return self.loaded.execution

    def preprocess(self, images) -> np.ndarray:
        """Images (paths, PIL images, [H, W, 3] arrays) -> the model's input batch.

        Returns float32 [N, 3, S, S] normalised, or uint8 [N, S, S, 3] when ``raw_input``.
        """
        from edgessl.data.images import open_rgb, to_rgb
        from edgessl.data.preprocess import resize_center_crop, to_chw

        m = self.meta
        out = []
        for i, item in enumerate(_images(images)):
            source, image = _as_image(item, i)
            if isinstance(image, Path):
                try:
                    image = open_rgb(image, min_side=m.image_size)
                except FileNotFoundError:
                    raise DataError(f"image '{source}' does not exist; check the path") from None
                except EdgesslError:  # a limit (edgessl.limits) says what and why already
                    raise
                except Exception as exc:  # noqa: BLE001 - any decoder failure, bombs included
                    raise DataError(f"'{source}' is not a readable image ({exc})") from None
            elif 0 in image.size:
                raise DataError(f"image {i} is {image.width} x {image.height} pixels; pass an "
                                "image of at least 1 x 1 pixels")
            else:
                image = to_rgb(image)
            image = resize_center_crop(image, m.image_size)
            out.append(np.asarray(image, np.uint8) if self.raw_input
                       else to_chw(image, m.mean, m.std))
        if not out:
            raise DataError("no image to predict; pass one or more images")
        return np.stack(out)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a preprocessed batch (see ``preprocess``); returns float32 [N, C] or [N, D].

        An artifact exported for a fixed batch gets batches of that size: ``batch`` is cut into
        them, the last one padded with copies of its first image and the padding dropped.
        """
        return run_in_fixed_batches(self._run, batch, self.meta.fixed_batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if not self.raw_input:
            return self.loaded.run(batch)
        return _run_uint8(self.loaded, np.ascontiguousarray(batch, dtype=np.uint8))

    def predict(self, images, top_k: int = 1, batch_size: int = DEFAULT_BATCH) -> list[Prediction]:
        """Classify images (or embed them, for an embedding model).

        Args:
            images: one image or a sequence of them: paths, PIL images or numpy arrays
                [H, W, 3] / [H, W] (uint8, or float in [0, 1]); or an array [N, H, W, 3].
            top_k: how many (label, probability) pairs to keep per image.
            batch_size: images per run.

        Returns:
            One Prediction per image, in order.
        """
        return [p for chunk in self.iter_predict(images, top_k, batch_size) for p in chunk]

    def iter_predict(self, images, top_k: int = 1, batch_size: int = DEFAULT_BATCH,
                     on_unreadable=None) -> Iterator[list[Prediction]]:
        """Like ``predict``, but yields each batch's predictions as soon as it is done.

        Args:
            on_unreadable: None (an image that cannot be read is a DataError), or a callable
                ``(path, error)`` called for each such image file instead; it may raise to
                stop, else the image is left out of the predictions.
        """
        if top_k < 1:
            raise DataError(f"--top-k must be ≥ 1, got {top_k}")
        if batch_size < 1:
            raise DataError(f"--batch-size must be ≥ 1, got {batch_size}")
        items = _images(images)
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            names = [_source(item, start + i) for i, item in enumerate(chunk)]
            try:
                batch = self.preprocess(chunk)
            except DataError:
                if on_unreadable is None:
                    raise
                chunk, names, batch = self._readable(chunk, names, on_unreadable)
                if batch is None:
                    continue
            yield self._predictions(names, self.run(batch), top_k)

    def _readable(self, chunk: list, names: list[str], on_unreadable):
        """The images of ``chunk`` that preprocess one by one (the others reported to
        ``on_unreadable``): (items, names, batch), batch None when none is left."""
        kept, kept_names, rows = [], [], []
        for item, name in zip(chunk, names, strict=True):
            try:
                rows.append(self.preprocess([item]))
            except DataError as exc:
                if not isinstance(item, (str, Path)):
                    raise
                on_unreadable(Path(item), exc)
                continue
            kept.append(item)
            kept_names.append(name)
        return kept, kept_names, (np.concatenate(rows) if rows else None)

    def _predictions(self, names: list[str], out: np.ndarray, top_k: int) -> list[Prediction]:
        labels = self.meta.labels
        if not labels or self.meta.task != "classify":
            return [Prediction(source=n, embedding=row.astype(np.float32))
                    for n, row in zip(names, out, strict=True)]
        if out.ndim != 2 or out.shape[1] != len(labels):
            raise CheckpointError(f"'{self.path}' outputs {list(out.shape[1:])} scores per image "
                                  f"but its metadata lists {len(labels)} labels; the file is "
                                  "damaged or was edited: re-export it")
        probs = _softmax(out.astype(np.float64))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
        preds = []
        for name, p, idx in zip(names, probs, order, strict=True):
            best = tuple((labels[j], float(p[j])) for j in idx)
            preds.append(Prediction(source=name, label=best[0][0], score=best[0][1], top_k=best))
        return preds


def run_in_fixed_batches(run, batch: np.ndarray, fixed: int | None) -> np.ndarray:
    """``run(batch)``, or for a model that takes only batches of ``fixed`` images: ``batch`` cut
    into such batches, the last one padded with copies of its first image and the padding's
    outputs dropped."""
    if fixed is None or len(batch) == fixed:
        return run(batch)
    outs = []
    for start in range(0, len(batch), fixed):
        part = batch[start:start + fixed]
        short = fixed - len(part)
        if short:
            part = np.concatenate([part, np.repeat(part[:1], short, axis=0)])
        outs.append(run(part)[:fixed - short])
    return np.concatenate(outs)


def _source(item, index: int) -> str:
    return str(item) if isinstance(item, (str, Path)) else f"<image {index}>"


def _takes_uint8(loaded) -> bool:
    """True when the artifact's graph holds its preprocessing (its input is uint8), read from
    the graph where the runtime shows it (artifacts whose metadata predates ``input_spec``),
    else from the metadata."""
    session = getattr(loaded, "session", None)
    if session is not None:
        return session.get_inputs()[0].type == "tensor(uint8)"
    compiled = getattr(loaded, "compiled", None)
    if compiled is not None:
        return compiled.inputs[0].get_element_type().get_type_name() == "u8"
    return loaded.meta.raw_input


def _run_uint8(loaded, batch: np.ndarray) -> np.ndarray:
    """Run uint8 pixels straight through the runtime (the metadata may not say uint8)."""
    session = getattr(loaded, "session", None)
    if session is not None:
        name = session.get_inputs()[0].name
        return np.asarray(session.run(None, {name: batch})[0], dtype=np.float32)
    compiled = getattr(loaded, "compiled", None)
    if compiled is not None:
        return np.array(compiled({0: batch})[0], dtype=np.float32, copy=True)
    return loaded.run(batch)


def refuse_blank_paths(images: Iterable[str | Path]) -> None:
    """Refuse an empty or blank image argument (an unset shell variable, ``""``): as a path it
    is the current folder, which ``iter_image_files`` would search recursively.

    Raises:
        DataError: naming the argument and what to pass instead.
    """
    blank = [i for i in images if isinstance(i, str) and not i.strip()]
    if blank:
        raise DataError(f"IMAGE_OR_DIR {blank[0]!r} is empty; pass image files or folders "
                        "('.' for the current folder)")


def iter_image_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively, sorted) into a list of image files.

    Raises:
        DataError: for a path that does not exist, or when no image is found.
    """
    from edgessl.data.images import image_files_or_fail

    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            files += image_files_or_fail(path, "folder")
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"'{path}' does not exist; pass image files or folders")
    if not files:
        raise DataError("no image given; pass image files or folders")
    return files
