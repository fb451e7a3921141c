"""``edgessl compare``: the starts cross-validated on the labeled images only (issue 11)."""

from __future__ import annotations

import json
import shutil

import pytest

from edgessl.compare import CompareConfig, compare, recommend
from edgessl.compare.result import ArmResult
from edgessl.compare.run import make_folds
from edgessl.errors import ConfigError, DataError


def _folder(digits_dir, tmp_path, classes=3):
    root = tmp_path / "labeled"
    for cls in sorted((digits_dir / "train").iterdir())[:classes]:
        shutil.copytree(cls, root / cls.name)
    return root


def test_folds_are_stratified_disjoint_and_seeded():
    samples = [(f"{c}-{i}", c) for c in range(3) for i in range(7)]
    folds = make_folds(samples, 3, 0, ("a", "b", "c"))
    assert sorted(s for f in folds for s in f) == sorted(samples)
    for fold in folds:
        assert {y for _, y in fold} == {0, 1, 2}
    assert make_folds(samples, 3, 0, ("a", "b", "c")) == folds
    assert make_folds(samples, 3, 1, ("a", "b", "c")) != folds
    with pytest.raises(DataError, match="fewer than --folds 8"):
        make_folds(samples, 8, 0, ("a", "b", "c"))


def _arm(name, mean, std=0.02):
    return ArmResult(name, name, name, mean, std, (mean - std, mean + std), 1.0)


def test_the_best_arm_is_recommended_unless_a_simpler_one_is_within_noise():
    name, reason = recommend([_arm("pixels", 0.40), _arm("scratch", 0.50),
                              _arm("pretrained", 0.80), _arm("pretrained_ssl", 0.805)])
    assert name == "pretrained" and "within noise" in reason  # 0.5 points: simpler wins
    name, reason = recommend([_arm("pixels", 0.40), _arm("pretrained", 0.70),
                              _arm("pretrained_ssl", 0.80)])
    assert name == "pretrained_ssl" and "10.0 points above" in reason
    name, reason = recommend([_arm("pixels", 0.60), _arm("scratch", 0.50)])
    assert name == "scratch" and "does not beat raw pixels" in reason


def test_pixels_alone_is_recommended_without_a_warning_against_itself():
    name, reason = recommend([_arm("pixels", 0.40)])
    assert name == "pixels" and "WARNING" not in reason


def test_compare_runs_every_arm_on_the_same_folds_and_reports(digits_dir, tmp_path):
    root = _folder(digits_dir, tmp_path)
    result = compare(CompareConfig(
        data=str(root), labels_per_class=6, folds=2,
        arms=("pixels", "scratch", "ssl", "pretrained"), arch="resnet_micro", image_size=16,
        pretrained_size=32, ssl_epochs=1, ssl_batch_size=32, full_epochs=2, hflip=0.0,
        out=str(tmp_path / "cmp")))
    assert [a.name for a in result.arms] == ["pixels", "scratch", "ssl", "pretrained"]
    for arm in result.arms:
        assert len(arm.top1_per_fold) == 2 and 0.0 <= arm.top1_mean <= 1.0
    assert result.labeled_images == 18
    assert "outside the compared labels" in result.ssl_pool  # the other images of the folder
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["recommended"] == result.recommended
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0
    assert "Recommended:" in (tmp_path / "cmp" / "compare.md").read_text()


def test_the_pretrained_arms_run_at_finetunes_size_unless_told(digits_dir, tmp_path,
                                                                caplog):
    """The recommended start is measured as ``finetune`` would ship it (32 px digits -> the
    start's training size, 224 px)."""
    import logging

    from edgessl.backbones.pretrained import DEFAULT_START, PRETRAINED

    side = PRETRAINED.get(DEFAULT_START).input_size

    root = _folder(digits_dir, tmp_path, classes=2)
    with caplog.at_level(logging.INFO, logger="edgessl"):
        compare(CompareConfig(data=str(root), labels_per_class=3, folds=3, arms=("pretrained",),
                              out=str(tmp_path / "cmp")))
    assert f"pretrained arms at {side} px" in caplog.text
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["settings"]["pretrained_size"] == side == 224
    assert f"{side} px" in (tmp_path / "cmp" / "compare.md").read_text()


def test_compare_refuses_bad_settings_before_any_work(digits_dir, tmp_path):
    from tests.cli_helpers import invoke, one_line_error

    labeled = _folder(digits_dir, tmp_path)
    with pytest.raises(ConfigError, match="unknown comparison arm 'pixel'"):
        CompareConfig(arms=("pixel",))
    # names the later arms use fail when the config is made, not after the first arms ran
    with pytest.raises(ConfigError, match="unknown pretrained start 'efficientnet_lite9'"):
        CompareConfig(start="efficientnet_lite9")
    with pytest.raises(ConfigError, match="unknown backbone 'resnet_tinny'"):
        CompareConfig(arch="resnet_tinny")
    with pytest.raises(ConfigError, match="unknown SSL method 'simclrr'"):
        CompareConfig(ssl_method="simclrr")
    line = one_line_error(invoke("compare", labeled, "--unlabeled",
                                 tmp_path / "nowhere", "--out", tmp_path / "c2"))
    assert "unlabeled data folder" in line and "does not exist" in line
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.txt").write_text("no images here")
    line = one_line_error(invoke("compare", labeled, "--unlabeled", tmp_path / "empty",
                                 "--out", tmp_path / "c3"))
    assert "no usable image in --unlabeled" in line and "leave --unlabeled out" in line
    assert not (tmp_path / "c3").exists()
    line = one_line_error(invoke("compare", tmp_path / "missing"))
    assert "does not exist" in line
    (tmp_path / "cmp").mkdir()
    line = one_line_error(invoke("compare", labeled, "--out", tmp_path / "cmp"))
    assert "--force" in line
    line = one_line_error(invoke("compare", "--folds", "1"))
    assert "--folds" in line
