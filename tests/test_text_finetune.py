"""Few-label text classifiers on tiny random encoders: probe, full fine-tune, TF-IDF."""

from __future__ import annotations

import pytest
import torch
from text_helpers import write_tiny_bert, write_tiny_gpt2, write_toy_folder

from edgessl.config import FieldError
from edgessl.errors import ConfigError, OutputExistsError
from edgessl.text.baseline import tfidf_baseline
from edgessl.text.data import load_text_set
from edgessl.text.encoders import load_encoder
from edgessl.text.finetune import TextFinetuneConfig, finetune_text
from edgessl.text.model import load_text_classifier

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return load_text_set(write_toy_folder(tmp_path_factory.mktemp("toy") / "toy", 20), 0.3)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return load_encoder(write_tiny_bert(tmp_path_factory.mktemp("enc") / "bert"))


FAST = {"epochs": 8, "lr": 1e-3, "batch_size": 8}


@pytest.mark.parametrize("mode", ["probe", "full"])
def test_bert_learns_a_separable_set(toy, bert, mode):
    before = {k: v.clone() for k, v in bert.encoder.state_dict().items()}
    result = finetune_text(TextFinetuneConfig(encoder="unused", mode=mode, labels_per_class=8,
                                              **FAST), toy, bert)
    card = result.card
    assert card["metrics"]["top1"] >= 0.9
    assert card["mode"] == mode and card["labels"] == list(toy.classes)
    assert card["training"]["train_examples"] == 24 and card["training"]["probe_c"] > 0
    assert card["max_length"] % 8 == 0 and card["encoder"]["pooling"] == "mean"
    # the caller's encoder is never changed
    assert all(torch.equal(v, before[k]) for k, v in bert.encoder.state_dict().items())


def test_full_finetune_reports_its_cap(toy, bert):
    result = finetune_text(TextFinetuneConfig(mode="full", max_steps=2, **FAST), toy, bert)
    training = result.card["training"]
    assert (training["steps"], training["capped_by"]) == (2, "max_steps")
    assert training["planned_steps"] > 2


def test_gpt2_folder_classifies(toy, tmp_path):
    folder = write_tiny_gpt2(tmp_path / "gpt2")
    result = finetune_text(TextFinetuneConfig(encoder=str(folder), mode="full", **FAST), toy)
    assert result.card["encoder"]["pooling"] == "last"
    assert result.card["metrics"]["top1"] >= 0.9


def test_save_and_load_round_trip(toy, bert, tmp_path):
    result = finetune_text(TextFinetuneConfig(labels_per_class=5), toy, bert)
    out = result.save(tmp_path / "clf")
    model, card = load_text_classifier(out)
    texts = [t for t, _ in toy.val]
    assert torch.allclose(model.logits(texts), result.model.logits(texts), atol=1e-5)
    assert card == result.card
    with pytest.raises(OutputExistsError):
        result.save(out)


def test_tfidf_baseline_separates_the_toy_set(toy):
    baseline = tfidf_baseline(toy, labels_per_class=8)
    assert baseline.card["metrics"]["top1"] == 1.0
    assert baseline.predict(["a ripe banana and a mango"]) == ["fruit"]


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="Did you mean 'full'"):
        TextFinetuneConfig(mode="fulll")
    with pytest.raises(FieldError, match="lr must be > 0"):
        TextFinetuneConfig(lr=-1.0)
