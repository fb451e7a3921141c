"""Optional ONNX graph simplification with onnxslim, kept only when outputs do not change."""

from __future__ import annotations

import logging

import numpy as np

from edgessl.errors import ConfigError

log = logging.getLogger("edgessl")

# Largest output difference (relative to the output's scale) a simplification may cause.
TOLERANCE = 1e-5


def _run(proto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def simplify_onnx(proto, sample: np.ndarray):
    """``proto`` simplified by onnxslim if its outputs on ``sample`` stay within TOLERANCE.

    Args:
        proto: an fp32 ONNX model.
        sample: an input batch float32 [N, 3, S, S] to compare outputs on.

    Returns:
        (the model to use, a one-line note for the report).

    Raises:
        ConfigError: onnxslim is not installed.
    """
    try:
        import onnxslim
    except ImportError:
        raise ConfigError("--simplify needs onnxslim; pip install onnxslim, or export "
                          "without --simplify") from None
    import onnx

    before = len(proto.graph.node)
    slim = onnxslim.slim(onnx.ModelProto.FromString(proto.SerializeToString()))
    ref, got = _run(proto, sample), _run(slim, sample)
    diff = float(np.abs(ref - got).max()) if ref.shape == got.shape else float("inf")
    scale = max(float(np.abs(ref).max()), 1.0)
    if diff > TOLERANCE * scale:
        log.warning("onnxslim changed the outputs (max |diff| %.3g); keeping the graph as "
                    "exported", diff)
        return proto, f"skipped: onnxslim {onnxslim.__version__} changed outputs by {diff:.3g}"
    return slim, (f"onnxslim {onnxslim.__version__}: {before} -> {len(slim.graph.node)} nodes, "
                  f"max |diff| {diff:.3g}")
