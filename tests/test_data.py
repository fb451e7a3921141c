"""Data stage: digits writer, labeled/unlabeled loading, stratified subsets, bad input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgessl.data.digits import write_digits
from edgessl.data.images import find_images
from edgessl.data.labeled import labels_per_class, load_labeled
from edgessl.data.preprocess import preprocess
from edgessl.errors import DataError, OutputExistsError
from edgessl.ssl.pretrain import unlabeled_root


def test_digits_are_real_stratified_and_32px(tmp_path):
    root = write_digits(tmp_path / "d")
    data = load_labeled(root)
    assert data.split_by == "folders"
    assert data.classes == tuple(str(i) for i in range(10))
    assert len(data.train) + len(data.val) == 1797
    val_counts = Counter(y for _, y in data.val)
    assert all(34 <= c <= 38 for c in val_counts.values())  # 20% of ~180 per class
    img = Image.open(data.train[0][0])
    assert img.size == (32, 32) and img.mode == "RGB"
    assert np.asarray(img).std() > 20  # real strokes, not a blank image
    assert not set(data.train) & set(data.val)


def test_digits_split_is_seeded(tmp_path):
    a = load_labeled(write_digits(tmp_path / "a", image_size=8, seed=1))
    b = load_labeled(write_digits(tmp_path / "b", image_size=8, seed=1))
    assert [p.name for p, _ in a.val] == [p.name for p, _ in b.val]


def test_digits_refuses_to_overwrite(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--force"):
        write_digits(out, image_size=8)
    assert (out / "keep.txt").read_text() == "mine"


def _image_folder(root: Path, per_class: int = 6, classes=("cat", "dog")) -> Path:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(
                root / c / f"{i}.png")
    return root


def test_single_image_folder_is_split_stratified(tmp_path):
    data = load_labeled(_image_folder(tmp_path / "pets", per_class=10), val_fraction=0.2)
    assert data.split_by == "seeded split"
    assert Counter(y for _, y in data.val) == {0: 2, 1: 2}
    assert len(data.train) == 16


def test_corrupt_images_are_skipped_and_counted(tmp_path, caplog):
    root = _image_folder(tmp_path / "pets")
    (root / "cat" / "broken.jpg").write_bytes(b"not an image at all")
    (root / "dog" / "empty.png").write_bytes(b"")
    with caplog.at_level("WARNING", logger="edgessl"):
        images = find_images(root)
    assert len(images) == 12
    assert "skipped 2" in caplog.text


def test_grayscale_rgba_palette_are_converted(tmp_path):
    for mode in ("L", "RGBA", "P", "I;16"):
        path = tmp_path / f"{mode.replace(';', '')}.png"
        Image.new(mode, (20, 10)).save(path)
        assert preprocess(path, 8, (0, 0, 0), (1, 1, 1)).shape == (3, 8, 8)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: p, "no class subfolders"),
        (lambda p: _image_folder(p / "one", classes=("only",)), "only one class"),
    ],
)
def test_bad_labeled_folders(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        load_labeled(make(tmp_path))


def test_folder_without_images_names_the_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=str(tmp_path)):
        find_images(tmp_path)


def test_labels_per_class_is_stratified_seeded_and_bounded(digits_dir):
    data = load_labeled(digits_dir)
    subset = labels_per_class(data.train, 5, seed=3, classes=data.classes)
    assert Counter(y for _, y in subset) == {c: 5 for c in range(10)}
    assert subset == labels_per_class(data.train, 5, seed=3, classes=data.classes)
    assert subset != labels_per_class(data.train, 5, seed=4, classes=data.classes)
    with pytest.raises(DataError, match="larger than class"):
        labels_per_class(data.train, 10_000, seed=0, classes=data.classes)


def test_pretraining_uses_train_split_only(digits_dir):
    assert unlabeled_root(digits_dir) == digits_dir / "train"
