"""Shared fixtures: the built-in digits at a small size and a tiny classifier checkpoint."""

from __future__ import annotations

import pytest
import torch

from edgessl.backbones import BackboneSpec, create_backbone
from edgessl.checkpoint import ModelCard
from edgessl.data.digits import write_digits
from edgessl.models import Classifier, save_model

TINY_SIZE = 16


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep the edgessl cache out of the user's home during tests."""
    monkeypatch.setenv("EDGESSL_HOME", str(tmp_path_factory.getbasetemp() / "edgessl-home"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two threads are several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """The real digits dataset as train/ and val/ ImageFolders at 16 px (fast to read)."""
    return write_digits(tmp_path_factory.mktemp("data") / "digits", image_size=TINY_SIZE)


def make_classifier_checkpoint(out, data_dir, backbone: str = "resnet_micro", seed: int = 0):
    """An (untrained) classifier checkpoint on ``backbone`` whose card points at ``data_dir``."""
    torch.manual_seed(seed)
    spec = BackboneSpec.for_images(backbone, TINY_SIZE)
    model = Classifier(create_backbone(spec), 10).eval()
    card = ModelCard(
        kind="classifier",
        backbone=spec.to_dict(),
        method="scratch",
        labels=tuple(str(i) for i in range(10)),
        data={"path": str(data_dir), "val_fraction": 0.2, "seed": 0},
    )
    return save_model(model, card, out)


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory, digits_dir):
    """A classifier checkpoint folder on resnet_micro at 16 px (random weights)."""
    return make_classifier_checkpoint(tmp_path_factory.mktemp("models") / "tiny", digits_dir)
