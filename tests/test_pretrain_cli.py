"""``edgessl pretrain`` in-process: TOML recipes, --aug/--opt overrides, kNN output, errors."""

from __future__ import annotations

import pytest
from cli_helpers import flat_digits, invoke, one_line_error

from edgessl.checkpoint import read_card

RECIPE = """
method = "simclr"
backbone = "resnet_micro"
image_size = 16
epochs = 1
batch_size = 16
device = "cpu"

[augment]
blur_p = 0.0
crop_scale = [0.5, 1.0]

[method_options]
temperature = 0.3
proj_dim = 32
"""
TINY = ["--backbone", "resnet_micro", "--image-size", "16", "--epochs", "1",
        "--batch-size", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def small_folder(digits_dir, tmp_path_factory):
    """32 unlabeled digits at 16 px in one flat folder (2 steps of 16)."""
    return flat_digits(digits_dir, tmp_path_factory.mktemp("cli") / "images", 32)


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE)
    return path


def test_recipe_tables_and_flags_that_override_them(small_folder, recipe, tmp_path):
    result = invoke("--quiet", "pretrain", small_folder, "--config", recipe, "--epochs", "2",
                    "--aug", "blur_p=0.25", "--opt", "temperature=0.4", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert "final loss" in result.output
    card = read_card(tmp_path / "o")
    assert card.method == "simclr" and card.backbone["name"] == "resnet_micro"
    assert card.training["batch_size"] == 16  # from the recipe
    assert card.training["epochs"] == 2  # the flag wins over the recipe's 1
    augment, options = card.training["augment"], card.training["method_options"]
    assert augment["crop_scale"] == [0.5, 1.0]  # [augment] of the recipe
    assert augment["blur_p"] == 0.25  # --aug wins over [augment], per key
    assert augment["hflip"] == 0.5  # the rest of SimCLR's preset is kept
    assert options["proj_dim"] == 32  # [method_options] of the recipe
    assert options["temperature"] == 0.4  # --opt wins over [method_options], per key


@pytest.mark.parametrize("args, recipe_text, expected", [
    ([], "epocs = 3\n", "unknown key 'epocs'. Valid keys:"),
    ([], "[augment]\nblurr_p = 0\n", "unknown key 'blurr_p'"),
    (["--aug", "blurr_p=0"], None, "augment (--aug / [augment]): unknown key 'blurr_p'"),
    (["--opt", "temprature=0.1"], None, "simclr options (--opt / [method_options]): unknown key "
                                      "'temprature'"),
    (["--aug", "blur_p"], None, "--aug expects KEY=VALUE, got 'blur_p'"),
    (["--opt", "=0.1"], None, "--opt expects KEY=VALUE"),
    (["--config", "{tmp}/missing.toml"], None, "missing.toml' does not exist"),
    (["--method", "mae"], None, "mae needs a ViT backbone, not 'resnet_micro'; pass "
                                "--backbone vit_tiny"),
])
def test_errors_are_one_line_exit_2(args, recipe_text, expected, small_folder, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    if recipe_text is not None:
        (tmp_path / "r.toml").write_text(recipe_text)
        args += ["--config", tmp_path / "r.toml"]
    line = one_line_error(invoke("pretrain", small_folder, *TINY, *args,
                                 "--out", tmp_path / "o"))
    assert expected in line


def test_eval_data_prints_knn_top1(small_folder, digits_dir, tmp_path):
    result = invoke("--quiet", "pretrain", small_folder, *TINY, "--eval-data", digits_dir,
                    "--knn-k", "5", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert "kNN top-1" in result.output
    knn = read_card(tmp_path / "o").training["knn_top1"]
    assert f"kNN top-1 {knn:.1f}%" in result.output
