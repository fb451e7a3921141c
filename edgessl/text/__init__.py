"""Text classification: a BERT- or GPT-2-family encoder, a few labeled sentences, INT8 ONNX.

The text counterpart of the image pipeline, stage by stage:

- ``data``: labeled text sets (a folder of class folders of ``.txt`` files, or a ``.csv`` /
  ``.jsonl`` file), seeded stratified splits and labels-per-class sampling;
  ``builtin``: an offline built-in set (chatterbot-corpus questions labelled by topic).
- ``encoders``: the registry of text starts (the offline all-MiniLM-L6-v2) and local Hugging
  Face folders, loaded safely (safetensors, or torch files with ``weights_only``).
- ``finetune``: linear probe on frozen pooled embeddings and full fine-tuning;
  ``baseline``: TF-IDF + logistic regression.
- ``export``: ONNX with static ``[1, L]`` inputs, fp32 and dynamic INT8, validated against
  PyTorch, with the tokenizer's ``tokenizer.json`` beside the model.
- ``runtime``: torch-free prediction of raw strings (``tokenizers`` + ONNX Runtime).

Importing this package is light; torch and transformers load inside the functions that need
them, and ``runtime`` never loads them.
"""
