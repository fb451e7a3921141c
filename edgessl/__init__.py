"""edgessl: self-supervised vision backbones from unlabeled images to an edge device.

Importing the package is light: heavy dependencies (torch, onnxruntime, openvino, nncf)
are imported inside the functions that need them.
"""

__version__ = "0.1.0"

from edgessl.errors import EdgesslError  # noqa: E402

__all__ = ["EdgesslError", "__version__"]
