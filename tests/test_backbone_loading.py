"""Backbones from elsewhere: SSL checkpoint layouts, timm architectures, wrapped modules, listing.

Every file is written here, in the layout of the codebase it imitates, from a real tiny
backbone; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from edgessl.backbone_source import resolve_backbone
from edgessl.backbones import BackboneSpec, create_backbone, wrap_module
from edgessl.backbones.weights import load_backbone_weights
from edgessl.errors import CheckpointError, ConfigError
from edgessl.models import Classifier

SPEC = BackboneSpec.for_images("resnet_micro", 16)
X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _backbone(seed: int, spec: BackboneSpec = SPEC):
    torch.manual_seed(seed)
    backbone = create_backbone(spec).eval()
    with torch.no_grad():  # non-trivial BN statistics, so that a lost buffer shows
        for module in backbone.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return backbone


def _pre(prefix: str, state: dict) -> dict:
    return {prefix + k: v.clone() for k, v in state.items()}


HEAD = {"head.mlp.0.weight": torch.ones(4, 64), "head.last_layer.weight": torch.ones(8, 4)}

# name -> (layout from (wanted, other) state dicts, nested key, prefix) ; "other" is a second
# network (a student, a momentum encoder) whose weights must not be the ones loaded
LAYOUTS = {
    "flat": (lambda s, o: s, None, ""),
    "lightning-module-backbone": (lambda s, o: {"state_dict": _pre("module.backbone.", s),
                                                "epoch": 3}, "state_dict", "module.backbone."),
    "deit-model-with-fc": (lambda s, o: {"model": {**s, "fc.weight": torch.ones(10, 64)}},
                           "model", ""),
    "dino": (lambda s, o: {"teacher": {**_pre("backbone.", s), **HEAD},
                           "student": {**_pre("module.backbone.", o), **_pre("module.", HEAD)},
                           "args": argparse.Namespace(arch="resnet_micro", lr=5e-4),
                           "epoch": 10}, "teacher", "backbone."),
    "dinov2-flat": (lambda s, o: {"model": {**_pre("teacher.backbone.", s),
                                            **_pre("student.backbone.", o)}},
                    "model", "teacher.backbone."),
    "encoder-state-dict": (lambda s, o: {"encoder_state_dict": s}, "encoder_state_dict", ""),
    "mae-solo-learn": (lambda s, o: {"state_dict": {**_pre("encoder.", s),
                                                    "decoder_pred.weight": torch.ones(3, 3),
                                                    "projector.0.weight": torch.ones(3, 3)}},
                       "state_dict", "encoder."),
    "simsiam": (lambda s, o: {"state_dict": {**_pre("module.encoder.", s),
                                             "module.encoder.fc.0.weight": torch.ones(2, 64),
                                             "module.predictor.0.weight": torch.ones(2, 2)}},
                "state_dict", "module.encoder."),
    "mocov2": (lambda s, o: {"state_dict": {**_pre("module.encoder_q.", s),
                                            **_pre("module.encoder_k.", o),
                                            "module.queue": torch.ones(8, 16)}},
               "state_dict", "module.encoder_q."),
    "mocov3": (lambda s, o: {"state_dict": {**_pre("module.base_encoder.", s),
                                            **_pre("module.momentum_encoder.", o)}},
               "state_dict", "module.base_encoder."),
    "ijepa": (lambda s, o: {"encoder": _pre("module.", o), "target_encoder": _pre("module.", s),
                            "predictor": {"module.x": torch.ones(1)}},
              "target_encoder", "module."),
    "edgessl-classifier": (lambda s, o: {**_pre("backbone.model.", s), "head.weight":
                                         torch.ones(10, 64), "head.bias": torch.ones(10)},
                           None, "backbone.model."),
}


def _write(path: Path, obj: dict) -> Path:
    if path.suffix == ".safetensors":
        save_file(obj, str(path))
    else:
        torch.save(obj, path)
    return path


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_ssl_checkpoint_layouts_load_the_right_weights(layout, tmp_path):
    make, nested, prefix = LAYOUTS[layout]
    wanted, other = _backbone(1), _backbone(2)
    obj = make(wanted.model.state_dict(), other.model.state_dict())
    flat = all(isinstance(v, torch.Tensor) for v in obj.values())
    for suffix in (".pth", ".safetensors") if flat else (".pth",):
        target = _backbone(3)
        report = load_backbone_weights(target, _write(tmp_path / f"w{suffix}", obj))
        assert torch.equal(target(X), wanted(X)), (layout, suffix)
        assert (report.nested_key, report.prefix) == (nested, prefix)
        assert report.matched == report.total == 65 and report.missing == ()
        assert all("head" in k or "fc" in k or "decoder" in k or "projector" in k
                   or "predictor" in k for k in report.dropped_heads)


@pytest.mark.parametrize("layout, key", [("dino", "student"), ("mocov3", "module.momentum_encoder"),
                                         ("mocov2", "module.encoder_k"), ("ijepa", "encoder")])
def test_weights_key_picks_the_other_network(layout, key, tmp_path):
    wanted, other = _backbone(1), _backbone(2)
    path = _write(tmp_path / "w.pth", LAYOUTS[layout][0](other.model.state_dict(),
                                                         wanted.model.state_dict()))
    target = _backbone(3)
    report = load_backbone_weights(target, path, key=key)
    assert torch.equal(target(X), wanted(X))
    assert key in (report.nested_key or "") + report.prefix
    with pytest.raises(CheckpointError, match="--weights-key 'studnet' is neither .* it has: "):
        load_backbone_weights(target, path, key="studnet")


def test_a_few_missing_tensors_warn_with_their_names(tmp_path, caplog):
    state = dict(_backbone(1).model.state_dict())
    del state["bn1.bias"]
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    with caplog.at_level(logging.INFO, logger="edgessl"):
        report = load_backbone_weights(_backbone(3), _write(tmp_path / "w.safetensors", state))
    assert report.missing == ("bn1.bias",) and report.matched == 64
    assert any(r.levelno == logging.WARNING and "1 missing (bn1.bias)" in r.getMessage()
               for r in caplog.records)


def test_too_few_matched_weights_are_refused(tmp_path):
    state = dict(list(_backbone(1).model.state_dict().items())[:40])
    path = _write(tmp_path / "half.pth", {"state_dict": _pre("module.", state)})
    with pytest.raises(CheckpointError, match=r"only \d+ of 65 tensors found .*missing .*"
                                              r"--weights-key") as info:
        load_backbone_weights(_backbone(3), path)
    assert "\n" not in str(info.value)
    # another architecture (resnet_tiny's names, other shapes) is refused on the shapes
    tiny = create_backbone(BackboneSpec.for_images("resnet_tiny", 16))
    path = _write(tmp_path / "tiny.pth", {"model": dict(tiny.model.state_dict())})
    with pytest.raises(CheckpointError, match=r"do not fit backbone 'resnet_micro' \(60 of 65 "
                                              "tensors have another shape; .*--arch"):
        load_backbone_weights(_backbone(3), path)


def test_one_tensor_of_another_shape_is_refused(tmp_path):
    state = dict(_backbone(1).model.state_dict())
    state["layer4.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(CheckpointError, match=r"1 of 65 tensors have another shape; "
                                              "'layer4.0.conv2.weight'"):
        load_backbone_weights(_backbone(3), _write(tmp_path / "w.safetensors", state))


class _Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_nested_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    state = _pre("module.backbone.", _backbone(1).model.state_dict())
    torch.save({"state_dict": state, "args": _Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refusing to load .*only tensors are accepted"):
        resolve_backbone("resnet_micro", 16, "resnet_tiny", weights=tmp_path / "evil.pth")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["timm:test_resnet", "resnet_micro"])
def test_an_architecture_with_weights_file(name, tmp_path):
    spec = BackboneSpec.for_images(name, 16)
    source = _backbone(1, spec)
    state = {**_pre("module.backbone.", source.model.state_dict()),
             "module.head.fc.weight": torch.ones(10, source.num_features)}
    path = _write(tmp_path / "ckpt.pth", {"teacher": state, "epoch": 1})
    got = resolve_backbone(name, 16, "resnet_tiny", weights=str(path))
    assert got.method == "weights-file" and got.source == str(path.resolve())
    assert got.backbone.spec == spec and got.report.matched == got.report.total
    assert torch.equal(got.backbone.eval()(X), source(X))


def test_a_weights_file_as_backbone_still_uses_arch(tmp_path):
    source = _backbone(1)
    path = _write(tmp_path / "w.safetensors", dict(source.model.state_dict()))
    got = resolve_backbone(str(path), 16, "resnet_micro")
    assert torch.equal(got.backbone.eval()(X), source(X))


@pytest.mark.parametrize("backbone, weights, key, message", [
    ("{model}", "w.pth", None, "is an edgessl checkpoint with weights of its own"),
    ("scratch", "w.pth", None, "means random weights, so --weights does not apply"),
    ("scratch:resnet_micro", "w.pth", None, "means random weights"),
    ("{tmp}/w.pth", "w.pth", None, "is a weights file already"),
    ("timm:test_resnet", None, "teacher", "--weights-key picks part of a weights file"),
    ("resnet_micro", None, None, "has no published weights: use 'scratch:resnet_micro'"),
    ("timm:resnet19", "w.pth", None, "Did you mean"),
])
def test_weights_where_they_cannot_apply(backbone, weights, key, message, tmp_path,
                                         tiny_classifier):
    torch.save(dict(_backbone(1).model.state_dict()), tmp_path / "w.pth")
    backbone = backbone.format(model=tiny_classifier, tmp=tmp_path)
    with pytest.raises(ConfigError, match=message):
        resolve_backbone(backbone, 16, "resnet_micro",
                         weights=tmp_path / weights if weights else None, weights_key=key)


def test_offline_hub_error_names_the_cache_in_use(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(CheckpointError, match="could not get .*") as info:
        resolve_backbone("timm:test_resnet", 16, "resnet_micro")
    message = str(info.value)
    assert str(tmp_path / "hub") in message and "--weights FILE" in message
    assert "scratch:test_resnet" in message and "\n" not in message


def test_wrap_module_makes_any_module_a_backbone():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                              torch.nn.ReLU(), torch.nn.Conv2d(8, 12, 3, stride=2))
    backbone = wrap_module(net, 16)
    assert backbone.num_features == 12 and backbone.spec.name == "custom" and net.training
    model = Classifier(backbone, 5)
    logits = model(torch.randn(4, 3, 16, 16))
    assert logits.shape == (4, 5)
    logits.sum().backward()
    assert net[0].weight.grad is not None
    with pytest.raises(ConfigError, match="num_features is 7 but the module returns 12"):
        wrap_module(net, 16, num_features=7)
    tokens = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.Flatten(2))
    with pytest.raises(ConfigError, match=r"returns \[2, 8, 16\]; a backbone returns"):
        wrap_module(tokens, 16)


runner = CliRunner()


def test_cli_finetune_with_timm_architecture_and_weights(tmp_path, digits_dir):
    from edgessl.cli import app

    source = _backbone(1, BackboneSpec.for_images("test_resnet", 16))
    path = _write(tmp_path / "dino.pth", {
        "teacher": _pre("backbone.", source.model.state_dict()),
        "student": _pre("module.backbone.", _backbone(2, source.spec).model.state_dict())})
    result = runner.invoke(app, ["finetune", str(digits_dir), "--backbone", "timm:test_resnet",
                                 "--weights", str(path), "--weights-key", "teacher",
                                 "--mode", "linear", "-k", "5", "--image-size", "16",
                                 "--out", str(tmp_path / "clf")])
    assert result.exit_code == 0, result.output
    assert "loaded 65/65" not in result.output  # resnet_micro's count: this is test_resnet
    assert "backbone tensors from" in result.output and "val top-1" in result.output
    card = json.loads((tmp_path / "clf" / "card.json").read_text())
    assert card["backbone"]["name"] == "test_resnet" and card["source"] == str(path.resolve())
    loaded = card["training"]["weights_load"]
    assert loaded["nested_key"] == "teacher" and loaded["matched"] == loaded["total"] > 0
    bad = runner.invoke(app, ["finetune", str(digits_dir), "--backbone", "scratch",
                              "--weights", str(path)])
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert bad.exit_code == 2 and len(lines) == 1 and "--weights does not apply" in lines[0]


def test_cli_backbones_lists_without_downloading():
    from edgessl.cli import app

    result = runner.invoke(app, ["backbones", "--image-size", "16", "--timm", "test_res*"])
    assert result.exit_code == 0, result.output
    assert "resnet_tiny" in result.output and "small-image stem" in result.output
    assert "test_resnet" in result.output and "r160_in1k" in result.output
    listed = json.loads(runner.invoke(app, ["backbones", "--json"]).output)
    micro = next(b for b in listed["edgessl"] if b["name"] == "resnet_micro")
    assert micro["num_features"] == 64 and 50_000 < micro["params"] < 150_000
    bad = runner.invoke(app, ["backbones", "--timm", "resnt18"])
    assert bad.exit_code == 2 and "no timm model matches 'resnt18'" in bad.output


def test_cli_backbones_lists_backbones_unavailable_at_a_size_instead_of_failing():
    from edgessl.cli import app

    result = runner.invoke(app, ["backbones", "--image-size", "8"])
    assert result.exit_code == 0, result.output
    assert "resnet_tiny_s2" in result.output
    for name in ("vit_tiny", "vit_small", "vit_base", "vit_tiny32"):
        line = next(x for x in result.output.splitlines() if x.split()[:1] == [name])
        assert "not available at 8 px" in line, line
    listed = json.loads(runner.invoke(app, ["backbones", "--image-size", "100", "--json"]).output)
    by_name = {b["name"]: b for b in listed["edgessl"]}
    assert by_name["resnet_micro"]["available"] and not by_name["vit_tiny"]["available"]
    assert "96 or 104" in by_name["vit_tiny"]["note"] and by_name["vit_tiny"]["params"] is None
