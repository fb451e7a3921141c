"""The deploy runtime: run an exported model with numpy, Pillow and one inference runtime.

    from edgessl.runtime import load

    model = load("export/clf-onnx-int8/model.onnx")
    for p in model.predict(["cat.jpg", "dog.png"], top_k=3):
        print(p.source, p.label, p.score)

``load`` reads the labels, input size and normalisation embedded in the artifact, so nothing
else travels with it. Importing this package imports neither torch nor any runtime; ``load``
imports only the runtime the artifact needs (onnxruntime for ``.onnx``, openvino for ``.xml``).
This package (with the few light modules it uses) is what ``edgessl deploy`` copies into a
bundle, so it must stay that way: ``tests/test_runtime_light.py`` checks it.
"""

from edgessl.runtime.model import DeployedModel, Prediction, load

__all__ = ["DeployedModel", "Prediction", "load"]
