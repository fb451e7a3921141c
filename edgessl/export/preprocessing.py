"""Preprocessing inside the graph, and static input shapes.

With ``--embed-preprocessing`` the artifact takes raw uint8 pixels [N, S, S, 3] (RGB, already
resized and centre-cropped to S) and does what ``edgessl.data.preprocess.to_chw`` does on the
host: scale to [0, 1], subtract the mean, divide by the std, move channels first. The ops are
the host's, in the host's order, so the artifact sees the same float input to the last bit or
two. ONNX gets the ops prepended to its graph (after quantization, so they stay float);
OpenVINO gets them from its PrePostProcessor.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

RAW_INPUT_NAME = "image"
RESIZE = "shorter side to S (bilinear), centre crop S x S"


def input_spec(name: str, image_size: int, raw: bool, batch: int | None) -> dict:
    """The input tensor an artifact takes (for its metadata)."""
    shape = [batch or -1, image_size, image_size, 3] if raw else [batch or -1, 3, image_size,
                                                                  image_size]
    return {"name": RAW_INPUT_NAME if raw else name, "dtype": "uint8" if raw else "float32",
            "layout": "NHWC" if raw else "NCHW", "shape": shape}


def preprocessing_spec(mean: Sequence[float], std: Sequence[float], embedded: bool) -> dict:
    """How an image becomes the input (for the metadata): what the host does, what the graph."""
    return {"embedded": embedded, "resize": RESIZE, "color": "RGB", "scale": 1 / 255,
            "mean": list(mean), "std": list(std),
            "host_does": "resize" if embedded else "resize, scale, normalise, HWC->CHW"}


def raw_batch(paths: Sequence[Path], image_size: int) -> np.ndarray:
    """Images -> uint8 [N, S, S, 3], resized and cropped as the host pipeline does."""
    from edgessl.data.images import open_rgb
    from edgessl.data.preprocess import resize_center_crop

    return np.stack([np.asarray(resize_center_crop(open_rgb(p), image_size), np.uint8)
                     for p in paths])


def embed_onnx(proto, mean: Sequence[float], std: Sequence[float]) -> None:
    """Give the ONNX graph a uint8 [N, S, S, 3] input ``image`` that feeds the old input."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    old = graph.input[0]
    dims = old.type.tensor_type.shape.dim
    batch = dims[0].dim_value or dims[0].dim_param or "batch"
    size = dims[2].dim_value
    consts = {"pp_scale": np.array(255, np.float32),
              "pp_mean": np.asarray(mean, np.float32).reshape(1, 3, 1, 1),
              "pp_std": np.asarray(std, np.float32).reshape(1, 3, 1, 1)}
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    nodes = [helper.make_node("Cast", [RAW_INPUT_NAME], ["pp_float"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["pp_float", "pp_scale"], ["pp_unit"]),
             helper.make_node("Transpose", ["pp_unit"], ["pp_chw"], perm=[0, 3, 1, 2]),
             helper.make_node("Sub", ["pp_chw", "pp_mean"], ["pp_centred"]),
             helper.make_node("Div", ["pp_centred", "pp_std"], [old.name])]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    raw = helper.make_tensor_value_info(RAW_INPUT_NAME, TensorProto.UINT8,
                                        [batch, size, size, 3])
    del graph.input[0]
    graph.input.insert(0, raw)


def embed_openvino(ov_model, mean: Sequence[float], std: Sequence[float]):
    """The OpenVINO model with a u8 NHWC input and the host's preprocessing (PrePostProcessor)."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(ov_model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    (ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
     .mean(list(mean)).scale(list(std)))
    model = ppp.build()
    model.inputs[0].get_tensor().set_names({RAW_INPUT_NAME})
    return model


def fix_batch_onnx(proto, batch: int) -> None:
    """Replace the symbolic batch axis of every graph input and output with ``batch``."""
    for value in [*proto.graph.input, *proto.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    del proto.graph.value_info[:]  # stale symbolic shapes; runtimes infer them again


def fix_batch_openvino(ov_model, batch: int) -> None:
    """Reshape the OpenVINO model's input to batch ``batch`` (static shape)."""
    import openvino as ov

    shape = ov_model.inputs[0].get_partial_shape()
    ov_model.reshape({ov_model.inputs[0]: ov.PartialShape([batch, *list(shape)[1:]])})
