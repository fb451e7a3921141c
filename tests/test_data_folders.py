"""Image folders as users build them: linked folders, TIFFs, other formats, tiny classes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import invoke
from PIL import Image

from edgessl.data.images import find_images, image_problem, open_rgb, require_dir
from edgessl.data.labeled import load_labeled, stratified_split
from edgessl.data.tensors import load_uint8
from edgessl.errors import DataError
from edgessl.runtime.model import iter_image_files


def _images(folder: Path, n: int, suffix: str = ".png", start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(
            folder / f"{i}{suffix}")
    return folder


def _linked_dataset(tmp_path: Path) -> Path:
    """data/a and data/b are links to folders elsewhere; data/b/more links further down."""
    real = tmp_path / "real"
    _images(real / "a", 4)
    _images(real / "b", 3)
    _images(tmp_path / "elsewhere" / "more", 2, start=10)
    os.symlink(tmp_path / "elsewhere" / "more", real / "b" / "more")
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a", "b"):
        os.symlink(real / name, data / name)
    return data


# --- stratified split names the class ------------------------------------------------------

def test_split_error_names_the_class_and_the_fix(tmp_path):
    _images(tmp_path / "data" / "horse", 5)
    _images(tmp_path / "data" / "zebra", 1)
    with pytest.raises(DataError) as err:
        load_labeled(tmp_path / "data")
    assert str(err.value) == ("class 'zebra' has 1 image; splitting needs ≥ 2 per class: "
                              "add an image to 'zebra' or remove that folder")


def test_split_error_names_the_class_left_with_one_image_after_corrupt_ones(tmp_path, caplog):
    _images(tmp_path / "data" / "horse", 5)
    zebra = _images(tmp_path / "data" / "zebra", 1)
    (zebra / "cut.png").write_bytes(b"\x89PNG not really")
    (zebra / "empty.jpg").write_bytes(b"")
    with caplog.at_level("WARNING", logger="edgessl"), pytest.raises(DataError) as err:
        load_labeled(tmp_path / "data")
    assert str(err.value).startswith("class 'zebra' has 1 image;")
    assert "add an image to 'zebra'" in str(err.value)
    assert "skipped 2 unreadable" in caplog.text  # why it has only one


def test_split_without_class_names_still_works_and_says_the_label():
    samples = [(f"x{i}", i % 2) for i in range(6)] + [("y", 2)]
    with pytest.raises(DataError, match="class 2 has 1 image; .*class 2"):
        stratified_split(samples, 0.2, 0)
    train, val = stratified_split(samples[:6], 0.2, 0)
    assert len(train) + len(val) == 6


# --- folder links are followed, loops end ------------------------------------------------

def test_linked_class_folders_are_followed_everywhere(tmp_path):
    data = _linked_dataset(tmp_path)
    labeled = load_labeled(data)
    assert labeled.classes == ("a", "b")
    samples = labeled.train + labeled.val
    assert sorted(sum(y == c for _, y in samples) for c in (0, 1)) == [4, 5]
    assert all(p.is_relative_to(data) for p, _ in samples)  # paths as the user laid them out
    assert len(find_images(data)) == 9  # pretrain
    assert len(iter_image_files([data])) == 9  # predict


def test_link_cycles_end_and_each_folder_is_read_once(tmp_path):
    root = _images(tmp_path / "data" / "a", 1).parent
    os.symlink(root, root / "a" / "back_to_top")  # a cycle
    os.symlink(root / "a", root / "same_as_a")  # a second way into one folder
    os.symlink(root / "a" / "0.png", root / "linked.png")  # a linked file is an image
    assert [p.relative_to(root).as_posix() for p in find_images(root)] == ["linked.png", "a/0.png"]


def test_linked_folders_in_predict_on_the_cli(tmp_path, tiny_classifier):
    data = _linked_dataset(tmp_path)
    result = invoke("predict", tiny_classifier, data)
    assert result.exit_code == 0, result.output
    assert "holds no images" not in result.output
    assert sum(str(data / "a") in line for line in result.output.splitlines()) == 4


# --- TIFF is read, other image formats are named, never silently dropped ---------------------

def test_16_bit_and_multi_page_tiffs_are_read_as_rgb(tmp_path):
    grey = (np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 300)
    Image.fromarray(grey).save(tmp_path / "grey16.tif")  # mode "I;16"
    big_endian = Image.frombytes("I;16B", (16, 12), grey.astype(">u2").tobytes())
    big_endian.save(tmp_path / "grey16b.tiff")
    pages = [Image.new("RGB", (16, 12), colour) for colour in ("red", "green")]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    assert Image.open(tmp_path / "grey16.tif").mode == "I;16"
    assert [p.name for p in find_images(tmp_path)] == ["grey16.tif", "grey16b.tiff", "pages.tif"]
    for name in ("grey16.tif", "grey16b.tiff"):
        rgb = np.asarray(open_rgb(tmp_path / name))
        assert rgb.shape == (12, 16, 3) and rgb[..., 0].max() == grey.max() // 256
        assert (rgb[..., 0] == rgb[..., 2]).all()
    assert tuple(np.asarray(open_rgb(tmp_path / "pages.tif"))[0, 0]) == (255, 0, 0)  # page 1
    assert tuple(load_uint8(tmp_path / "grey16.tif", 8).shape) == (3, 8, 8)


def _others(folder: Path, n: int, suffix: str, start: int = 0) -> Path:
    """Files of a format edgessl does not read (their content does not matter: the extension
    decides, and Pillow cannot write these)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        (folder / f"{i}{suffix}").write_bytes(b"\x00" * 16)
    return folder


def _with_other_files(folder: Path) -> Path:
    _others(folder, 2, ".heic", start=50)
    _others(folder, 1, ".dng", start=60)
    for name in ("README", "notes.txt", "meta.json", "labels.csv", ".DS_Store", "._0.heic",
                 "._1.png"):
        (folder / name).write_text("not an image")
    return folder


def test_every_format_pillow_decodes_by_itself_is_read(tmp_path):
    """GIF (first frame of an animation), netpbm, TGA, JPEG 2000 and .jfif are read, not
    skipped: each decodes to the image it holds."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    folder = tmp_path / "formats"
    folder.mkdir()
    for ext, fmt in ((".ppm", "PPM"), (".pnm", "PPM"), (".tga", "TGA"), (".jp2", "JPEG2000"),
                     (".j2k", "JPEG2000"), (".jfif", "JPEG")):
        Image.fromarray(pixels).save(folder / f"x{ext}", format=fmt)
    Image.fromarray(pixels[..., 0]).save(folder / "x.pgm")
    Image.fromarray(pixels[..., 0] > 127).save(folder / "x.pbm")
    frames = [Image.new("RGB", (16, 12), colour) for colour in ("red", "blue")]
    frames[0].save(folder / "x.gif", save_all=True, append_images=frames[1:])
    found = [p.name for p in find_images(folder)]
    assert sorted(found) == sorted(f"x{e}" for e in (".ppm", ".pnm", ".tga", ".jp2", ".j2k",
                                                      ".jfif", ".pgm", ".pbm", ".gif"))
    for name in found:
        rgb = np.asarray(open_rgb(folder / name))
        assert rgb.shape == (12, 16, 3), name
    for name in ("x.ppm", "x.tga", "x.pnm"):  # lossless: the very pixels
        assert (np.asarray(open_rgb(folder / name)) == pixels).all(), name
    assert (np.asarray(open_rgb(folder / "x.pgm"))[..., 1] == pixels[..., 0]).all()
    assert tuple(np.asarray(open_rgb(folder / "x.gif"))[0, 0]) == (255, 0, 0)  # frame 1
    assert np.abs(np.asarray(open_rgb(folder / "x.jp2")).astype(int) - pixels).mean() < 8


def test_image_files_of_other_formats_are_counted_once_per_load(tmp_path, caplog):
    data = tmp_path / "data"
    for name in ("cat", "dog"):
        _with_other_files(_images(data / name, 3))
    with caplog.at_level("INFO", logger="edgessl"):
        load_labeled(data)
    lines = [r.getMessage() for r in caplog.records if "not images edgessl reads" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "skipped 6 files that are not images edgessl reads (.heic: 4, .dng: 2)" in lines[0]
    assert "supported: .jpg" in lines[0] and ".tiff" in lines[0]
    for other in ("README", ".txt", ".json", ".csv", "DS_Store"):
        assert other not in caplog.text


def test_folder_of_only_other_formats_says_why_it_is_empty(tmp_path):
    folder = _with_other_files(tmp_path / "gifs")
    with pytest.raises(DataError) as err:
        find_images(folder)
    message = str(err.value)
    assert message.startswith(f"no usable image in '{folder}': it holds 3 files that are not "
                              "images edgessl reads (.heic: 2, .dng: 1)")
    assert "convert them to one of .jpg" in message


def test_class_folder_of_only_other_formats_says_why_it_is_empty(tmp_path):
    _images(tmp_path / "data" / "cat", 3)
    _others(tmp_path / "data" / "dog", 2, ".avif")
    with pytest.raises(DataError, match=r"class folder '.*dog' holds no usable image, only 2 "
                                        r"files that are not images edgessl reads \(\.avif: 2\)"):
        load_labeled(tmp_path / "data")


# --- broken links ----------------------------------------------------------------------

def test_broken_link_is_named_as_such(tmp_path, caplog):
    _images(tmp_path / "imgs", 1)
    target = tmp_path / ("gone" * 20) / "x.png"
    os.symlink(target, tmp_path / "imgs" / "x.png")
    assert image_problem(tmp_path / "imgs" / "x.png") == (
        f"broken link (its target '{target}' does not exist)")
    with caplog.at_level("WARNING", logger="edgessl"):
        assert len(find_images(tmp_path / "imgs")) == 1
    assert "1 broken link;" in caplog.text and f"'{target}' does not exist)" in caplog.text
    os.symlink(tmp_path / "nowhere", tmp_path / "data")
    with pytest.raises(DataError, match="'.*data' is a broken link \\(its target '.*nowhere'"):
        require_dir(tmp_path / "data")


def test_long_decoder_messages_keep_their_quotes_balanced(tmp_path):
    (tmp_path / "x.png").symlink_to(tmp_path / "x.png")  # a link to itself: a loop
    problem = image_problem(tmp_path / "x.png")
    assert problem.startswith("not readable (") and problem.count("'") % 2 == 0


def test_every_command_says_the_same_thing_about_a_folder_without_images(tmp_path):
    """predict's folders and compare's --unlabeled use the loader's message: it names the
    formats found that edgessl does not read, not only the ones it looked for."""
    from edgessl.data.images import image_files_or_fail
    from edgessl.runtime.model import iter_image_files

    folder = _others(tmp_path / "phone", 2, ".heic")
    with pytest.raises(DataError) as err:
        iter_image_files([folder])
    assert str(err.value).startswith(f"no usable image in folder '{folder}': it holds 2 files "
                                     "that are not images edgessl reads (.heic: 2)")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no usable image in --unlabeled '.*empty' \(looked "
                                        r"for \.jpg"):
        image_files_or_fail(tmp_path / "empty", "--unlabeled")
    _images(folder, 1)
    assert [p.name for p in iter_image_files([folder])] == ["0.png"]
