"""The tokenizer fused into an OpenVINO text model: raw strings in, logits out.

``openvino-tokenizers`` (``convert_tokenizer``) turns a Hugging Face tokenizer into OpenVINO
operations; here it is truncated and padded to the classifier's static length L and joined in
front of the classifier's IR through a Reshape to [1, L] (``_join``), so one ``model.xml``
takes a batch of one string and returns the logits. An application then needs OpenVINO and the
extension library only: no tokenization code of its own (a C++ application reads the same IR
after loading the extension).

A converted tokenizer is never trusted on its word: before the IR is written, its token ids
and mask are compared with ``tokenizers``' (the code that trained the classifier) on the
validation texts and on ``PROBE_TEXTS`` (accents, emoji, CJK, case, digits, punctuation,
blank and over-long input). Any difference refuses the fusion with the first text that
differs; the export with ``tokenizer.json`` beside the model is always available.

The tokenizer operations run on the CPU plugin only (they are string operations), so a fused
model is for CPU inference; for a GPU or NPU export the tokenizer stays beside the model.
The ``openvino-tokenizers`` wheel must match the OpenVINO release (2026.4.x with 2026.4.x):
``pip install openvino-tokenizers~=<openvino version>``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgessl.errors import ConfigError, printable
from edgessl.text.runtime import INPUT_NAMES, encode_texts, load_tokenizer_extension

log = logging.getLogger("edgessl")

# Inputs that tokenizers handle in ways a conversion can get wrong: normalisation (accents,
# case, full-width forms), pre-tokenisation (punctuation, digits, CJK), unknown pieces (emoji),
# and the edges (empty, blank, longer than any L).
PROBE_TEXTS = (
    "How do I reset my password?",
    "Héllo wörld, naïve café — déjà vu!",
    "UPPER lower MiXeD CaSe 12345 3.14 x.y@example.com #tag",
    "I love it 😀👍🏽 !!!",
    "東京は日本の首都です。",
    "ＦＵＬＬ－ＷＩＤＴＨ ｔｅｘｔ",
    "",
    "   \t  ",
    "word " * 600,
    "don't can't won't it's",
    "(brackets) [square] {curly} <angle> \"quotes\" 'single'",
)


def extension_version() -> str:
    from importlib import metadata

    return metadata.version("openvino-tokenizers")


def convert(tokenizer, length: int, pad_id: int):
    """The ``tokenizers.Tokenizer`` as an OpenVINO model: one string -> ``input_ids`` and
    ``attention_mask`` int64 [1, L], truncated and right-padded with ``pad_id`` as
    ``encode_texts`` does.

    Raises:
        ConfigError: openvino-tokenizers is missing or cannot convert this tokenizer.
    """
    from transformers import PreTrainedTokenizerFast

    ovt = load_tokenizer_extension()
    pad_token = tokenizer.id_to_token(pad_id)
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer.__class__.from_str(
        tokenizer.to_str()), pad_token=pad_token)
    hf.padding_side = "right"
    try:
        model = ovt.convert_tokenizer(hf, use_max_padding=True, truncation=True,
                                      max_length=length)
    except Exception as exc:  # noqa: BLE001 - the converter raises many error types
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"openvino-tokenizers cannot convert this tokenizer ({text}); export "
                          "without --fuse-tokenizer (tokenizer.json travels beside the "
                          "model)") from None
    names = {o.get_any_name() for o in model.outputs}
    if not set(INPUT_NAMES) <= names:
        raise ConfigError(f"the converted tokenizer gives {sorted(names)}, not "
                          f"{list(INPUT_NAMES)}; export without --fuse-tokenizer")
    return model


def check_ids(converted, tokenizer, texts, length: int, pad_id: int) -> int:
    """Compare the converted tokenizer with ``encode_texts`` on ``texts`` and PROBE_TEXTS.

    Returns:
        How many texts were compared (all equal).

    Raises:
        ConfigError: a text whose mask, or whose ids where the mask is 1, differ.
    """
    import openvino as ov

    compiled = ov.Core().compile_model(converted, "CPU")
    texts = list(dict.fromkeys([*texts, *PROBE_TEXTS]))
    for text in texts:
        out = compiled([np.array([text])])
        ids = np.asarray(out[compiled.output(INPUT_NAMES[0])])
        mask = np.asarray(out[compiled.output(INPUT_NAMES[1])])
        want_ids, want_mask = encode_texts(tokenizer, [text], length, pad_id)
        if (ids.shape != want_ids.shape or not np.array_equal(mask, want_mask)
                or not np.array_equal(ids[mask == 1], want_ids[want_mask == 1])):
            raise ConfigError(f"the tokenizer converted by openvino-tokenizers splits "
                              f"'{printable(text[:60])}' differently from tokenizer.json; "
                              "export without --fuse-tokenizer (tokenizer.json travels beside "
                              "the model)")
    return len(texts)


def _join(converted, classifier, length: int):
    """``converted``'s ids and mask into ``classifier``'s inputs, through a Reshape to the
    static [1, L] (the tokenizer pads to L, but its outputs are typed [?, ?]: joined as they
    are, every MatMul after them would compile for dynamic shapes, slower, and INT8 kernels
    that round differently; reshaping the whole model to one string instead mis-tokenizes).
    The tokenizer's sinks (its ReadValue/Assign state) are kept: openvino-tokenizers'
    ``connect_models`` (2026.4) drops them, and the CPU plugin refuses the model then."""
    import openvino as ov
    from openvino import opset13 as ops

    shape = ops.constant(np.array([1, length], dtype=np.int64))
    for name in INPUT_NAMES:
        produced = converted.output(name).get_node().input_value(0)  # what feeds the Result
        static = ops.reshape(produced, shape, special_zero=False)
        for target in classifier.input(name).get_target_inputs():
            target.replace_source_output(static.output(0))
    fused = ov.Model(classifier.outputs, converted.get_sinks(), converted.get_parameters(),
                     "text_classifier")
    fused.inputs[0].get_tensor().set_names({"text"})
    return fused


def fuse_into(xml: Path, tokenizer, length: int, pad_id: int, texts) -> dict:
    """Rewrite the IR ``xml`` (+ .bin) with the checked tokenizer in front: its input becomes
    one string, its output stays ``logits``.

    Returns:
        The sidecar's ``tokenizer_fusion`` record.
    """
    import openvino as ov

    converted = convert(tokenizer, length, pad_id)
    checked = check_ids(converted, tokenizer, texts, length, pad_id)
    fused = _join(converted, ov.Core().read_model(str(xml)), length)
    tmp = xml.with_name(".fused.xml")
    ov.save_model(fused, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    tmp.replace(xml)
    log.info("fused the tokenizer into %s (ids checked on %d texts)", xml.name, checked)
    return {"by": f"openvino-tokenizers {extension_version()}", "input": "text",
            "input_shape": [1], "ids_checked_on_texts": checked, "device": "CPU"}
