"""edgessl's small-image ViTs: patch size rule, token counts, shapes, errors and ONNX export."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from edgessl.backbones import BACKBONES, BackboneSpec, create_backbone, small
from edgessl.backbones.small import vit_patch_size
from edgessl.errors import ConfigError

VITS = ("vit_tiny", "vit_small", "vit_base")


@pytest.fixture
def shallow_vits(monkeypatch):
    """vit_tiny/small/base with 2 blocks (same code path, a fraction of the CPU time)."""
    for name, (width, _depth, heads) in list(small.VIT_SIZES.items()):
        monkeypatch.setitem(small.VIT_SIZES, name, (width, 2, heads))


@pytest.mark.parametrize(("image_size", "patch"), [
    (16, 2), (32, 4), (40, 5), (64, 8), (96, 12), (120, 15), (128, 16), (224, 16), (256, 16)])
def test_patch_size_rule(image_size, patch):
    assert vit_patch_size(image_size) == patch


@pytest.mark.parametrize(("image_size", "match"), [
    (8, "at least 16 px"), (15, "at least 16 px"), (17, "--image-size 16 or 18"),
    (100, "--image-size 96 or 104"), (108, "--image-size 104 or 112"),
    (200, "--image-size 192 or 208")])
def test_unusable_sizes_say_what_to_pass(image_size, match):
    with pytest.raises(ConfigError, match=match):
        vit_patch_size(image_size)
    with pytest.raises(ConfigError, match=match):
        create_backbone(BackboneSpec.for_images("vit_tiny", image_size))
    for suggested in re.findall(r"\d+", match):  # the sizes it suggests work
        vit_patch_size(int(suggested))


def test_names_do_not_shadow_timm_models():
    import timm

    for name in VITS:
        assert name in BACKBONES and not timm.is_model(name)


def test_unknown_name_suggests_the_vit():
    with pytest.raises(ConfigError, match="Did you mean 'vit_tiny'"):
        create_backbone(BackboneSpec.for_images("vit_tinny", 32))


@pytest.mark.parametrize("image_size", [16, 32, 64])
def test_token_count_and_forward_shape(image_size, shallow_vits):
    backbone = create_backbone(BackboneSpec.for_images("vit_tiny", image_size)).eval()
    model = backbone.model
    assert model.patch_embed.num_patches == 64  # an 8x8 grid below 128 px
    # The small-image stem must not touch the patch embedding (stride stays the patch).
    assert model.patch_embed.proj.stride == (image_size // 8,) * 2
    with torch.no_grad():
        assert backbone(torch.zeros(2, 3, image_size, image_size)).shape == (2, 192)
        # dynamic_img_size: DINO's half-size local crops pass too.
        half = image_size // 2
        assert backbone(torch.zeros(2, 3, half, half)).shape == (2, 192)


def test_token_count_at_imagenet_size_and_widths(shallow_vits):
    for name, width in zip(VITS, (192, 384, 768), strict=True):
        model = BACKBONES.get(name)(image_size=224)
        assert model.patch_embed.num_patches == 196 and model.num_features == width


def test_full_depth_is_twelve_blocks():
    assert len(BACKBONES.get("vit_tiny")(image_size=16).blocks) == 12


def test_factories_work_without_image_size(shallow_vits):
    assert BACKBONES.get("resnet_micro")().num_features == 64
    assert BACKBONES.get("vit_tiny32")().patch_embed.img_size == (32, 32)
    assert BACKBONES.get("vit_tiny")().patch_embed.img_size == (32, 32)  # default 32 px


def test_onnx_export_matches_pytorch(shallow_vits):
    import onnxruntime as ort

    from edgessl.export.onnx_format import torch_to_onnx

    torch.manual_seed(0)
    backbone = create_backbone(BackboneSpec.for_images("vit_tiny", 16)).eval()
    proto = torch_to_onnx(backbone, 16, "embedding")
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected = backbone(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
