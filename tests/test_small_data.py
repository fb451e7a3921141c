"""Small data and short budgets (issue 11): schedules, honest warnings, no val leak, budget."""

from __future__ import annotations

import json
import logging
import math
import shutil

import pytest
import torch

from edgessl.errors import ConfigError
from edgessl.ssl.monitor import not_learning
from edgessl.ssl.plan import (
    choose_batch,
    epochs_for_budget,
    freeze_early,
    hold_norm_statistics,
    parse_budget,
    warmup_steps,
)
from edgessl.ssl.pretrain import PretrainConfig, pretrain


def test_the_default_batch_leaves_enough_steps_and_a_given_one_is_kept():
    assert choose_batch(None, 100_000) == 256
    assert choose_batch(None, 2000) == 64  # 2000 // 128 = 15 steps < 16
    assert choose_batch(None, 100) == 32  # never below 32 (negatives)
    assert choose_batch(256, 100) == 256  # the user's choice stands (require_batch caps it)
    assert choose_batch(None, 2000, processes=3) % 3 == 0


def test_warmup_is_in_steps_and_at_most_a_fifth_of_the_run():
    assert warmup_steps(2, 100, 3000) == 200
    assert warmup_steps(2, 7, 21) == 4  # 3 epochs of 7 steps: not 14 steps of warm-up


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("20m", 1200), ("1.5h", 5400),
                                               ("1h30m", 5400), (" 2M ", 120)])
def test_budgets_parse(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["20", "abc", "5s", "-3m", "1e3s", "10d", "nan"])
def test_bad_budgets_are_config_errors(text):
    with pytest.raises(ConfigError, match="--budget"):
        parse_budget(text)


def test_epochs_for_budget():
    assert epochs_for_budget(600, 0.5, 20, 1000) == 51  # 0.85 * 600 / 10 s an epoch
    assert epochs_for_budget(60, 10.0, 20, 1000) == 1  # at least one
    assert epochs_for_budget(6000, 0.01, 20, 30) == 30  # at most --epochs


def test_freeze_early_freezes_the_first_tensors_and_their_norm_statistics():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.Conv2d(4, 4, 3), torch.nn.BatchNorm2d(4))
    assert freeze_early(net, 0.375) == 3  # conv weight and bias, bn weight (of 8 tensors)
    assert [p.requires_grad for p in net.parameters()] == [False] * 3 + [True] * 5
    assert net[1].momentum == 0.1  # its bias still trains: the layer is not all frozen
    assert freeze_early(net, 0.5) == 4
    assert net[1].momentum == 0.0 and net[3].momentum == 0.1


def test_held_norm_statistics_survive_train_mode_and_copies():
    import copy

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with torch.no_grad():
        net[1].running_mean.fill_(5.0)
    assert hold_norm_statistics(net) == 1
    teacher = copy.deepcopy(net)  # what BYOL, MoCo and DINO do for their EMA teacher
    for module in (net, teacher):
        module.train()
        x = torch.randn(8, 3, 6, 6)
        out = module(x)
        assert module[1].running_mean.eq(5.0).all()  # not updated
        assert torch.allclose(out, module.eval()(x))  # normalised with the running statistics
    out.sum().backward()
    assert net[1].weight.grad is None  # the teacher's output: not the student's
    net.train()(x).sum().backward()
    assert net[1].weight.grad is not None  # the affine weights still train
    assert set(net.state_dict()) == set(torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).state_dict())


def _rows(losses, knn=None):
    return [{"epoch": i + 1, "loss": loss, "knn_top1": knn} for i, loss in enumerate(losses)]


def test_a_loss_at_chance_or_unmoved_or_a_knn_at_chance_is_not_learning():
    chance = math.log(2 * 256 - 1)  # 6.24: the hand-sign run of the issue
    reason = not_learning(_rows([6.31, 6.25, 6.20, 6.18]), 4, chance, None)
    assert reason is not None and "chance level" in reason
    assert not_learning(_rows([6.31, 6.25]), 8, chance, None) is None  # too early to judge
    assert not_learning(_rows([6.31, 5.0, 4.0, 3.0]), 4, chance, None) is None  # learning
    assert "has not moved" in not_learning(_rows([1.0, 0.995, 0.99]), 4, None, None)
    assert "kNN top-1" in not_learning(_rows([1.0, 0.5, 0.3], knn=11.0), 4, None, 10)
    assert not_learning(_rows([1.0, 0.5, 0.3], knn=60.0), 4, None, 10) is None


def test_a_loss_that_learned_in_its_first_epoch_and_then_stays_flat_is_not_stuck():
    """BYOL/MAE-like losses can reach their floor within epoch 1; flat after that is done."""
    rows = _rows([0.021, 0.0207, 0.0206, 0.0206])
    rows[0]["first_step_loss"] = 1.9  # the untrained loss: epoch 1 already fell 99%
    assert not_learning(rows, 4, None, None) is None
    rows[0]["first_step_loss"] = 0.0212  # epoch 1 did not fall from the first step either
    assert "has not moved" in not_learning(rows, 4, None, None)
    chance = math.log(2 * 256 - 1)  # contrastive: far below chance has learned
    assert not_learning(_rows([1.2, 1.19, 1.19, 1.19]), 4, chance, None) is None
    assert "has not moved" in not_learning(_rows([5.0, 4.99, 4.98, 4.98]), 4, chance, None)


def test_a_run_that_cannot_learn_says_so_while_it_runs(digits_dir, tmp_path, caplog):
    """lr 1e-9 cannot move SimCLR off chance: the warning comes during the run."""
    with caplog.at_level(logging.WARNING, logger="edgessl"):
        result = pretrain(PretrainConfig(
            data=str(digits_dir), backbone="resnet_micro", image_size=16, epochs=2,
            batch_size=64, lr=1e-9, out=str(tmp_path / "ssl")))
    assert "NOT LEARNING WARNING" in caplog.text and "chance level" in caplog.text
    assert result.history[-1]["not_learning"] is True
    history = json.loads((tmp_path / "ssl" / "history.json").read_text())
    assert history[-1]["not_learning"] is True
    assert math.isfinite(history[0]["first_step_loss"])  # the untrained level, kept in epoch 1
    assert "first_step_loss" not in history[1]


def _image_folder(digits_dir, tmp_path):
    """A single ImageFolder (class folders only), as finetune splits it itself."""
    root = tmp_path / "folder"
    for cls in sorted((digits_dir / "train").iterdir())[:3]:
        shutil.copytree(cls, root / cls.name)
    return root


def test_pretraining_leaves_out_what_finetune_holds_out_as_val(digits_dir, tmp_path):
    from edgessl.data.labeled import load_labeled

    root = _image_folder(digits_dir, tmp_path)
    val = {p.resolve() for p, _ in load_labeled(root, 0.2, 3).val}
    result = pretrain(PretrainConfig(data=str(root), backbone="resnet_micro", image_size=16,
                                     epochs=1, batch_size=32, seed=3, out=str(tmp_path / "a")))
    card = json.loads((result.path / "card.json").read_text())
    total = sum(1 for _ in root.rglob("*.png"))
    assert card["data"]["excluded_val_images"] == len(val) > 0
    assert card["data"]["images"] == total - len(val)
    assert card["data"]["excluded_val"] == {"val_fraction": 0.2, "seed": 3}
    # a train/ + val/ root already keeps val/ out: nothing more is excluded
    other = pretrain(PretrainConfig(data=str(digits_dir), backbone="resnet_micro",
                                    image_size=16, epochs=1, batch_size=64,
                                    out=str(tmp_path / "b")))
    assert json.loads((other.path / "card.json").read_text())["data"]["excluded_val_images"] == 0
    included = pretrain(PretrainConfig(data=str(root), backbone="resnet_micro", image_size=16,
                                       epochs=1, batch_size=32, exclude_val=False,
                                       out=str(tmp_path / "c")))
    assert json.loads((included.path / "card.json").read_text())["data"]["images"] == total


def test_a_budget_picks_the_epochs_and_the_lr_follows_the_batch_used(digits_dir, tmp_path):
    result = pretrain(PretrainConfig(data=str(digits_dir), backbone="resnet_micro",
                                     image_size=16, budget="12s", epochs=3,
                                     out=str(tmp_path / "b")))
    card = json.loads((result.path / "card.json").read_text())
    training = card["training"]
    assert 1 <= training["epochs"] <= 3 and training["budget"] == "12s"
    # 1438 digits: the default batch halves to 64 (22 steps an epoch), and SimCLR's LR of
    # 0.5 at batch 256 scales to 0.125
    assert training["batch_size"] == 64 and training["lr"] == pytest.approx(0.125)
    assert training["warmup_steps"] <= 0.2 * training["epochs"] * (1438 // 64) + 1


def test_a_budget_shorter_than_one_epoch_says_so(digits_dir, tmp_path, monkeypatch, caplog):
    """One epoch is the least a run trains; when even that is over the budget, the user hears
    it while the run starts, with what to change."""
    import edgessl.ssl.pretrain as pretrain_module

    monkeypatch.setattr(pretrain_module, "time_steps", lambda step: 2.0)  # 22 steps: 44 s
    with caplog.at_level(logging.WARNING, logger="edgessl"):
        result = pretrain(PretrainConfig(data=str(digits_dir), backbone="resnet_micro",
                                         image_size=16, budget="12s", epochs=3,
                                         out=str(tmp_path / "b")))
    assert json.loads((result.path / "card.json").read_text())["training"]["epochs"] == 1
    assert "BUDGET WARNING: one epoch takes about 44 s, more than --budget 12s" in caplog.text
    assert "fewer images or at a lower --image-size" in caplog.text


def test_the_probe_in_the_span_of_its_samples_is_the_same_probe():
    """Few labels, wide features: fitting in the samples' span gives the same classifier."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from edgessl.finetune.train import _sample_span

    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 300))
    labels = np.repeat(np.arange(4), 10)
    z[np.arange(40), labels] += 3.0
    basis = _sample_span(z)
    assert basis.shape == (40, 300) and np.allclose(basis @ basis.T, np.eye(40), atol=1e-8)
    full = LogisticRegression(C=0.3, max_iter=5000, tol=1e-10).fit(z, labels)
    small = LogisticRegression(C=0.3, max_iter=5000, tol=1e-10).fit(z @ basis.T, labels)
    assert np.allclose(small.coef_ @ basis, full.coef_, atol=1e-4)
    assert np.allclose(small.intercept_, full.intercept_, atol=1e-4)
    assert _sample_span(z[:, :20]).shape == (20, 20)  # more samples than features: as it is


def test_ssl_continues_from_a_pretrained_start_with_its_settings(digits_dir, tmp_path):
    """Domain-adaptive pretraining: the start's normalisation and record, a fiftieth of the LR,
    the earliest three quarters frozen, the BatchNorm statistics held, the architecture as the
    weights were trained."""
    from edgessl.backbones.pretrained import DEFAULT_START, PRETRAINED, pretrained_state_dict
    from edgessl.models import load_model

    root = _image_folder(digits_dir, tmp_path)
    result = pretrain(PretrainConfig(data=str(root), backbone=DEFAULT_START, image_size=32,
                                     epochs=1, batch_size=32, out=str(tmp_path / "dapt")))
    model, card = load_model(result.path)
    start = PRETRAINED.get(DEFAULT_START)
    assert card.pretrained["name"] == DEFAULT_START and card.pretrained["sha256"] == start.sha256
    assert card.mean == (0.5, 0.5, 0.5) and card.std == (0.5, 0.5, 0.5)
    assert card.backbone["small_stem"] is False
    training = card.training
    assert training["lr"] == pytest.approx(0.5 * 0.02 * 32 / 256)  # SimCLR's, x 0.02, batch 32
    assert training["freeze"] == 0.75 and training["frozen_tensors"] > 0
    assert training["norm_statistics_held"] == sum(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    # the frozen stem kept its ImageNet weights; a later layer moved
    weights = pretrained_state_dict(start)
    assert torch.equal(model.model.conv_stem.weight, weights["conv_stem.weight"])
    assert not torch.equal(model.model.conv_head.weight, weights["conv_head.weight"])
    # every running statistic is still the pretrained one, the trained layers' too
    state = model.model.state_dict()
    stats = [k for k in weights if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(state[k], weights[k]) for k in stats)
    # --update-norm-stats: they follow the new images again
    updated = pretrain(PretrainConfig(data=str(root), backbone=DEFAULT_START, image_size=32,
                                      epochs=1, batch_size=32, hold_norm_stats=False,
                                      out=str(tmp_path / "dapt-update")))
    model, card = load_model(updated.path)
    assert card.training["norm_statistics_held"] == 0
    assert not torch.equal(model.model.state_dict()["bn2.running_mean"],
                           weights["bn2.running_mean"])


def _epochs(losses):
    return [{"epoch": i + 1, "loss": loss} for i, loss in enumerate(losses)]


def test_a_fine_tune_loss_at_chance_or_unmoved_is_not_learning_but_a_low_flat_one_is():
    from edgessl.finetune.monitor import full_not_learning, probe_not_learning, val_at_chance

    chance = math.log(10)
    assert "chance level" in full_not_learning(_epochs([2.31, 2.30, 2.29, 2.30]), 4, 10)
    assert "not moved" in full_not_learning(_epochs([1.60, 1.59, 1.59, 1.58]), 4, 10)
    assert full_not_learning(_epochs([2.31, 2.30]), 8, 10) is None  # too early to judge
    assert full_not_learning(_epochs([2.3, 1.2, 0.6, 0.3]), 4, 10) is None  # learning
    # converged in the first epoch (a pretrained start on easy data): nothing left to fall
    assert full_not_learning(_epochs([0.05, 0.05, 0.049, 0.05]), 4, 10) is None
    assert full_not_learning(_epochs([float("nan")] * 4), 4, 10) is None  # refused later
    assert full_not_learning(_epochs([0.7, 0.7, 0.7]), 3, 1) is None  # one class: no chance
    assert "chance level" in probe_not_learning(0.99 * chance, 10)
    assert probe_not_learning(0.2 * chance, 10) is None
    assert "val top-1 10.5%" in val_at_chance(0.105, 10, 200)
    assert val_at_chance(0.2, 10, 200) is None
    assert val_at_chance(0.5, 2, 9) is None  # 9 val images of 2 classes: too few to call


def _same_image_in_every_class(root, classes=3, per_class=30):
    from PIL import Image

    image = Image.fromarray(torch.randint(0, 255, (16, 16, 3), dtype=torch.uint8,
                                          generator=torch.Generator().manual_seed(0)).numpy())
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            image.save(root / f"c{c}" / f"{i}.png")
    return root


def test_a_fine_tune_that_cannot_learn_says_so_and_the_card_records_it(digits_dir, tmp_path,
                                                                        caplog):
    """lr 1e-9 leaves a full fine-tune at its first loss: warned during training."""
    from edgessl.checkpoint import read_card
    from edgessl.finetune.train import FinetuneConfig, finetune

    with caplog.at_level(logging.WARNING, logger="edgessl"):
        finetune(FinetuneConfig(data=str(digits_dir), backbone="scratch:resnet_micro",
                                image_size=16, mode="full", epochs=4, lr=1e-9,
                                labels_per_class=5, out=str(tmp_path / "ft")))
    assert "NOT LEARNING WARNING: the classifier is not learning" in caplog.text
    assert "--lr" in caplog.text
    assert read_card(tmp_path / "ft").training["not_learning"]


def test_a_probe_on_features_that_cannot_tell_the_classes_apart_says_so(tmp_path, caplog):
    """Every class holds the same image: the probe's loss and val top-1 are at chance."""
    from edgessl.checkpoint import read_card
    from edgessl.finetune.train import FinetuneConfig, finetune

    data = _same_image_in_every_class(tmp_path / "same")
    with caplog.at_level(logging.WARNING, logger="edgessl"):
        finetune(FinetuneConfig(data=str(data), backbone="scratch:resnet_micro", image_size=16,
                                mode="linear", probe_c=1.0, out=str(tmp_path / "ft")))
    assert "linear probe's training loss" in caplog.text and "val top-1" in caplog.text
    assert "do not tell your classes apart" in caplog.text
    assert "at chance" in read_card(tmp_path / "ft").training["not_learning"]


def test_a_probe_that_learns_gives_no_warning(digits_dir, tmp_path, caplog):
    """Even random conv features separate the digits well above chance."""
    from edgessl.finetune.train import FinetuneConfig, finetune

    with caplog.at_level(logging.WARNING, logger="edgessl"):
        result = finetune(FinetuneConfig(data=str(digits_dir), backbone="scratch:resnet_micro",
                                         image_size=16, mode="linear", labels_per_class=10,
                                         out=str(tmp_path / "ft")))
    assert result.metrics["top1"] > 0.3
    assert "NOT LEARNING" not in caplog.text


def test_a_training_device_is_read_whatever_its_case():
    from edgessl.ssl.ddp import resolve_device

    assert resolve_device("CPU") == "cpu" and resolve_device(" Cpu ") == "cpu"
    with pytest.raises(ConfigError, match="unknown --device 'npu'"):
        resolve_device("NPU")
