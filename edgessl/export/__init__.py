"""Export stage: a classifier checkpoint -> an ONNX or OpenVINO artifact (fp32 or int8).

``export_model(checkpoint, ExportConfig(...))`` in ``edgessl.export.api`` is the entry point;
``FORMATS`` in ``edgessl.export.formats`` is the table of formats, one file per format.
"""
