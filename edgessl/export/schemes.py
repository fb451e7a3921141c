"""INT8 quantization settings and the ISA-aware choice of a scheme that is safe on the target CPU.

Why the CPU matters: on x86 CPUs with AVX2 or AVX-512 but without VNNI, ONNX Runtime's U8S8
kernels (and OpenVINO's int8 kernels) multiply uint8 activations by int8 weights with
``vpmaddubsw``, which adds each *pair* of products in a signed 16-bit register. Two products of
255 x 127 sum to 64,770 > 32,767, so the sum saturates and the layer's output is wrong; on
large-range layers that costs points of top-1. VNNI (``vpdpbusd``) and AMX accumulate in 32 bits
and never saturate. Weights limited to 7 bits (|w| ≤ 63) keep each pair below 2^15: ONNX Runtime
calls this ``reduce_range``, NNCF/OpenVINO ``overflow_fix``. The "auto" scheme uses full 8-bit
weights where the CPU has VNNI (most accurate, fastest) and 7-bit weights where it has not.

The saturation is an x86 property: Arm int8 kernels (``sdot``/``udot`` with dotprod, widening
multiplies without it) accumulate in 32 bits, so Arm targets get full 8-bit weights. The CPU is
the one the artifact will run on: this host for ``edgessl export`` (``--target-isa host``), the
device profile's ``arch`` and ``isa`` for ``edgessl deploy`` (``CpuTarget``); an x86 or unknown
target that does not state its ISA gets 7-bit weights, which are safe on every CPU.
"""

from __future__ import annotations

import logging
import platform
import re
from dataclasses import dataclass
from typing import Annotated

from edgessl.config import FieldError, Range, check_fields
from edgessl.errors import ConfigError, printable, unknown_choice

log = logging.getLogger("edgessl")

# ONNX Runtime quantize_static schemes: activation type, weight type, 7-bit weights.
ORT_SCHEMES = {
    "u8s8": {"activation_type": "QUInt8", "weight_type": "QInt8", "reduce_range": False},
    "u8s8-w7": {"activation_type": "QUInt8", "weight_type": "QInt8", "reduce_range": True},
    "s8s8": {"activation_type": "QInt8", "weight_type": "QInt8", "reduce_range": False},
    "u8u8": {"activation_type": "QUInt8", "weight_type": "QUInt8", "reduce_range": False},
}
# NNCF (OpenVINO, and ONNX under --max-drop) schemes: which layers get 7-bit weights.
NNCF_SCHEMES = {"w8": "disable", "w7-first": "first_layer_only", "w7": "enable"}
# PyTorch PT2E with ExecuTorch's XNNPACK quantizer: signed 8-bit, symmetric weights.
PT2E_SCHEMES = ("s8",)
CALIB_METHODS = ("minmax", "entropy", "percentile")
PRESETS = ("performance", "mixed")
MODEL_TYPES = ("auto", "cnn", "transformer")
# What --target-isa stands for, as CPU flags (edgessl.devices.host.KNOWN_FLAGS names).
TARGET_ISAS = {"host": None, "vnni": ("avx2", "avx512f", "avx512_vnni"), "avx2": ("avx2",)}
FAST_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
SATURATING_FLAGS = ("avx2", "avx512f")


@dataclass(frozen=True)
class CpuTarget:
    """The CPU an INT8 artifact will run on, as the scheme choice sees it.

    Attributes:
        name: how messages name it ("this CPU", "target 'vnni'", "profile 'raspberry-pi-5'").
        family: "x86", "arm", or "" when not known.
        flags: its ISA flags (edgessl.devices.host.KNOWN_FLAGS names); None = not stated.
    """

    name: str
    family: str = ""
    flags: tuple[str, ...] | None = None


@dataclass(frozen=True)
class QuantizeConfig:
    """INT8 knobs (defaults are the safe, accurate choice).

    Attributes:
        scheme: "auto" (chosen for ``target_isa``), or one of ORT_SCHEMES (ONNX Runtime) /
            NNCF_SCHEMES (OpenVINO, and ONNX under ``max_drop``).
        target_isa: the CPU the artifact will run on: "host" (this one), "vnni", "avx2".
        target: the target CPU itself, as a device profile describes it (``edgessl deploy``
            passes its profile's); None = ``target_isa``. Give one of the two.
        per_channel: one weight scale per output channel (else per tensor).
        calib_method: ONNX Runtime range estimation: minmax, entropy, percentile; None = minmax.
        preset: NNCF preset, performance (symmetric) or mixed; None = NNCF's per model type.
        bias_correction: NNCF fast bias correction; None = on. ONNX Runtime has none.
        model_type: "auto" (transformer when the backbone has attention), "cnn", "transformer".
        ignored: regular expressions of layer (node) names to keep in floating point.
        max_drop: accuracy-aware mode: largest top-1 loss allowed against fp32 (0.01 = 1
            point) on the labeled validation data; None = plain post-training quantization.
    """

    FIELD_LABEL = "--"  # messages name fields as the flags of edgessl export

    scheme: str = "auto"
    target_isa: str = "host"
    target: CpuTarget | None = None
    per_channel: bool = True
    calib_method: str | None = None
    preset: str | None = None
    bias_correction: bool | None = None
    model_type: str = "auto"
    ignored: tuple[str, ...] = ()
    max_drop: Annotated[float | None, Range(gt=-1, lt=1, note="a fraction of top-1: 0.01 = "
                                                              "1 point")] = None

    def __post_init__(self) -> None:
        check_fields(self)
        for pattern in self.ignored:
            try:
                re.compile(pattern)
            except (re.error, RecursionError, OverflowError) as exc:
                raise FieldError("ignored", f"takes regular expressions of layer names; "
                                            f"'{printable(pattern)}' is not one ({exc}); escape "
                                            "special characters such as [ ( . * with \\",
                                 "--ignore") from None


@dataclass(frozen=True)
class SchemeChoice:
    """The scheme used and why (for the report and the artifact's metadata)."""

    name: str
    reason: str
    target: str = ""

    def entries(self) -> dict:
        """What the artifact's metadata and report record about the choice."""
        return {"scheme": self.name, "scheme_reason": self.reason, "scheme_target": self.target}


def check_quantize_config(quant: QuantizeConfig, quantizer: str) -> None:
    """Reject unknown names and knobs that the chosen quantizer ("ort"/"nncf"/"pt2e") does not
    have."""
    if quant.target_isa not in TARGET_ISAS:
        raise unknown_choice("--target-isa", quant.target_isa, TARGET_ISAS)
    if quant.target is not None and quant.target_isa != "host":
        raise ConfigError(f"--target-isa {quant.target_isa} and the device profile's CPU "
                          f"({quant.target.name}) both name the target; give one of them")
    if quantizer == "pt2e":
        _check_pt2e(quant)
        return
    if quant.model_type not in MODEL_TYPES:
        raise unknown_choice("--model-type", quant.model_type, MODEL_TYPES)
    schemes = ORT_SCHEMES if quantizer == "ort" else NNCF_SCHEMES
    if quant.scheme != "auto" and quant.scheme not in schemes:
        raise unknown_choice(f"{_quantizer_name(quantizer)} scheme", quant.scheme,
                             ["auto", *schemes])
    if quantizer == "ort":
        if quant.calib_method is not None and quant.calib_method not in CALIB_METHODS:
            raise unknown_choice("--calib-method", quant.calib_method, CALIB_METHODS)
        for flag, value in (("--preset", quant.preset),
                            ("--bias-correction", quant.bias_correction)):
            if value is not None:
                raise ConfigError(f"{flag} is an NNCF option; ONNX int8 uses ONNX Runtime "
                                  "(NNCF only with --max-drop) — use --format openvino or drop it")
    else:
        if quant.calib_method is not None:
            raise ConfigError("--calib-method is an ONNX Runtime option; NNCF (OpenVINO, or "
                              "ONNX with --max-drop) estimates ranges itself — drop it")
        if quant.preset is not None and quant.preset not in PRESETS:
            raise unknown_choice("--preset", quant.preset, PRESETS)


def _check_pt2e(quant: QuantizeConfig) -> None:
    """ExecuTorch int8 (PT2E, XNNPACK quantizer): what it has of the INT8 knobs."""
    if quant.scheme != "auto" and quant.scheme not in PT2E_SCHEMES:
        raise unknown_choice("ExecuTorch (PT2E) scheme", quant.scheme, ["auto", *PT2E_SCHEMES])
    for flag, value in (("--calib-method", quant.calib_method), ("--preset", quant.preset),
                        ("--bias-correction", quant.bias_correction),
                        ("--max-drop", quant.max_drop)):
        if value is not None:
            raise ConfigError(f"{flag} is not an option of ExecuTorch int8 (PT2E with the "
                              "XNNPACK quantizer); use --format onnx or openvino for it, or "
                              "drop it")
    if quant.ignored:
        raise ConfigError("--ignore is not supported by ExecuTorch int8 (PT2E); use --format "
                          "onnx or openvino to keep layers in float")
    if quant.model_type not in MODEL_TYPES:
        raise unknown_choice("--model-type", quant.model_type, MODEL_TYPES)


def _quantizer_name(quantizer: str) -> str:
    return "ONNX Runtime" if quantizer == "ort" else "NNCF"


def host_flags() -> tuple[str, ...]:
    """This host's ISA flags (edgessl.devices.host)."""
    from edgessl.devices.host import cpu_info

    return cpu_info().flags


def cpu_target(quant: QuantizeConfig) -> CpuTarget:
    """The CPU ``quant`` quantizes for: its ``target``, else what ``target_isa`` names."""
    from edgessl.devices.host import arch_family

    if quant.target is not None:
        return quant.target
    if quant.target_isa == "host":
        return CpuTarget("this CPU", arch_family(platform.machine()), host_flags())
    return CpuTarget(f"target '{quant.target_isa}'", "x86", TARGET_ISAS[quant.target_isa])


def choose_scheme(quantizer: str, quant: QuantizeConfig,
                  flags: tuple[str, ...] | None = None) -> SchemeChoice:
    """The scheme to quantize with, and a one-line reason naming the CPU it was chosen for.

    Args:
        quantizer: "ort" (ONNX Runtime quantize_static) or "nncf".
        quant: the settings; an explicit ``scheme`` is used as given.
        flags: the target CPU's ISA flags; None = from ``quant`` (``cpu_target``).
    """
    if quant.scheme != "auto":
        return SchemeChoice(quant.scheme, "chosen with --scheme")
    if quantizer == "pt2e":  # one scheme, whatever the CPU
        return SchemeChoice("s8", "XNNPACK's int8 kernels accumulate in 32 bits on every CPU "
                                  "it supports, so full 8-bit weights are safe", "any CPU")
    if flags is None:
        target = cpu_target(quant)
    else:
        from edgessl.devices.host import flag_family

        families = {flag_family(f) for f in flags} - {""}
        target = CpuTarget("the given CPU", families.pop() if len(families) == 1 else "",
                           tuple(flags))
    choice = _choose(quantizer, target)
    log.info("int8 scheme %s: %s", choice.name, choice.reason)  # the reason names the CPU
    return choice


def _choose(quantizer: str, target: CpuTarget) -> SchemeChoice:
    where, flags = target.name, target.flags
    full, reduced = ("u8s8", "u8s8-w7") if quantizer == "ort" else ("w8", "w7")
    fast = [f for f in flags or () if f in FAST_INT8_FLAGS]
    if fast:
        return SchemeChoice(full, f"{where} has {fast[0]}: int8 products accumulate in 32 bits "
                                  "and cannot saturate, so full 8-bit weights are safe", where)
    if target.family == "arm":
        stated = f" ({', '.join(flags)})" if flags else ""
        return SchemeChoice(full, f"{where}: an Arm CPU{stated}, whose int8 kernels (sdot/udot "
                                  "with dotprod) accumulate in 32 bits and cannot saturate, so "
                                  "full 8-bit weights are safe", where)
    saturating = [f for f in flags or () if f in SATURATING_FLAGS]
    if saturating:
        return SchemeChoice(reduced, f"{where} has {saturating[-1]} but no VNNI: its int8 kernel "
                                     "adds pairs of u8*s8 products in 16 bits, which saturates "
                                     "with 8-bit weights; 7-bit weights cannot", where)
    if flags is None:
        cpu = "an x86 CPU" if target.family == "x86" else "a CPU of unknown architecture"
        return SchemeChoice(reduced, f"{where}: {cpu} whose ISA is not stated (add it to the "
                                     "profile, e.g. isa = [\"avx2\", \"avx512_vnni\"]), so "
                                     "7-bit weights, which are safe on every CPU", where)
    return SchemeChoice(full, f"{where} reports no AVX2/AVX-512 int8 kernel that saturates "
                              f"(flags: {', '.join(flags) or 'none'}); full 8-bit weights", where)


def resolve_model_type(quant: QuantizeConfig, model) -> str:
    """"cnn" or "transformer": as given, or for "auto" whether the model has attention."""
    if quant.model_type != "auto":
        return quant.model_type
    names = {type(m).__name__.lower() for m in model.modules()}
    return "transformer" if any("attention" in n for n in names) else "cnn"
