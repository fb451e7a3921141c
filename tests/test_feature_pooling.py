"""Backbones whose features are every stage pooled and joined (``edgessl.backbones.pooling``)."""

from __future__ import annotations

import json

import pytest
import torch

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.checkpoint import ModelCard
from edgessl.errors import CheckpointError, ConfigError
from edgessl.models import Classifier, load_model, save_model

LITE = "tf_efficientnet_lite0"


def _stages_backbone(size: int = 32):
    torch.manual_seed(0)
    return create_backbone(BackboneSpec(LITE, size, small_stem=False, features="stages")).eval()


def test_stage_features_end_with_the_final_layers_and_hold_each_stage():
    backbone = _stages_backbone()
    model = backbone.model
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = backbone(x)
        final = model(x)  # timm's own pooled last layer
        first_stage = model.blocks[0](model.bn1(model.conv_stem(x))).mean((2, 3))
    stage_widths = [stage[-1].conv_pwl.out_channels if hasattr(stage[-1], "conv_pwl")
                    else stage[-1].conv_pw.out_channels for stage in model.blocks]
    assert backbone.num_features == features.shape[1] == sum(stage_widths) + final.shape[1]
    torch.testing.assert_close(features[:, -final.shape[1]:], final)
    torch.testing.assert_close(features[:, :stage_widths[0]], first_stage)


def test_an_architecture_without_stages_is_refused_with_what_to_do():
    with pytest.raises(ConfigError, match="cannot give 'stages' features.*'final'"):
        create_backbone(BackboneSpec("resnet_micro", 16, small_stem=False, features="stages"))
    with pytest.raises(ConfigError, match="unknown feature pooling 'layers'"):
        create_backbone(BackboneSpec(LITE, 32, small_stem=False, features="layers"))


def test_the_card_rebuilds_the_same_features(tmp_path):
    backbone = _stages_backbone()
    model = Classifier(backbone, 3).eval()
    card = ModelCard(kind="classifier", backbone=backbone.spec.to_dict(), method="pretrained",
                     labels=("a", "b", "c"))
    path = save_model(model, card, tmp_path / "clf")
    assert json.loads((path / "card.json").read_text())["backbone"]["features"] == "stages"
    loaded, _ = load_model(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_a_card_naming_unknown_features_is_refused(tmp_path):
    backbone = _stages_backbone()
    card = ModelCard(kind="backbone", backbone=backbone.spec.to_dict(), method="pretrained")
    path = save_model(backbone, card, tmp_path / "bb")
    data = json.loads((path / "card.json").read_text())
    data["backbone"]["features"] = "pyramid"
    (path / "card.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="backbone.features.*final, stages"):
        load_model(path)


def test_a_card_from_before_features_were_recorded_means_the_final_layer(tmp_path):
    backbone = create_backbone(BackboneSpec(LITE, 32, small_stem=False)).eval()
    card = ModelCard(kind="backbone", backbone={"name": LITE, "image_size": 32,
                                                "small_stem": False}, method="scratch")
    path = save_model(backbone, card, tmp_path / "old")
    loaded, card = load_model(path)
    assert loaded.spec.features == "final" and loaded.num_features == 1280


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_stage_features_export_and_validate(tmp_path, digits_dir, fmt):
    from edgessl.export.api import ExportConfig, export_model

    backbone = _stages_backbone()
    model = Classifier(backbone, 10).eval()
    card = ModelCard(kind="classifier", backbone=backbone.spec.to_dict(), method="pretrained",
                     mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                     labels=tuple(str(i) for i in range(10)),
                     data={"path": str(digits_dir), "val_fraction": 0.2, "seed": 0})
    path = save_model(model, card, tmp_path / "clf")
    result = export_model(path, ExportConfig(format=fmt, out=str(tmp_path / fmt)))
    assert result.path.is_file()
    assert result.report["max_abs_diff"] < 1e-3, result.report
