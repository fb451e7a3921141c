"""Runtimes that execute a model on the host: PyTorch, ONNX Runtime, OpenVINO.

``RUNTIMES`` maps a runtime name to a loader ``load(path, device) -> LoadedModel``;
``runtime_for(path)`` picks the runtime from what the path is. One file per runtime.
"""
