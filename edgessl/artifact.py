"""Metadata embedded in every exported artifact (ONNX metadata_props, OpenVINO rt_info).

Read by the runtimes, so an artifact is self-describing: labels, input size, normalisation,
what the input tensor is (float32 [N, 3, S, S] normalised, or raw uint8 [N, S, S, 3] when the
preprocessing is inside the graph) and what the output means. ``export`` writes the same JSON as
a sidecar file beside the artifact. This module imports nothing heavy: the deploy runtime uses it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from edgessl.errors import CheckpointError

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
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
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
        return np.ascontiguousarray(batch, dtype=dtype)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> ArtifactMeta:
        try:
            data = json.loads(text)
            names = {f.name for f in fields(cls)}
            data = {k: v for k, v in data.items() if k in names}
            for key in ("labels", "mean", "std"):
                data[key] = tuple(data[key])
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CheckpointError(f"'{where}' carries damaged edgessl metadata ({exc}); "
                                  "re-export it with edgessl export") from None
