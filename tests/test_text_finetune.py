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


def test_max_length_over_the_encoders_limit_is_refused(toy, bert):
    with pytest.raises(ConfigError, match="max_length 100 is over the 64 tokens that encoder"):
        finetune_text(TextFinetuneConfig(max_length=100), toy, bert)


def test_a_probe_that_cannot_tell_the_classes_apart_says_so(bert, tmp_path, caplog):
    """Both classes hold the same sentences: the probe's loss and val top-1 are at chance."""
    import logging

    lines = [f"the same words {w} again" for w in ("red", "blue", "green", "cold", "warm",
                                                   "fast", "slow", "big", "small", "old")]
    for label in ("left", "right"):
        (tmp_path / "same" / label).mkdir(parents=True)
        (tmp_path / "same" / label / "x.txt").write_text("\n".join(lines) + "\n")
    data = load_text_set(tmp_path / "same", 0.3)
    with caplog.at_level(logging.WARNING, logger="edgessl"):
        result = finetune_text(TextFinetuneConfig(mode="probe", probe_c=1.0), data, bert)
    assert "NOT LEARNING WARNING" in caplog.text and "do not tell your classes apart" in caplog.text
    assert "chance level" in result.card["training"]["not_learning"]


def test_a_probe_that_learns_records_no_warning(toy, bert, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="edgessl"):
        result = finetune_text(TextFinetuneConfig(mode="probe", labels_per_class=8), toy, bert)
    assert "NOT LEARNING" not in caplog.text and "not_learning" not in result.card["training"]
