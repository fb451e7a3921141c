"""SetFit-style contrastive fine-tuning (``mode="setfit"``) on a tiny random BERT."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from text_helpers import write_tiny_bert, write_toy_folder

from edgessl.errors import ConfigError
from edgessl.text.data import load_text_set
from edgessl.text.encoders import load_encoder
from edgessl.text.finetune import MODES, TextFinetuneConfig, finetune_text
from edgessl.text.setfit import sample_pairs, train_top_layers

pytest.importorskip("transformers")

FAST = {"mode": "setfit", "labels_per_class": 8, "pair_lr": 2e-3, "batch_size": 16}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return load_text_set(write_toy_folder(tmp_path_factory.mktemp("toy") / "toy", 20), 0.3)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return load_encoder(write_tiny_bert(tmp_path_factory.mktemp("enc") / "bert"))


def test_pairs_follow_setfits_sampling():
    labels = [0, 0, 0, 1, 1, 2]
    pairs = sample_pairs(labels, iterations=3, seed=0)
    assert len(pairs) == 2 * 3 * len(labels)
    assert Counter(t for _, _, t in pairs) == {1.0: 18, 0.0: 18}
    for a, b, target in pairs:
        assert (labels[a] == labels[b]) == (target == 1.0)
        assert a != b or labels.count(labels[a]) == 1  # a class of one pairs with itself
    assert pairs == sample_pairs(labels, 3, seed=0) != sample_pairs(labels, 3, seed=1)


def test_top_layers_only(bert):
    import copy

    encoder = copy.deepcopy(bert.encoder)
    total = len(list(encoder.model.parameters()))
    top = train_top_layers(encoder, 1)
    layer = list(encoder.model.encoder.layer[-1].parameters())
    assert top == len(layer) < total
    assert all(p.requires_grad for p in layer)
    assert not any(p.requires_grad for p in encoder.model.embeddings.parameters())
    assert train_top_layers(encoder, 0) == total


def test_setfit_learns_a_separable_set_and_reports_its_cap(toy, bert):
    before = {k: v.clone() for k, v in bert.encoder.state_dict().items()}
    result = finetune_text(TextFinetuneConfig(pairs=96, **FAST), toy, bert)
    training = result.card["training"]
    assert result.card["mode"] == "setfit"
    assert result.card["metrics"]["top1"] >= 0.9
    assert training["pairs_drawn"] == 2 * 20 * 24 and training["pairs_trained"] == 96
    assert training["capped_by"] == "pairs" and training["pair_steps"] == 6
    assert training["top_layers"] == 2 and training["probe_c"] > 0
    # the encoder changed in the classifier, never in the caller's copy
    after = result.model.encoder.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())
    assert all(torch.equal(v, before[k]) for k, v in bert.encoder.state_dict().items())
    assert all(p.requires_grad for p in result.model.encoder.parameters())


def test_setfit_time_and_step_caps(toy, bert):
    result = finetune_text(TextFinetuneConfig(max_steps=2, **FAST), toy, bert)
    assert result.card["training"]["capped_by"] == "max_steps"
    assert result.card["training"]["pairs_trained"] == 32
    uncapped = finetune_text(TextFinetuneConfig(pairs=10_000, pair_iterations=1, **FAST), toy,
                             bert)
    assert uncapped.card["training"]["capped_by"] is None
    assert uncapped.card["training"]["pairs_trained"] == 48


def test_modes_registry_holds_setfit():
    assert MODES.names() == ["full", "probe", "setfit"]
    with pytest.raises(ConfigError, match="Did you mean 'setfit'"):
        TextFinetuneConfig(mode="setfti")
    with pytest.raises(ConfigError, match="pairs must be ≥ 1"):
        TextFinetuneConfig(pairs=0)
