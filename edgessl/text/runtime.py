"""Torch-free text classification: ``tokenizer.json`` + an ONNX or OpenVINO model -> labels.

An exported text model is a folder (``edgessl.text.export``, ``edgessl.text.export_openvino``)::

    model.onnx        inputs input_ids, attention_mask int64 [1, L] -> logits [1, C]
      or model.xml + model.bin (OpenVINO IR, the same inputs and output)
    tokenizer.json    the encoder's tokenizer (Hugging Face ``tokenizers`` format)
    text_model.json   labels, L, the pad id, pooling, model_file, the encoder's record,
                      validation

The sidecar's ``model_file`` names the model; its suffix picks the runtime that runs it
(``RUNTIMES``: ``.onnx`` -> ONNX Runtime, ``.xml`` -> OpenVINO). An OpenVINO model exported
with ``--fuse-tokenizer`` (sidecar ``"tokenizer": "fused"``) takes the string itself: its
tokenizer runs inside the graph through the ``openvino-tokenizers`` extension
(``edgessl.text.fused_tokenizer``). This module needs only numpy,
``tokenizers`` and that runtime (never torch or transformers), so a device or bundle
classifies raw strings with a few MB of wheels. ``encode_texts`` is also what training and
export use, so all three tokenise identically.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgessl.data.images import IMAGE_EXTENSIONS
from edgessl.errors import CheckpointError, ConfigError, DataError, printable
from edgessl.limits import MAX_CLASSES, MAX_LABEL_CHARS
from edgessl.registry import Registry

log = logging.getLogger("edgessl")

SIDECAR_FILE = "text_model.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
# The sidecar's schema; first written for ONNX only, it describes an OpenVINO folder as well
# (``model_file`` says which), so its name stays as published.
SIDECAR_FORMAT = "edgessl-text-onnx/1"
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
# Sentences to check or time a model on when no labeled text is given.
SAMPLE_TEXTS = ("How do I reset my password?", "What is the capital of France?",
                "I love this!", "Tell me a joke about computers.")
MAX_LINES_FILE_BYTES = 64 * 2**20  # a --file of texts to classify, read whole
MAX_SEQUENCE = 8192  # longer than any encoder edgessl loads (512 for BERT, 1024 for GPT-2)


def encode_texts(tokenizer, texts: list[str], length: int, pad_id: int,
                 pad_to_length: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, int64 [N, W], of ``texts``.

    Each text is truncated to ``length`` tokens (special tokens included) and padded on the
    right with ``pad_id``: to ``length`` (W = L, the static shape of an export) or, with
    ``pad_to_length`` False, to the longest text (training; results are the same, since
    pooling and attention ignore positions where the mask is 0).
    """
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=length)
    encoded = tokenizer.encode_batch(list(texts))
    width = length if pad_to_length else max((len(e.ids) for e in encoded), default=1)
    ids = np.full((len(encoded), max(width, 1)), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, :len(e.ids)] = e.ids
        mask[row, :len(e.ids)] = 1
    return ids, mask


def _tokenizer_extension_hint() -> str:
    from importlib import metadata

    try:
        release = ".".join(metadata.version("openvino").split(".")[:3])
    except metadata.PackageNotFoundError:
        return "pip install openvino openvino-tokenizers (the same release of both)"
    return f"pip install 'openvino-tokenizers~={release}.0' (the release of your OpenVINO)"


def load_tokenizer_extension():
    """Import ``openvino_tokenizers``, which registers the string operations of a fused
    tokenizer with OpenVINO (``edgessl.text.fused_tokenizer``).

    Raises:
        ConfigError: it is missing, or does not load with the installed OpenVINO.
    """
    try:
        import openvino_tokenizers
    except ImportError:
        raise ConfigError("a fused tokenizer needs the openvino-tokenizers package: "
                          f"{_tokenizer_extension_hint()}") from None
    except Exception as exc:  # noqa: BLE001 - a mismatched extension raises RuntimeError & co.
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"openvino-tokenizers does not load with this OpenVINO ({first}); "
                          f"{_tokenizer_extension_hint()}") from None
    return openvino_tokenizers


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class TextPrediction:
    """One text's class: its label, index and the probabilities of all classes [C]."""

    label: str
    index: int
    probabilities: np.ndarray


def read_sidecar(folder: Path) -> dict:
    """The folder's ``text_model.json``, checked field by field.

    Raises:
        CheckpointError: missing, not JSON, or a field of the wrong kind.
    """
    path = folder / SIDECAR_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"'{printable(folder)}' has no {SIDECAR_FILE}; it is not a text "
                              "model exported by edgessl") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"'{printable(path)}' cannot be read as JSON ({exc}); export "
                              "the model again") from None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    length, pad = (meta.get("max_length"), meta.get("pad_id")) if labels else (None, None)
    if (meta.get("format") != SIDECAR_FORMAT or not isinstance(labels, list)
            or not 2 <= len(labels) <= MAX_CLASSES
            or not all(isinstance(x, str) and len(x) <= MAX_LABEL_CHARS for x in labels)
            or not isinstance(length, int) or not 1 <= length <= MAX_SEQUENCE
            or not isinstance(pad, int) or pad < 0
            or meta.get("tokenizer", "file") not in ("file", "fused")
            or (meta.get("tokenizer") == "fused"
                and Path(str(meta.get("model_file"))).suffix != ".xml")):
        raise CheckpointError(f"'{printable(path)}' is not an edgessl text model description "
                              f"(format {SIDECAR_FORMAT}: labels, max_length, pad_id, a fused "
                              "tokenizer only in an OpenVINO .xml); export the model again")
    return meta


class OnnxRuntimeModel:
    """``model.onnx`` on ONNX Runtime's CPU provider."""

    runtime = "onnxruntime"

    def __init__(self, model: Path, threads: int | None, cache_dir: Path | None = None,
                 fused: bool = False) -> None:
        import onnxruntime as ort

        from edgessl.safety import check_onnx_external_data

        check_onnx_external_data(model)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(model), options,
                                            providers=["CPUExecutionProvider"])
        self.provider = self.session.get_providers()[0]

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAMES[0]: ids, INPUT_NAMES[1]: mask})[0]


class OpenVinoModel:
    """``model.xml`` (+ ``model.bin``) on OpenVINO's CPU plugin, latency hint.

    Float parts run in f32: on a CPU with bf16 or fp16 units OpenVINO would otherwise run an
    f32 (or fp16-compressed) IR in lower precision, and its outputs would drift from the
    validated ones. INT8 parts of an INT8 IR run in int8 whatever the hint.
    """

    runtime = "openvino"

    def __init__(self, model: Path, threads: int | None, cache_dir: Path | None = None,
                 fused: bool = False) -> None:
        import openvino as ov

        if not model.with_suffix(".bin").is_file():
            raise CheckpointError(f"'{printable(model)}' has no {model.stem}.bin beside it; "
                                  "export the model again")
        if fused:  # its string operations must be registered before the IR is read
            load_tokenizer_extension()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        if cache_dir is not None:  # the compiled model is kept there: later loads skip compiling
            config["CACHE_DIR"] = str(cache_dir)
        core = ov.Core()
        self.compiled = core.compile_model(str(model), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.provider = f"OpenVINO CPU: {core.get_property('CPU', 'FULL_DEVICE_NAME')}"

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = self.request.infer({INPUT_NAMES[0]: ids, INPUT_NAMES[1]: mask})
        return np.asarray(out[self.compiled.output(OUTPUT_NAME)])

    def run_text(self, text: str) -> np.ndarray:
        """Logits [1, C] of one string, for an IR with its tokenizer fused in."""
        out = self.request.infer([np.array([text])])
        return np.asarray(out[self.compiled.output(OUTPUT_NAME)])


# Model file suffix -> the runtime that runs it (imported when a model is loaded).
RUNTIMES: Registry[type] = Registry("text model file type")
RUNTIMES.register(".onnx", OnnxRuntimeModel)
RUNTIMES.register(".xml", OpenVinoModel)


def model_file(folder: Path, meta: dict) -> Path:
    """The sidecar's ``model_file`` (a plain name in the folder, of a known type), checked.

    Raises:
        CheckpointError: a path outside the folder, an unknown type, or a missing file.
    """
    name = meta.get("model_file", MODEL_FILE)
    if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
        raise CheckpointError(f"'{printable(folder / SIDECAR_FILE)}' names model file "
                              f"'{printable(name)}', which is not a file name in its folder; "
                              "export the model again")
    if Path(name).suffix not in RUNTIMES:
        raise CheckpointError(f"'{printable(folder / SIDECAR_FILE)}' names model file "
                              f"'{printable(name)}'; text models run as "
                              f"{' or '.join(RUNTIMES.names())} files")
    return folder / name


class TextPredictor:
    """Classifies raw strings with an exported text model folder, without torch.

    Args:
        folder: the export folder (``model.onnx`` or ``model.xml``, ``tokenizer.json``,
            ``text_model.json``).
        threads: the runtime's inference threads; None = its default.
        cache_dir: OpenVINO only: a folder where the compiled model is cached, so that later
            loads skip compiling (0.6 s -> 0.2 s for MiniLM); None = no cache. A bundle's
            ``run.py`` uses one; the host's commands do not write beside an export.
    """

    def __init__(self, folder: str | Path, threads: int | None = None,
                 cache_dir: str | Path | None = None) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise CheckpointError(f"text model '{printable(folder)}' is not a folder; give "
                                  "the folder edgessl exported")
        self.meta = read_sidecar(folder)
        model = model_file(folder, self.meta)
        for needed in (model, folder / TOKENIZER_FILE):
            if not needed.is_file():
                raise CheckpointError(f"'{printable(folder)}' has no {needed.name}; export "
                                      "the model again")
        try:
            self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        except Exception as exc:  # noqa: BLE001 - the Rust library raises plain Exception
            raise CheckpointError(f"'{printable(folder / TOKENIZER_FILE)}' is not a tokenizer "
                                  f"file ({str(exc)[:200]})") from None
        # The tokenizer inside the graph (edgessl.text.fused_tokenizer): strings go in as they
        # are; tokenizer.json is kept for the sequence lengths the benchmark reports.
        self.fused = self.meta.get("tokenizer") == "fused"
        self.model = RUNTIMES.get(model.suffix)(model, threads,
                                                None if cache_dir is None else Path(cache_dir),
                                                fused=self.fused)
        self.runtime: str = self.model.runtime
        self.labels: tuple[str, ...] = tuple(self.meta["labels"])
        self.max_length: int = self.meta["max_length"]
        self.pad_id: int = self.meta["pad_id"]

    def logits(self, text: str) -> np.ndarray:
        """Logits [C] of one text (tokenised, truncated and padded to the static [1, L])."""
        if not isinstance(text, str):
            raise DataError(f"a text model classifies strings, got {type(text).__name__}")
        if self.fused:
            return self.model.run_text(text)[0]
        ids, mask = encode_texts(self.tokenizer, [text], self.max_length, self.pad_id)
        return self.model.run(ids, mask)[0]

    def predict(self, texts: list[str] | str) -> list[TextPrediction]:
        """The class of each text (one at a time: the model's batch is fixed at 1)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        found = []
        for text in texts:
            probs = softmax(self.logits(text).astype(np.float64))
            index = int(np.argmax(probs))
            found.append(TextPrediction(self.labels[index], index, probs))
        return found

    def top_k(self, texts: list[str], k: int = 1) -> list[dict]:
        """Per text ``{"text", "top_k": [[label, probability], ...]}``, most likely first."""
        found = []
        for text, p in zip(texts, self.predict(texts), strict=True):
            order = p.probabilities.argsort()[::-1][:k]
            found.append({"text": text, "top_k": [[self.labels[i], float(p.probabilities[i])]
                                                  for i in order]})
        return found


def read_text_lines(file: str | Path, flag: str = "--file") -> list[str]:
    """The non-blank lines of a UTF-8 text file, stripped (the texts of ``--file``).

    Raises:
        DataError: missing, unreadable, too large, not UTF-8, or no non-blank line.
    """
    from edgessl.errors import file_problem

    file = Path(file).expanduser()
    problem = file_problem(file)
    if problem is not None and problem != "is empty":
        raise DataError(f"{flag} '{printable(file)}' {problem}")
    try:
        if file.stat().st_size > MAX_LINES_FILE_BYTES:
            raise DataError(f"{flag} '{printable(file)}' is over "
                            f"{MAX_LINES_FILE_BYTES // 2**20} MiB; split it into smaller files")
        data = file.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {flag} '{printable(file)}': {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{flag} '{printable(file)}' line {line} is not UTF-8 text; save it "
                        "as UTF-8") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{flag} '{printable(file)}' has no text; write one text per line")
    return lines


def _named_path(text: str) -> str | None:
    """What ``text`` names on disk when it cannot be meant as a sentence: "an image file", "a
    text file" (a .txt file), "a folder" (given as a path, with a separator), else None.

    ``os.path`` answers False for any text the OS cannot take as a path (too long, NUL).
    """
    path = os.path.expanduser(text)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in IMAGE_EXTENSIONS and os.path.isfile(path):
        return "an image file"
    if suffix == ".txt" and os.path.isfile(path):
        return "a text file"
    if ("/" in text or os.sep in text) and os.path.isdir(path):
        return "a folder"
    return None


def check_texts(texts: list[str], model: str, flag: str = "--file") -> None:
    """Refuse a text that a text classifier cannot mean: an empty or blank one, or one naming
    an existing image file, ``.txt`` file or folder (an input for an image model, or a file
    of texts that ``flag`` reads).

    Args:
        texts: the texts to classify, in the order given.
        model: the model, as the message names it.
        flag: the option that reads texts from a file.

    Raises:
        DataError: naming the text (by its position when blank) and what to pass instead.
    """
    for n, text in enumerate(texts, start=1):
        if not text.strip():
            raise DataError(f"text {n} of {len(texts)} is empty; give the text to classify in "
                            f"quotes (\"where is my parcel?\"), or {flag} with one text per "
                            "line")
        named = _named_path(text)
        if named == "a text file":
            raise DataError(f"'{printable(text)}' is a text file, and {model} classifies the "
                            f"texts given, not file names: pass the file with {flag} (one "
                            "text per line)")
        if named is not None:
            raise DataError(f"'{printable(text)}' is {named}, and {model} is a text "
                            "classifier: give the text to classify in quotes, or a file of "
                            f"texts with {flag} (images need an image model)")
        if _is_folder_here(text):  # a one-word text may well be meant: classified, but said
            log.warning("'%s' is also the name of a folder here; it was classified as the "
                        "text '%s'. To classify that folder's images, use an image model",
                        printable(text), printable(text))


def _is_folder_here(text: str) -> bool:
    """Whether a text with no path separator names a folder in the working directory."""
    try:
        return text.strip() == text and os.path.isdir(text)
    except (OSError, ValueError):
        return False


def is_text_model(path: str | Path) -> bool:
    """True when ``path`` is an exported text model folder (it holds ``text_model.json``)."""
    return Path(path).is_dir() and (Path(path) / SIDECAR_FILE).is_file()
