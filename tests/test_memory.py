"""A batch that cannot fit in memory is refused before training, in one line (issue 11)."""

from __future__ import annotations

import pytest
import torch

from edgessl.errors import ConfigError
from edgessl.memory import activation_bytes, check_training_memory, free_bytes


def _net():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(8, 2))


def test_activation_bytes_add_up_every_layer_output_without_allocating_them():
    net = _net()
    total, largest = activation_bytes(net, (4, 3, 32, 32))
    conv = 4 * 8 * 32 * 32 * 4  # float32 [4, 8, 32, 32], twice (conv, relu)
    assert largest == conv
    assert total == 2 * conv + 4 * 8 * 4 * 2 + 4 * 2 * 4  # + pool, flatten, linear
    # a side that would need terabytes is measured in a blink: nothing is allocated
    assert activation_bytes(net, (64, 3, 65536, 65536))[0] > 2 ** 40
    assert next(net.parameters()).device.type == "cpu"  # the model itself is not moved


def test_free_memory_is_read_on_the_cpu():
    free = free_bytes("cpu")
    assert free is None or free > 0


def test_a_batch_that_cannot_fit_is_refused_and_one_that_can_is_not(monkeypatch):
    import edgessl.memory as memory

    monkeypatch.setattr(memory, "free_bytes", lambda device="cpu": 1 << 30)  # 1 GiB free
    check_training_memory(_net(), 64, 32)  # 2 x 32 MiB
    with pytest.raises(ConfigError, match=r"at 4096 px with a batch of 64 \(2 views each\) "
                                          r"needs about .* GiB .* 1\.0 GiB free: lower "
                                          r"--image-size or --batch-size"):
        check_training_memory(_net(), 64, 4096, views=2)
    # frozen features (no backward) need about the largest layer, not all of them
    check_training_memory(_net(), 16, 512, training=False)


def test_an_unmeasurable_model_or_device_is_not_refused(monkeypatch):
    class NeedsValues(torch.nn.Module):
        def forward(self, x):
            return x * float(x.sum().item())  # .item() has no value on the meta device

    check_training_memory(NeedsValues(), 8, 64)
    import edgessl.memory as memory

    monkeypatch.setattr(memory, "free_bytes", lambda device="cpu": None)
    check_training_memory(_net(), 10 ** 4, 4096)


def test_finetune_refuses_an_image_size_that_cannot_fit_before_training(digits_dir, tmp_path,
                                                                        monkeypatch):
    import edgessl.memory as memory
    from edgessl.finetune.train import FinetuneConfig, finetune

    monkeypatch.setattr(memory, "free_bytes", lambda device="cpu": 64 << 20)  # 64 MiB
    with pytest.raises(ConfigError, match="lower --image-size or --batch-size"):
        finetune(FinetuneConfig(data=str(digits_dir), backbone="scratch:resnet_micro",
                                image_size=128, mode="full", epochs=1, labels_per_class=5,
                                out=str(tmp_path / "ft")))
    assert not (tmp_path / "ft").exists()


def test_pretrain_refuses_a_batch_that_cannot_fit_before_training(digits_dir, tmp_path,
                                                                  monkeypatch):
    import edgessl.memory as memory
    from edgessl.ssl.pretrain import PretrainConfig, pretrain

    monkeypatch.setattr(memory, "free_bytes", lambda device="cpu": 64 << 20)  # 64 MiB
    with pytest.raises(ConfigError, match=r"\(2 views each\).*lower --image-size"):
        pretrain(PretrainConfig(data=str(digits_dir), backbone="resnet_micro", image_size=128,
                                epochs=1, batch_size=64, out=str(tmp_path / "ssl")))
    assert not (tmp_path / "ssl").exists()


def test_the_layers_of_a_frozen_start_before_the_first_trainable_one_keep_nothing():
    net = _net()
    for p in net[0].parameters():  # the conv frozen, as --freeze does to a start's first layers
        p.requires_grad_(False)
    total, largest = activation_bytes(net, (4, 3, 32, 32))
    assert largest == 4 * 8 * 32 * 32 * 4  # still the biggest output alive at a time
    assert total == 4 * 2 * 4  # only the trainable linear layer's output is kept
