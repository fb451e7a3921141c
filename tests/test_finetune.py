"""Fine-tune stage: linear probe and full fine-tune, metrics, baseline, backbone sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgessl.backbone_source import resolve_backbone
from edgessl.checkpoint import METRICS_FILE
from edgessl.data.labeled import load_labeled
from edgessl.errors import CheckpointError, ConfigError, DataError
from edgessl.finetune.baseline import pixel_logistic_regression
from edgessl.finetune.evaluate import classification_metrics, predict_logits
from edgessl.finetune.train import FinetuneConfig, finetune
from edgessl.models import load_model


def test_metrics_by_hand():
    m = classification_metrics(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), ("a", "b", "c"))
    assert m["top1"] == 0.75
    assert m["per_class_accuracy"] == {"a": 1.0, "b": 1.0, "c": 0.5}
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


@pytest.mark.parametrize("mode", ["linear", "full"])
def test_finetune_trains_and_evaluates(mode, digits_dir, tmp_path):
    out = tmp_path / mode
    result = finetune(FinetuneConfig(
        data=str(digits_dir), backbone="scratch:resnet_micro", image_size=16, mode=mode,
        labels_per_class=10, epochs=30 if mode == "full" else None, hflip=0.0, out=str(out)))
    saved = json.loads((out / METRICS_FILE).read_text())
    assert saved["top1"] == result.metrics["top1"]
    assert np.array(saved["confusion_matrix"]).sum() == 359
    assert result.metrics["top1"] > 0.3  # far above chance (0.1) after training
    model, card = load_model(out)
    assert card.kind == "classifier" and card.training["train_images"] == 100
    assert card.training["mode"] == mode
    data = load_labeled(digits_dir)
    logits = predict_logits(model, [p for p, _ in data.val], 16, card.mean, card.std)
    top1 = float((logits.argmax(1) == np.array([y for _, y in data.val])).mean())
    assert top1 == pytest.approx(result.metrics["top1"])


def test_linear_probe_keeps_backbone_frozen(digits_dir, tmp_path):
    torch.manual_seed(0)
    finetune(FinetuneConfig(data=str(digits_dir), backbone="scratch:resnet_micro",
                            image_size=16, mode="full", epochs=1, labels_per_class=2,
                            out=str(tmp_path / "base")))
    base, _ = load_model(tmp_path / "base")
    finetune(FinetuneConfig(data=str(digits_dir), backbone=str(tmp_path / "base"),
                            mode="linear", labels_per_class=5, out=str(tmp_path / "probe")))
    probe, card = load_model(tmp_path / "probe")
    assert card.training["mode"] == "linear"
    for (name, a), b in zip(base.backbone.state_dict().items(),
                            probe.backbone.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_pixel_baseline_is_real(digits_dir):
    data = load_labeled(digits_dir)
    assert pixel_logistic_regression(data, 10, 0, 16) > 0.8
    assert pixel_logistic_regression(data, 1, 0, 16) < pixel_logistic_regression(data, None, 0, 16)


@pytest.mark.parametrize(
    "backbone, error, message",
    [
        ("resnet19", ConfigError, "Did you mean"),
        ("/no/such/checkpoint", CheckpointError, "not an edgessl checkpoint"),
    ],
)
def test_bad_backbones(backbone, error, message):
    with pytest.raises(error, match=message):
        resolve_backbone(backbone, 16, "resnet_micro")


def test_timm_weights_offline_is_a_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # the hub reads the variable when first imported; set it where it is looked up too
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match="scratch:resnet18"):
        resolve_backbone("timm:resnet18", 32, "resnet_micro")


def test_k_larger_than_class(digits_dir, tmp_path):
    with pytest.raises(DataError, match="larger than class"):
        finetune(FinetuneConfig(data=str(digits_dir), backbone="scratch:resnet_micro",
                                image_size=16, labels_per_class=500, out=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()


def test_linear_probe_takes_no_epochs(digits_dir, tmp_path):
    with pytest.raises(ConfigError, match="--mode full"):
        finetune(FinetuneConfig(data=str(digits_dir), backbone="scratch:resnet_micro",
                                image_size=16, mode="linear", epochs=5, out=str(tmp_path / "x")))


def test_linear_probe_is_logistic_regression_on_standardised_features(digits_dir, tmp_path):
    """The folded head gives the same predictions as scikit-learn on the same features."""
    from sklearn.linear_model import LogisticRegression

    torch.manual_seed(1)
    result = finetune(FinetuneConfig(data=str(digits_dir), backbone="scratch:resnet_micro",
                                     image_size=16, mode="linear", labels_per_class=5,
                                     out=str(tmp_path / "p")))
    model, card = load_model(result.path)
    data = load_labeled(digits_dir)
    from edgessl.data.labeled import labels_per_class

    train = labels_per_class(data.train, 5, 0, data.classes)
    with torch.inference_mode():
        def features(samples):
            x = predict_logits(model.backbone, [p for p, _ in samples], 16, card.mean, card.std)
            return x, np.array([y for _, y in samples])

        x_train, y_train = features(train)
        x_val, _ = features(data.val)
    mu, sigma = x_train.mean(0), x_train.std(0)
    sigma = np.maximum(sigma, 1e-2 * sigma.mean() + 1e-8)  # the probe's floor on the scale
    c = card.training["probe_c"]  # chosen by cross-validation on the 50 labeled images
    assert card.training["probe_c_chosen_by"] == "cross-validation"
    clf = LogisticRegression(C=c, max_iter=5000).fit((x_train - mu) / sigma, y_train)
    expected = clf.predict((x_val - mu) / sigma)
    got = predict_logits(model, [p for p, _ in data.val], 16, card.mean, card.std).argmax(1)
    assert (got == expected).mean() > 0.99


def test_unknown_mode(digits_dir, tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'linear'"):
        finetune(FinetuneConfig(data=str(digits_dir), backbone="scratch:resnet_micro",
                                image_size=16, mode="linaer", out=str(tmp_path / "x")))


def test_scratch_init_is_seeded(digits_dir, tmp_path):
    cfg = dict(data=str(digits_dir), backbone="scratch:resnet_micro", image_size=16,
               mode="full", epochs=1, labels_per_class=2)
    a = finetune(FinetuneConfig(out=str(tmp_path / "a"), **cfg))
    torch.rand(100)  # whatever ran before must not change the result
    b = finetune(FinetuneConfig(out=str(tmp_path / "b"), **cfg))
    assert a.metrics["confusion_matrix"] == b.metrics["confusion_matrix"]


def test_linear_probe_folding_stays_well_conditioned(monkeypatch, digits_dir, tmp_path):
    """A nearly constant feature must not turn into a huge folded weight and bias: exported
    models compute in bf16/fp16/int8, where such a cancellation loses whole points."""
    from edgessl.finetune import train

    real = train._features

    def with_constant_feature(backbone, dataset, normalize):
        feats = real(backbone, dataset, normalize)
        feats[:, 0] = 100.0 + 1e-5 * torch.randn(len(feats))
        return feats

    monkeypatch.setattr(train, "_features", with_constant_feature)
    result = finetune(FinetuneConfig(data=str(digits_dir), backbone="scratch:resnet_micro",
                                     image_size=16, mode="linear", labels_per_class=5,
                                     out=str(tmp_path / "p")))
    model, _ = load_model(result.path)
    # unfloored, the noise column would be scaled by 1 / 1e-5 and fed ~1e4-1e5 weights
    assert model.head.weight[:, 0].abs().max() < 100


def test_openvino_int8_float_layers_compute_in_f32_on_cpu():
    from edgessl.artifact import ArtifactMeta
    from edgessl.backends.openvino_rt import compile_config

    for precision in ("fp32", "fp16", "int8"):
        meta = ArtifactMeta(labels=("a", "b"), image_size=8, mean=(0, 0, 0), std=(1, 1, 1),
                            precision=precision)
        assert compile_config(meta, "CPU")["INFERENCE_PRECISION_HINT"] == "f32"


def test_vit_tiny32_keeps_its_patches_under_the_small_image_stem():
    from edgessl.backbones import BackboneSpec, create_backbone

    spec = BackboneSpec.for_images("vit_tiny32", 32)
    assert not spec.small_stem  # built for 32 px: no small_stem parameter, never asked
    backbone = create_backbone(BackboneSpec("vit_tiny32", 32, small_stem=True))  # an old card
    assert backbone.spec.small_stem is False  # ... and the built spec says what was built
    assert backbone.model.patch_embed.proj.stride == (4, 4)
    with torch.no_grad():
        assert backbone(torch.zeros(2, 3, 32, 32)).shape == (2, 192)
