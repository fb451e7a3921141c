"""Self-supervised text pretraining on tiny random encoders: SimCSE, masked LM, guarantees."""

from __future__ import annotations

import logging
import math
import os
import signal

import pytest
import torch
import torch.nn.functional as F
from text_helpers import (
    toy_sentences,
    vocabulary,
    write_tiny_bert,
    write_tiny_gpt2,
    write_toy_folder,
)

from edgessl.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    Interrupted,
    OutputExistsError,
)
from edgessl.text.data import MAX_TEXT_CHARS, load_text_set
from edgessl.text.encoders import load_encoder
from edgessl.text.finetune import TextFinetuneConfig, finetune_text
from edgessl.text.mlm import IGNORE, MLMConfig, mask_tokens
from edgessl.text.pretrain import (
    DEFAULT_MAX_LENGTH,
    STATE_FILE,
    TextPretrainConfig,
    pretrain_text,
    sequence_length,
)
from edgessl.text.simcse import SimCSE, simcse_loss
from edgessl.text.unlabeled import read_unlabeled_text, text_files

pytest.importorskip("transformers")

FAST = {"batch_size": 12, "lr": 1e-3, "log_every": 5}


def write_tiny_mlm_bert(folder):
    """text_helpers' tiny BERT with a [MASK] token in its vocabulary (theirs has none)."""
    return write_tiny_bert(folder, extra_tokens=("[MASK]",))


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return write_tiny_bert(tmp_path_factory.mktemp("enc") / "bert")


@pytest.fixture(scope="module")
def mlm_bert(tmp_path_factory):
    return write_tiny_mlm_bert(tmp_path_factory.mktemp("enc") / "mlm-bert")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """60 toy lines (3 topics x 20) in one .txt file: 5 steps of 12 an epoch."""
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    lines = [s for group in toy_sentences(20).values() for s in group]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cfg(corpus, start, out, **kw):
    return TextPretrainConfig(data=str(corpus), start=str(start), out=str(out),
                              **{**FAST, **kw})


def _mean(values):
    return sum(values) / len(values)


# --- losses, by formula ---------------------------------------------------------------------

def test_simcse_loss_matches_its_formula():
    torch.manual_seed(0)
    z1, z2, t = torch.randn(5, 8), torch.randn(5, 8), 0.05
    expected = 0.0
    for i in range(5):
        sims = [F.cosine_similarity(z1[i], z2[j], dim=0) / t for j in range(5)]
        expected += -(sims[i] - torch.logsumexp(torch.stack(sims), 0))
    assert simcse_loss(z1, z2, t).item() == pytest.approx(expected.item() / 5, rel=1e-5)
    same = torch.randn(4, 8)  # every sentence equal: nothing to tell apart -> log(N)
    assert simcse_loss(same[:1].expand(4, 8), same[:1].expand(4, 8), t).item() == \
        pytest.approx(math.log(4), rel=1e-5)


def test_masking_follows_berts_recipe():
    torch.manual_seed(0)
    ids = torch.randint(10, 1000, (400, 50))
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, 0] = False  # [CLS] positions are never chosen
    corrupted, labels = mask_tokens(ids, maskable, MLMConfig(), mask_id=3, vocab_size=1000)
    chosen = labels != IGNORE
    assert not chosen[:, 0].any()
    assert chosen.float().mean().item() == pytest.approx(0.15 * 49 / 50, abs=0.01)
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(corrupted[~chosen], ids[~chosen])
    masked = (corrupted[chosen] == 3).float().mean().item()
    kept = (corrupted[chosen] == ids[chosen]).float().mean().item()
    assert masked == pytest.approx(0.8, abs=0.02) and kept == pytest.approx(0.1, abs=0.02)
    # a line too short to draw any token still gets one position to predict
    _, few = mask_tokens(ids[:1, :3], torch.tensor([[False, True, False]]), MLMConfig(), 3, 1000)
    assert (few != IGNORE).sum() == 1


# --- training -------------------------------------------------------------------------------

def test_simcse_loss_decreases_and_the_folder_is_a_finetune_start(corpus, bert, tmp_path):
    result = pretrain_text(_cfg(corpus, bert, tmp_path / "simcse", steps=30))
    assert result.steps == 30 and len(result.losses) == 30
    assert _mean(result.losses[-5:]) < 0.5 * _mean(result.losses[:5])
    assert result.fresh_parameters == () and result.not_learning is None
    card = result.card
    assert card["format"] == "edgessl-text-encoder/1" and card["ssl"]["method"] == "simcse"
    assert card["ssl"]["complete"] and card["ssl"]["steps_done"] == 30
    assert card["start"]["source"] == str(bert) and card["data"]["lines"] == 60
    assert card["ssl"]["chance_loss"] == pytest.approx(math.log(12))
    assert not (result.path / STATE_FILE).exists()
    loaded = load_encoder(result.path)  # an ordinary Hugging Face folder
    assert loaded.load_report["ignored"] == 0
    toy = load_text_set(write_toy_folder(tmp_path / "toy", 12), 0.25)
    tuned = finetune_text(TextFinetuneConfig(encoder=str(result.path), labels_per_class=6), toy)
    assert tuned.card["encoder"]["source"] == str(result.path)
    assert tuned.card["metrics"]["top1"] > 0.5  # 3 classes: chance is 0.33


def test_mlm_builds_its_head_from_the_tied_embeddings(corpus, mlm_bert, tmp_path):
    result = pretrain_text(_cfg(corpus, mlm_bert, tmp_path / "mlm", method="mlm", steps=80,
                                lr=3e-3))
    assert set(result.fresh_parameters) == {
        "cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.transform.LayerNorm.bias", "cls.predictions.bias"}
    assert result.card["ssl"]["chance_loss"] == pytest.approx(math.log(len(vocabulary()) + 1))
    assert _mean(result.losses[-8:]) < 0.85 * _mean(result.losses[:8])
    # the head is saved beside the encoder, so continuing again finds nothing fresh
    again = pretrain_text(_cfg(corpus, result.path, tmp_path / "mlm2", method="mlm", steps=2))
    assert again.fresh_parameters == ()
    assert load_encoder(again.path).load_report["ignored"] == 5  # the head, unused by pooling


def test_mlm_needs_a_mask_token_and_a_bidirectional_encoder(corpus, bert, tmp_path):
    with pytest.raises(ConfigError, match=r"no mask token .*--method simcse"):
        pretrain_text(_cfg(corpus, bert, tmp_path / "a", method="mlm", steps=1))
    gpt2 = write_tiny_gpt2(tmp_path / "gpt2")
    with pytest.raises(ConfigError, match="bidirectional"):
        pretrain_text(_cfg(corpus, gpt2, tmp_path / "b", method="mlm", steps=1))
    assert pretrain_text(_cfg(corpus, gpt2, tmp_path / "c", steps=2)).steps == 2  # simcse


@pytest.mark.parametrize("method, lines, lr", [
    ("simcse", ["the same line again"] * 48, 1e-3),  # nothing to tell apart
    ("mlm", None, 1e-9),  # a learning rate that cannot move anything
])
def test_near_chance_warning(method, lines, lr, corpus, mlm_bert, tmp_path, caplog):
    data = corpus
    if lines:
        data = tmp_path / "same.txt"
        data.write_text("\n".join(lines), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="edgessl"):
        result = pretrain_text(_cfg(data, mlm_bert, tmp_path / "o", method=method, steps=12,
                                    lr=lr))
    assert result.not_learning and "chance level" in result.not_learning
    warnings = [r.getMessage() for r in caplog.records if "NOT LEARNING" in r.getMessage()]
    assert len(warnings) == 1 and "--lr" in warnings[0] and "--steps" in warnings[0]
    assert result.card["ssl"]["not_learning"] == result.not_learning


def _signal_at_call(monkeypatch, n: int, sig=signal.SIGINT):
    """Send this process ``sig`` during SimCSE's ``n``-th forward (a real signal)."""
    calls = {"n": 0}
    forward = SimCSE.forward

    def counted(self, ids, mask):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), sig)
        return forward(self, ids, mask)

    monkeypatch.setattr(SimCSE, "forward", counted)


def test_interrupted_run_resumes_to_the_same_result(corpus, bert, tmp_path, monkeypatch):
    settings = {"steps": 12, "checkpoint_every": 4}
    full = pretrain_text(_cfg(corpus, bert, tmp_path / "full", **settings))
    _signal_at_call(monkeypatch, 6)
    with pytest.raises(Interrupted, match=r"step 6 of 12 .*--resume"):
        pretrain_text(_cfg(corpus, bert, tmp_path / "cut", **settings))
    monkeypatch.undo()
    cut = tmp_path / "cut"
    assert (cut / STATE_FILE).is_file()
    load_encoder(cut)  # the interrupted checkpoint is a usable encoder as it is
    with pytest.raises(ConfigError, match="lr"):  # other settings: refused
        pretrain_text(_cfg(corpus, bert, cut, resume=True, **{**settings, "lr": 1e-4}))
    resumed = pretrain_text(_cfg(corpus, bert, cut, resume=True, **settings))
    assert resumed.steps == 12 and resumed.card["ssl"]["complete"]
    assert resumed.losses == pytest.approx(full.losses, rel=1e-4)
    a, b = load_encoder(tmp_path / "full").encoder, load_encoder(cut).encoder
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=name)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        pretrain_text(_cfg(corpus, bert, cut, resume=True, **settings))


def test_a_stop_while_saving_keeps_the_last_checkpoint(corpus, bert, tmp_path, monkeypatch):
    """A second Ctrl-C lands in the middle of writing a checkpoint: the one before stays."""
    import safetensors.torch

    from edgessl.interrupt import StopSignal

    real, calls = safetensors.torch.save_file, {"n": 0}

    def save_file(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise StopSignal("SIGINT")
        return real(*args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    out = tmp_path / "o"
    with pytest.raises(StopSignal):
        pretrain_text(_cfg(corpus, bert, out, steps=12, checkpoint_every=3))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["o"]
    assert load_encoder(out).load_report["ignored"] == 0
    monkeypatch.undo()
    resumed = pretrain_text(_cfg(corpus, bert, out, steps=12, checkpoint_every=3, resume=True))
    assert resumed.steps == 12 and len(resumed.losses) == 12


def test_config_and_output_errors(corpus, bert, tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'simcse'"):
        TextPretrainConfig(data=str(corpus), method="simcsee")
    with pytest.raises(ConfigError, match="--epochs and --steps"):
        TextPretrainConfig(data=str(corpus), epochs=1, steps=3)
    with pytest.raises(ConfigError, match="--batch-size must be ≥ 2"):
        TextPretrainConfig(data=str(corpus), batch_size=1)
    with pytest.raises(ConfigError, match="unknown key 'temp'"):
        pretrain_text(_cfg(corpus, bert, tmp_path / "o", method_options={"temp": 0.1}))
    (tmp_path / "taken").mkdir()
    with pytest.raises(OutputExistsError, match="--force"):
        pretrain_text(_cfg(corpus, bert, tmp_path / "taken", steps=1))
    one = tmp_path / "one.txt"
    one.write_text("a single line\n")
    with pytest.raises(DataError, match="at least 2"):
        pretrain_text(_cfg(one, bert, tmp_path / "p", steps=1))
    result = pretrain_text(_cfg(corpus, bert, tmp_path / "epochs", epochs=2))
    assert result.steps == 10  # 60 lines // 12 = 5 steps an epoch


def test_max_length_is_the_default_within_the_encoders_limit_or_an_error():
    assert sequence_length(TextPretrainConfig(data="x"), 512) == DEFAULT_MAX_LENGTH
    assert sequence_length(TextPretrainConfig(data="x"), 32) == 32  # default capped
    assert sequence_length(TextPretrainConfig(data="x", max_length=256), 256) == 256
    with pytest.raises(ConfigError, match="--max-length 1000 is over the 256 tokens .* pass "
                                          "--max-length 256 or less"):
        sequence_length(TextPretrainConfig(data="x", max_length=1000), 256)


# --- unlabeled text -------------------------------------------------------------------------

def test_unlabeled_text_files_and_folders(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("\ufefffirst line\n\n  second  \n", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("x" * (MAX_TEXT_CHARS + 10) + "\n", encoding="utf-8")
    (folder / ".hidden").write_text("ignored")
    text = read_unlabeled_text(folder)
    assert text.lines[:2] == ("first line", "second") and text.files == 2
    assert text.truncated == 1 and len(text.lines[2]) == MAX_TEXT_CHARS
    assert text_files(folder / "a.txt") == [folder / "a.txt"]
    (folder / "picture.png").write_bytes(b"\x89PNG")
    assert text_files(folder) is None and text_files(tmp_path / "missing") is None
    with pytest.raises(DataError, match="holding only .txt files"):
        read_unlabeled_text(folder)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe broken\n")
    with pytest.raises(DataError, match="line 2 is not UTF-8"):
        read_unlabeled_text(bad)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n")
    with pytest.raises(DataError, match="0 non-blank lines"):
        read_unlabeled_text(blank)
