"""Pretraining that cannot silently go wrong (issue 12): resume with other settings, too
little data or batch, non-finite losses and metrics, the small-image stem on a user's network,
and image sizes a backbone cannot take."""

from __future__ import annotations

import json
import logging
import math
import os
import signal

import pytest
import torch
from cli_helpers import flat_digits, invoke, one_line_error

from edgessl.backbones import BACKBONES, BackboneSpec, create_backbone, wrap_module
from edgessl.checkpoint import TRAIN_STATE_FILE, read_card
from edgessl.errors import CheckpointError, ConfigError, DataError
from edgessl.models import load_model
from edgessl.ssl import METHODS
from edgessl.ssl.augment import AugmentConfig
from edgessl.ssl.history import history_files
from edgessl.ssl.monitor import warn_if_collapsed
from edgessl.ssl.preflight import require_image_size, smallest_image_size
from edgessl.ssl.pretrain import PretrainConfig, pretrain
from edgessl.ssl.simclr import SimCLR

TINY = dict(backbone="resnet_micro", image_size=16, epochs=2, batch_size=16, device="cpu",
            augment=AugmentConfig(hflip=0.0, blur_p=0.0))
FLAGS = ["--backbone", "resnet_micro", "--image-size", "16", "--epochs", "2", "--batch-size",
         "16", "--device", "cpu"]


def cli(*args):
    return invoke("--quiet", "pretrain", *args)


@pytest.fixture(autouse=True, scope="module")
def _no_progress_bars():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGESSL_PROGRESS", "0")
        yield


@pytest.fixture(scope="module")
def images(digits_dir, tmp_path_factory):
    return flat_digits(digits_dir, tmp_path_factory.mktemp("guards") / "images", 32)


@pytest.fixture(scope="module")
def stopped_run(images, tmp_path_factory):
    """A run of 2 epochs stopped by SIGINT after its first step (it has train_state.pt)."""
    out = tmp_path_factory.mktemp("guards") / "run"
    after_step = SimCLR.after_step

    def stop(self, progress):
        os.kill(os.getpid(), signal.SIGINT)

    SimCLR.after_step = stop
    try:
        result = cli( images, *FLAGS, "--out", out)
    finally:
        SimCLR.after_step = after_step
    assert result.exit_code == 130, result.output
    assert (out / TRAIN_STATE_FILE).is_file()
    return out


# --- 1. --resume with other settings -------------------------------------------------------


@pytest.mark.parametrize("change, named", [
    (["--batch-size", "8"], "--batch-size was 16, now 8"),
    (["--lr", "0.1"], "--lr was"),
    (["--seed", "3"], "--seed was 0, now 3"),
    (["--epochs", "3"], "--epochs was 2, now 3"),
    (["--method", "byol"], "--method was \"simclr\", now \"byol\""),
    (["--image-size", "24"], "--image-size was 16, now 24"),
    (["--backbone", "resnet_tiny"], "--backbone was \"resnet_micro\", now \"resnet_tiny\""),
    (["--aug", "blur_p=0.1"], "--aug blur_p was"),
    (["--opt", "temperature=0.3"], "--opt temperature was"),
    (["--weight-decay", "0.01"], "--weight-decay was 0.0001, now 0.01"),
    (["--grad-clip", "1"], "--grad-clip was 0.0, now 1.0"),
    (["--warmup-epochs", "0"], "--warmup-epochs was 2, now 0"),
    (["--optimizer", "adamw"], "--optimizer was \"sgd\", now \"adamw\""),
])
def test_resume_with_another_setting_is_refused(stopped_run, images, change, named):
    before = (stopped_run / "card.json").read_bytes()
    line = one_line_error(cli( images, *FLAGS, *change, "--out", stopped_run,
                                 "--resume"))
    assert "cannot resume" in line and named in line, line
    assert "--force" in line
    assert (stopped_run / "card.json").read_bytes() == before  # nothing was touched


def test_resume_on_another_data_folder_is_refused(stopped_run, digits_dir, tmp_path):
    other = flat_digits(digits_dir, tmp_path / "other", 24)
    line = one_line_error(cli( other, *FLAGS, "--out", stopped_run, "--resume"))
    assert "the data (its image files) was" in line and "the image count was 32, now 24" in line


def test_resume_may_change_how_it_runs(stopped_run, images, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(stopped_run, out)
    result = cli( images, *FLAGS, "--out", out, "--resume", "--no-channels-last",
                    "--precision", "fp32", "--eval-every", "2")
    assert result.exit_code == 0, result.output
    assert read_card(out).training["complete"] is True


# --- 2. too little data or batch, non-finite values -----------------------------------------


@pytest.mark.parametrize("method", [m for m in METHODS.names() if m != "mae"])
def test_batch_of_one_is_refused_before_training(method, images, tmp_path):
    line = one_line_error(cli( images, *FLAGS, "--batch-size", "1", "--method",
                                 method, "--out", tmp_path / "o"))
    assert "--batch-size 1 is too small" in line and "--batch-size 2 or more" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("method", ["simclr", "byol", "vicreg"])
def test_one_image_folder_is_refused_before_training(method, digits_dir, tmp_path):
    one = flat_digits(digits_dir, tmp_path / "one", 1)
    line = one_line_error(cli( one, *FLAGS, "--method", method, "--out",
                                 tmp_path / "o"))
    assert "has 1 usable image" in line and "add images" in line
    with pytest.raises(DataError, match="at least 2"):
        pretrain(PretrainConfig(data=str(one), out=str(tmp_path / "p"), **TINY))


def test_a_folder_smaller_than_the_batch_trains_on_all_of_it_and_says_so(images, tmp_path,
                                                                          caplog):
    with caplog.at_level(logging.WARNING, logger="edgessl"):
        pretrain(PretrainConfig(data=str(images), out=str(tmp_path / "o"),
                                **{**TINY, "epochs": 1, "batch_size": 64}))
    assert "only 32 images" in caplog.text
    assert read_card(tmp_path / "o").training["batch_size"] == 32


def test_non_finite_spread_is_a_collapse_and_history_is_strict_json(caplog):
    with caplog.at_level(logging.WARNING, logger="edgessl"):
        assert warn_if_collapsed(float("nan"), 3) is True
        assert warn_if_collapsed(float("inf"), 3) is True
    assert "COLLAPSE WARNING at epoch 3" in caplog.text
    assert warn_if_collapsed(1.0, 1) is False
    rows = [{"epoch": 1, "loss": 1.0, "lr": 0.1, "knn_top1": None,
             "embedding_spread": float("nan"), "collapsed": True}]
    files = history_files(rows, "t")
    text = files["history.json"].decode()
    assert "NaN" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c))[0]["embedding_spread"] is None
    assert "nan" not in files["history.csv"].decode()


def test_a_loss_that_becomes_nan_stops_with_one_line_and_keeps_the_checkpoint(
        images, tmp_path, monkeypatch):
    out = tmp_path / "o"
    calls = {"n": 0}
    forward = SimCLR.forward

    def nan_in_epoch_2(self, views):  # 2 steps an epoch: the 3rd is epoch 2's first
        calls["n"] += 1
        loss, features = forward(self, views)
        return (loss * float("nan") if calls["n"] >= 3 else loss), features

    monkeypatch.setattr(SimCLR, "forward", nan_in_epoch_2)
    with pytest.raises(ConfigError) as err:
        pretrain(PretrainConfig(data=str(images), out=str(out), **TINY))
    message = str(err.value)
    assert "loss became nan at epoch 2, step 3" in message and "\n" not in message
    assert "--lr" in message and "--grad-clip" in message and "is kept" in message
    card = read_card(out)  # epoch 1's checkpoint, loadable and finite
    assert card.training["epochs_done"] == 1 and math.isfinite(card.training["final_loss"])
    model, _ = load_model(out)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_lr_nan_like_divergence_is_one_line_on_the_cli(images, tmp_path, monkeypatch):
    forward = SimCLR.forward
    monkeypatch.setattr(SimCLR, "forward",
                        lambda self, v: (lambda lf: (lf[0] * float("inf"), lf[1]))(
                            forward(self, v)))
    line = one_line_error(cli( images, *FLAGS, "--out", tmp_path / "o"))
    assert "training diverged: the loss became" in line and "nothing was saved" in line
    assert not (tmp_path / "o").exists()


# --- 3. the small-image stem never changes a user's network -------------------------------


class UserNet(torch.nn.Module):
    """A user's CNN with a strided first conv and a max-pool (what the stem would change)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.maxpool = torch.nn.MaxPool2d(2)
        self.num_features = 8

    def forward(self, x):
        return self.maxpool(torch.relu(self.conv(x))).mean((2, 3))


def make_user_net():
    torch.manual_seed(0)
    return UserNet()


def make_user_net_with_stem_option(small_stem: bool = False):
    from edgessl.backbones.factory import apply_small_image_stem

    net = make_user_net()
    if small_stem:
        apply_small_image_stem(net)
    return net


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(BACKBONES._entries, "user_net", make_user_net)
    monkeypatch.setitem(BACKBONES._entries, "user_net_opt_in", make_user_net_with_stem_option)


@pytest.mark.parametrize("size", [16, 32, 64, 96])
def test_a_registered_network_is_built_exactly_as_its_factory_returns_it(registered, size):
    x = torch.randn(2, 3, size, size)
    reference = make_user_net().eval()
    built = create_backbone(BackboneSpec.for_images("user_net", size)).eval()
    assert built.spec.small_stem is False
    assert built.model.conv.stride == (2, 2) and isinstance(built.model.maxpool,
                                                            torch.nn.MaxPool2d)
    with torch.no_grad():
        torch.testing.assert_close(built(x), reference(x), rtol=0, atol=0)


def test_a_factory_with_small_stem_opts_in(registered):
    built = create_backbone(BackboneSpec.for_images("user_net_opt_in", 32))
    assert built.spec.small_stem is True and built.model.conv.stride == (1, 1)
    big = create_backbone(BackboneSpec.for_images("user_net_opt_in", 96))
    assert big.spec.small_stem is False and big.model.conv.stride == (2, 2)


def test_wrap_module_leaves_the_module_alone_unless_asked():
    x = torch.randn(2, 3, 32, 32)
    net = make_user_net().eval()
    with torch.no_grad():
        before = net(x)
        wrapped = wrap_module(net, 32)
        torch.testing.assert_close(wrapped(x), before, rtol=0, atol=0)
    assert wrapped.spec.small_stem is False
    opted = wrap_module(make_user_net(), 32, small_stem=True)
    assert opted.spec.small_stem is True and opted.model.conv.stride == (1, 1)
    with pytest.raises(ConfigError, match="small_stem"):
        wrap_module(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), 32,
                    small_stem=True)


def test_pretraining_a_registered_network_keeps_its_architecture(registered, images, tmp_path):
    result = pretrain(PretrainConfig(data=str(images), out=str(tmp_path / "o"),
                                     **{**TINY, "backbone": "user_net", "epochs": 1}))
    model, card = load_model(result.path)
    assert card.backbone == {"name": "user_net", "image_size": 16, "small_stem": False,
                             "features": "final"}
    assert model.model.conv.stride == (2, 2)


@pytest.mark.parametrize("name", [*BACKBONES.names(), "test_resnet", "test_vit"])
def test_card_small_stem_says_what_was_built(name):
    size = 16 if name != "vit_tiny32" else 32
    with torch.device("meta"):
        built = create_backbone(BackboneSpec.for_images(name, size))
        plain = create_backbone(BackboneSpec(name, size, small_stem=False))
    assert built.spec.small_stem == (repr(built.model) != repr(plain.model))
    if name == "resnet_tiny_s2":
        assert built.spec.small_stem is False  # its stride-2 stem is kept


def test_an_old_card_asking_for_the_stem_rebuilds_what_it_had():
    # Cards before issue 12 said small_stem: true for every backbone at ≤ 64 px.
    assert create_backbone(BackboneSpec("resnet_tiny_s2", 32, True)).spec.small_stem is False
    assert create_backbone(BackboneSpec("resnet_micro", 16, True)).spec.small_stem is True


# --- 4. image sizes a backbone cannot take ------------------------------------------------


@pytest.mark.parametrize("name, size, smallest", [
    ("vit_tiny32", 16, 32), ("timm:test_vit", 8, 16), ("vit_tiny", 8, 16)])
def test_too_small_image_size_names_the_smallest_that_works(name, size, smallest, images,
                                                           tmp_path):
    line = one_line_error(cli( images, "--backbone", name, "--image-size", size,
                                 "--epochs", "1", "--out", tmp_path / "o"))
    assert f"--image-size {smallest}" in line
    assert not (tmp_path / "o").exists()


def test_smallest_size_covers_augmentations_and_every_backbone():
    plain, blur = AugmentConfig(blur_p=0.0), AugmentConfig()
    assert smallest_image_size("resnet_micro", plain) == 1
    assert smallest_image_size("resnet_micro", blur) == 2  # the blur needs a 2 px image
    with pytest.raises(ConfigError, match="smallest size that works is 2 px"):
        require_image_size("resnet_micro", 1, blur)
    for name in BACKBONES.names():  # the size named works, the one below it does not
        size = smallest_image_size(name, plain)
        require_image_size(name, size, plain)
        if size > 1:
            with pytest.raises(ConfigError):
                require_image_size(name, size - 1, plain)


def test_resume_error_is_a_checkpoint_error(stopped_run, images):
    with pytest.raises(CheckpointError, match="--seed was 0, now 1"):
        pretrain(PretrainConfig(data=str(images), out=str(stopped_run), resume=True,
                                **{**TINY, "seed": 1, "augment": None}))
