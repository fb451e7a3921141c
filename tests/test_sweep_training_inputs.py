"""Labeled and unlabeled folders as users bring them to pretrain, finetune and compare, and the
flags around them: each mistake is one line, refused before the slow work (decoding every
image, training arms), and nothing is silently dropped or ignored."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import invoke, one_line_error
from PIL import Image

from edgessl.compare.run import CompareConfig, compare, make_folds
from edgessl.data.labeled import finetune_val_images, load_labeled
from edgessl.errors import ConfigError, DataError, EdgesslError, OutputExistsError
from edgessl.finetune.train import FinetuneConfig, finetune
from edgessl.ssl.pretrain import PretrainConfig, pretrain

TINY = {"backbone": "scratch", "arch": "resnet_micro", "image_size": 16}


def _images(folder: Path, n: int, start: int = 0, size=(10, 12)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _classes(root: Path, counts: dict[str, int]) -> Path:
    for offset, (name, n) in enumerate(counts.items()):
        _images(root / name, n, start=100 * offset)
    return root


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any image is decoded: the refusal must come from a listing."""
    def decode(*args, **kwargs):
        raise AssertionError("an image was decoded before the refusal")

    monkeypatch.setattr("edgessl.data.images.image_problem", decode)
    monkeypatch.setattr("edgessl.data.labeled.usable_images", decode)


# --- labeled folder layouts -----------------------------------------------------------------

def test_a_flat_folder_of_images_is_told_it_needs_class_folders(tmp_path):
    flat = _images(tmp_path / "photos", 3)
    err = one_line_error(invoke("finetune", flat, "--backbone", "scratch", "--arch",
                                "resnet_micro", "--image-size", "16"))
    assert "holds 3 images but no class subfolders" in err
    assert "sort them into class folders" in err and "no usable image" not in err


@pytest.mark.parametrize("make, words", [
    (lambda r: _images(_classes(r, {"cat": 2, "dog": 2}), 1, start=900),
     "holds 1 image beside its class folders (first: '900.png')"),
    (lambda r: _classes(r, {"only": 4}), "only one class ('only')"),
    (lambda r: _classes(r / "dataset", {"cat": 2, "dog": 2}) and r,
     "if 'dataset' holds the class folders, pass"),
    (lambda r: (_classes(r / "train", {"a": 2, "b": 2, "c": 2}),
                _classes(r / "val", {"a": 1, "b": 1, "d": 1}))[0].parent,
     "it lacks c; train/ lacks d"),
])
def test_layout_mistakes_are_refused_before_any_image_is_decoded(tmp_path, no_decoding, make,
                                                                  words):
    root = make(tmp_path / "data")
    with pytest.raises(DataError) as err:
        load_labeled(root)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_many_single_image_classes_are_named_in_one_message(tmp_path):
    root = _classes(tmp_path / "data", {"big": 5, **{f"c{i}": 1 for i in range(7)}})
    with pytest.raises(DataError) as err:
        load_labeled(root)
    assert str(err.value).startswith("7 classes have 1 image ('c0', 'c1', 'c2', 'c3', 'c4' ...)")
    assert "give train/ and val/ folders" in str(err.value)


def test_unicode_spaces_and_dots_in_class_names_are_kept(tmp_path):
    root = _classes(tmp_path / "data", {"café au lait": 3, "v1.0": 3, "日本": 3})
    data = load_labeled(root)
    assert data.classes == ("café au lait", "v1.0", "日本")


def test_nested_class_folders_pretrain_leaves_out_what_finetune_holds_out(tmp_path):
    """class/sub/x.png: finetune reads the images under a class folder recursively, so
    pretrain must leave out the same val images (it used to keep all of them: a leak)."""
    root = tmp_path / "data"
    for offset, name in enumerate(("cat", "dog")):
        _images(root / name / "2019", 3, start=10 * offset)
        _images(root / name / "2020", 2, start=10 * offset + 5)
    data = load_labeled(root, seed=3)
    images = sorted(p for p in root.rglob("*.png"))
    held_out = finetune_val_images(root, images, seed=3)
    assert sorted(held_out) == sorted(p for p, _ in data.val) and held_out


def test_val_copies_of_train_images_are_warned_about(tmp_path, caplog):
    root = tmp_path / "data"
    _classes(root / "train", {"a": 3, "b": 3})
    _images(root / "val" / "a", 1, start=50)
    (root / "val" / "b").mkdir(parents=True)
    shutil.copy(root / "train" / "b" / "101.png", root / "val" / "b" / "copy.png")
    with caplog.at_level(logging.WARNING, logger="edgessl"):
        load_labeled(root)
    assert "1 of 2 val images" in caplog.text and "byte-for-byte copies" in caplog.text
    assert "copy.png" in caplog.text


def test_images_of_every_mode_and_shape_load(tmp_path):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir(parents=True)
    Image.new("L", (300, 7), 9).save(root / "a" / "grey.png")
    Image.new("RGBA", (5, 40), (1, 2, 3, 0)).save(root / "a" / "alpha.png")
    Image.fromarray(np.full((20, 30), 60000, np.uint16)).save(root / "b" / "deep.png")
    Image.new("P", (1, 1)).save(root / "b" / "dot.gif")
    data = load_labeled(root, val_fraction=0.5)
    assert len(data.train) == len(data.val) == 2


# --- finetune ------------------------------------------------------------------------------

def test_probe_c_with_a_full_fine_tune_is_refused_not_ignored(digits_dir):
    with pytest.raises(ConfigError, match="--probe-c applies to --mode linear"):
        finetune(FinetuneConfig(data=str(digits_dir), mode="full", probe_c=0.1, **TINY))


def test_finetune_refuses_an_existing_out_before_decoding_images(tmp_path, digits_dir,
                                                                  monkeypatch):
    monkeypatch.setattr("edgessl.finetune.train.load_labeled",
                        lambda *a, **k: pytest.fail("images were decoded first"))
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError):
        finetune(FinetuneConfig(data=str(digits_dir), out=str(tmp_path / "out"), **TINY))


# --- pretrain ------------------------------------------------------------------------------

@pytest.mark.parametrize("setup, extra, words", [
    (lambda p: (p / "out").mkdir(), {}, "exists; pass --force"),
    (lambda p: None, {"resume": True}, "nothing to resume"),
    (lambda p: _images(p / "flat", 3), {"eval_data": "flat"},
     "--eval-data: '{tmp}/flat' holds 3 images but no class subfolders"),
])
def test_pretrain_refuses_flags_before_decoding_its_images(tmp_path, digits_dir, monkeypatch,
                                                           setup, extra, words):
    monkeypatch.setattr("edgessl.ssl.pretrain.find_images",
                        lambda *a, **k: pytest.fail("images were decoded first"))
    setup(tmp_path)
    if "eval_data" in extra:
        extra = {"eval_data": str(tmp_path / extra["eval_data"])}
    cfg = PretrainConfig(data=str(digits_dir), backbone="resnet_micro", image_size=16,
                         epochs=1, out=str(tmp_path / "out"), **extra)
    with pytest.raises(EdgesslError) as err:
        pretrain(cfg)
    assert words.format(tmp=tmp_path) in str(err.value)


def test_pretrain_eval_data_errors_name_the_flag(tmp_path, digits_dir):
    bad = _classes(tmp_path / "eval", {"a": 5, "b": 1})  # b cannot be split
    result = invoke("pretrain", digits_dir, "--backbone", "resnet_micro", "--image-size", "16",
                    "--epochs", "1", "--eval-data", bad, "--out", tmp_path / "out")
    err = one_line_error(result)
    assert err.startswith("error: --eval-data: class 'b' has 1 image")
    assert not (tmp_path / "out").exists()


# --- compare -------------------------------------------------------------------------------

def test_compare_refuses_an_arm_named_twice():
    with pytest.raises(ConfigError, match="--arms names pixels more than once"):
        CompareConfig(arms=("pixels", "scratch", "pixels"))
    err = one_line_error(invoke("compare", "--arms", "pixels,pixels"))
    assert "more than once" in err


def test_compare_refuses_an_ssl_pool_too_small_before_any_arm_runs(tmp_path, monkeypatch):
    data = _classes(tmp_path / "data", {"a": 3, "b": 2})  # -k 2 leaves 1 image for SSL
    monkeypatch.setattr("edgessl.compare.run._run_arm",
                        lambda *a, **k: pytest.fail("an arm ran before the refusal"))
    cfg = CompareConfig(data=str(data), labels_per_class=2, folds=2, arms=("pixels", "ssl"),
                        arch="resnet_micro", image_size=16, out=str(tmp_path / "cmp"))
    with pytest.raises(DataError, match=r"the SSL arms \(ssl\) pretrain on the data folder's "
                                        r"images outside the compared labels: 1 image, "):
        compare(cfg)
    assert not (tmp_path / "cmp").exists()


def test_make_folds_counts_in_words():
    with pytest.raises(DataError, match="has 1 labeled image, fewer than --folds 2"):
        make_folds([(Path("x"), 0), (Path("y"), 1), (Path("z"), 1)], 2, 0, ("a", "b"))


# --- benchmark and predict flags -----------------------------------------------------------

@pytest.mark.parametrize("flags, words", [
    (("--plot", "{tmp}/p.txt"), "--plot writes a PNG image, and '{tmp}/p.txt' does not end in "
                                ".png; name it e.g. 'p.png'"),
    (("--batch-sizes", "1,,2"), "--batch-sizes '1,,2' has an empty item"),
    (("--batch-sizes", "1,2,"), "has an empty item"),
])
def test_benchmark_refuses_bad_outputs_and_lists_before_measuring(tmp_path, tiny_classifier,
                                                                  monkeypatch, flags, words):
    monkeypatch.setattr("edgessl.benchmark.host.benchmark_models",
                        lambda *a, **k: pytest.fail("measured before the refusal"))
    flags = [f.format(tmp=tmp_path) for f in flags]
    err = one_line_error(invoke("benchmark", tiny_classifier, *flags))
    assert words.format(tmp=tmp_path) in err
    assert not (tmp_path / "p.txt").exists()


def test_predict_refuses_top_k_for_an_embedding_model(tmp_path):
    from edgessl.backbones import BackboneSpec, create_backbone
    from edgessl.checkpoint import ModelCard
    from edgessl.models import save_model

    spec = BackboneSpec.for_images("resnet_micro", 16)
    model = save_model(create_backbone(spec).eval(),
                       ModelCard(kind="backbone", backbone=spec.to_dict(), method="simclr"),
                       tmp_path / "ssl")
    image = _images(tmp_path / "img", 1) / "0.png"
    err = one_line_error(invoke("predict", model, image, "--top-k", "3"))
    assert "--top-k applies to classifiers" in err and "embedding model" in err
    result = invoke("predict", model, image)
    assert result.exit_code == 0, result.output
    assert "embedding[" in result.output


def test_compare_refuses_folds_above_labels_per_class_before_reading_images(no_decoding):
    with pytest.raises(ConfigError, match="--folds 4 needs at least 4 labeled images of each "
                                          "class, and --labels-per-class is 3"):
        CompareConfig(labels_per_class=3, folds=4)


def test_pretrain_resume_of_a_finished_run_is_refused_before_decoding(tmp_path, digits_dir,
                                                                       monkeypatch):
    flat = _images(tmp_path / "flat", 4)
    cfg = dict(data=str(flat), backbone="resnet_micro", image_size=16, epochs=1,
               out=str(tmp_path / "out"))
    pretrain(PretrainConfig(**cfg))
    monkeypatch.setattr("edgessl.ssl.pretrain.find_images",
                        lambda *a, **k: pytest.fail("images were decoded first"))
    with pytest.raises(EdgesslError, match="has no train_state.pt: the run finished"):
        pretrain(PretrainConfig(**cfg, resume=True))


@pytest.mark.parametrize("command", ["finetune", "pretrain", "compare"])
def test_an_archive_given_as_data_is_named_as_one(tmp_path, command):
    archive = tmp_path / "dataset.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really")
    err = one_line_error(invoke(command, archive, "--out", tmp_path / "out"))
    assert "'" + str(archive) + "' is an archive, not a folder; unpack it" in err


def test_hundreds_of_one_image_classes_in_train_and_val_folders_train(tmp_path):
    root = tmp_path / "data"
    for split, start in (("train", 0), ("val", 1000)):
        for i in range(120):
            _images(root / split / f"c{i:03d}", 1, start=start + i, size=(8, 8))
    result = finetune(FinetuneConfig(data=str(root), mode="full", epochs=1,
                                     out=str(tmp_path / "out"), **TINY))
    assert result.metrics["samples"] == 120


def test_finetune_refuses_hflip_for_a_linear_probe(digits_dir):
    err = one_line_error(invoke("finetune", digits_dir, "--mode", "linear", "--hflip", "0"))
    assert "--hflip applies to --mode full" in err


def test_compare_says_which_flags_no_chosen_arm_uses(tmp_path):
    data = _classes(tmp_path / "data", {"a": 2, "b": 2})
    result = invoke("compare", data, "--arms", "pixels", "--folds", "2", "--image-size", "8",
                    "--ssl-epochs", "3", "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    assert "--ssl-epochs is used only by the ssl arm, and --arms has none" in result.output
    assert "--full-epochs" not in result.output  # not given: nothing to say


@pytest.mark.parametrize("arms, words", [("pixels,,scratch", "has an empty item"),
                                         ("pixels,", "has an empty item"),
                                         (" , ", "--arms is empty")])
def test_compare_refuses_empty_arm_items(arms, words):
    assert words in one_line_error(invoke("compare", "--arms", arms))


def test_pretrain_knn_splits_eval_data_with_the_run_seed(tmp_path, digits_dir, monkeypatch):
    """With --eval-data DATA, the kNN's val images must be the ones left out of pretraining,
    which are split with --seed (the kNN used seed 0 whatever the run's seed was)."""
    from edgessl.ssl.monitor import KnnData

    seeds = []
    real = KnnData.load

    def load(root, image_size, seed=0):
        seeds.append(seed)
        return real(root, image_size, seed)

    monkeypatch.setattr(KnnData, "load", staticmethod(load))
    data = _classes(tmp_path / "data", {"a": 6, "b": 6})
    pretrain(PretrainConfig(data=str(data), backbone="resnet_micro", image_size=16, epochs=1,
                            seed=3, eval_data=str(data), out=str(tmp_path / "out")))
    assert seeds == [3]


@pytest.mark.parametrize("layout", ["split here", "train/ and val/"])
def test_labels_per_class_over_a_class_is_refused_from_the_listing(tmp_path, no_decoding,
                                                                    layout):
    root = tmp_path / "data"
    if layout == "split here":  # b: 4 images, 1 held out as val, 3 to train
        _classes(root, {"a": 9, "b": 4})
    else:
        _classes(root / "train", {"a": 9, "b": 3})
        _classes(root / "val", {"a": 1, "b": 1})
    err = one_line_error(invoke("finetune", root, "-k", "4", "--backbone", "scratch",
                                "--image-size", "16"))
    assert "--labels-per-class 4 is larger than class 'b' (3 training images)" in err
