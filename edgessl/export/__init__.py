"""Export stage: a checkpoint -> an ONNX or OpenVINO artifact (fp32, fp16 or int8), validated.

``export_model(checkpoint, ExportConfig(...))`` in ``edgessl.export.api`` is the entry point;
``FORMATS`` in ``edgessl.export.formats`` is the table of formats, one file per format;
``schemes`` picks an INT8 scheme that is safe on the target CPU, ``accuracy_control`` runs
NNCF (plain or accuracy-aware), ``preprocessing`` puts the input pipeline into the graph.
"""
