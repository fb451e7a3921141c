"""Backends: one loader per inference engine (PyTorch, ONNX Runtime, OpenVINO, ExecuTorch).

Not to be confused with ``edgessl.runtime``, the light deploy runtime a bundle carries, which
calls these loaders: a backend knows one engine, the runtime knows artifacts and measurement.

``RUNTIMES`` maps a runtime name to a loader ``load(path, device) -> LoadedModel``;
``runtime_for(path)`` picks the runtime from what the path is. One file per runtime.
"""
