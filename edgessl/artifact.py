"""Metadata embedded in every exported artifact (ONNX metadata_props, OpenVINO rt_info).

Read by the runtimes, so an artifact is self-describing: labels, input size, normalisation.
This module imports nothing heavy: the deploy runtime uses it.
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
        task: "classify" (logits [N, len(labels)]).
        format: export format name ("onnx", "openvino").
        precision: "fp32" or "int8".
        source_sha256: hash of the checkpoint weights the artifact was exported from.
        edgessl_version: the version that exported it.
        extra: anything else (quantization scheme, backbone, SSL method).
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
