"""Metadata embedded in every exported artifact (ONNX metadata_props, OpenVINO rt_info).

Read by the runtimes, so an artifact is self-describing: labels, input size, normalisation,
what the input tensor is (float32 [N, 3, S, S] normalised, or raw uint8 [N, S, S, 3] when the
preprocessing is inside the graph) and what the output means. ``export`` writes the same JSON as
a sidecar file beside the artifact. This module imports nothing heavy: the deploy runtime uses it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Annotated

from edgessl.config import FieldError, Range, check_fields, from_dict
from edgessl.errors import CheckpointError, ConfigError, printable
from edgessl.limits import MAX_CLASSES, MAX_IMAGE_SIDE, MAX_LABEL_CHARS

META_KEY = "edgessl"


@dataclass(frozen=True)
class ArtifactMeta:
    """What a runtime needs to feed an exported model and read its output.

    Attributes:
        labels: class names, index = output position.
        image_size: input side in pixels; inputs are float32 [N, 3, image_size, image_size].
        mean, std: normalisation applied to RGB values in [0, 1] before the model.
        task: "classify" (scores [N, len(labels)]) or "embed" (embeddings [N, D]).
        format: export format name ("onnx", "openvino").
        precision: "fp32", "fp16" or "int8".
        source_sha256: hash of the checkpoint weights the artifact was exported from.
        edgessl_version: the version that exported it.
        extra: anything else (quantization scheme, backbone, static_batch).
        output: "logits", "probabilities", "embedding" or "embedding-l2" (L2-normalised).
        input_spec: the input tensor: name, dtype ("float32"/"uint8"), layout ("NCHW"/"NHWC")
            and shape (-1 = dynamic); None in artifacts older than this field (float32 NCHW).
        preprocessing: what turns an image into the input: resize, scale, mean/std, and
            ``embedded`` (True when the graph itself scales and normalises uint8 pixels).
        ssl_method: how the backbone was pretrained ("simclr", "scratch", ...).
        versions: library versions that exported it (torch, onnx, onnxruntime, openvino, nncf).
    """

    labels: tuple[str, ...]
    image_size: Annotated[int, Range(ge=1, le=MAX_IMAGE_SIDE, note="pixels")]
    mean: Annotated[tuple[float, float, float], Range(ge=-1e3, le=1e3)]
    std: Annotated[tuple[float, float, float], Range(gt=0, le=1e3, note="zero would divide "
                                                                       "by zero")]
    task: str = "classify"
    format: str = ""
    precision: str = "fp32"
    source_sha256: str = ""
    edgessl_version: str = ""
    extra: dict | None = None
    output: str = "logits"
    input_spec: dict | None = None
    preprocessing: dict | None = None
    ssl_method: str = ""
    versions: dict | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        if len(self.labels) > MAX_CLASSES:
            raise FieldError("labels", f"must list at most {MAX_CLASSES} classes, got "
                                       f"{len(self.labels)}")
        long = next((label for label in self.labels if len(label) > MAX_LABEL_CHARS), None)
        if long is not None:
            raise FieldError("labels", f"must be names of at most {MAX_LABEL_CHARS} characters, "
                                       f"got one of {len(long)}")

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the artifact was exported for; None when its batch is dynamic."""
        shape = (self.input_spec or {}).get("shape") or [-1]
        first = shape[0] if isinstance(shape, (list, tuple)) else -1
        return first if isinstance(first, int) and not isinstance(first, bool) and first > 0 \
            else None

    @property
    def raw_input(self) -> bool:
        """True when the model takes uint8 [N, S, S, 3] pixels (preprocessing in the graph)."""
        return (self.input_spec or {}).get("dtype") == "uint8"

    def check_batch(self, batch, where):
        """``batch`` as the contiguous array the model takes, or a DataError naming the shape.

        Float32 [N, 3, S, S] normalised for plain artifacts, uint8 [N, S, S, 3] for artifacts
        with embedded preprocessing.
        """
        import numpy as np

        from edgessl.errors import DataError

        s = self.image_size
        if self.raw_input:
            want, dtype, hint = (s, s, 3), np.uint8, "resize to the input size only"
        else:
            want, dtype, hint = (3, s, s), np.float32, "preprocess with the artifact's meta"
        if batch.ndim != 4 or tuple(batch.shape[1:]) != want:
            shape = ", ".join(map(str, want))
            raise DataError(f"'{where}' takes {np.dtype(dtype).name} [N, {shape}] inputs, "
                            f"got shape {list(batch.shape)}; {hint}")
        if self.fixed_batch is not None and batch.shape[0] != self.fixed_batch:
            raise DataError(f"'{where}' is exported for a fixed batch of {self.fixed_batch}, "
                            f"got {batch.shape[0]} images; pass batches of {self.fixed_batch}")
        return np.ascontiguousarray(batch, dtype=dtype)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> ArtifactMeta:
        """The metadata in ``text``, every field checked for type and range.

        Keys this version does not know are ignored (metadata of a newer edgessl).

        Raises:
            CheckpointError: for text that is not a JSON object, or a field that is missing,
                of the wrong type or out of range, naming the file and the field.
        """
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError, ValueError, RecursionError) as exc:
            raise CheckpointError(f"'{printable(where)}' carries damaged edgessl metadata "
                                  f"({printable(exc)}); re-export it with edgessl export") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"'{printable(where)}' carries damaged edgessl metadata (a "
                                  f"JSON {type(data).__name__}, not an object); re-export it")
        names = {f.name for f in fields(cls)}
        try:
            return from_dict(cls, {k: v for k, v in data.items() if k in names},
                             where=f"edgessl metadata of '{printable(where)}'")
        except ConfigError as exc:
            raise CheckpointError(f"{exc}; the file is damaged: re-export it with edgessl "
                                  "export") from None
