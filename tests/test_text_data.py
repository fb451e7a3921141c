"""Labeled text sets: the three formats, seeded splits, label subsets and bad input."""

from __future__ import annotations

import json

import pytest
from text_helpers import CLASSES, toy_sentences, write_toy_folder

from edgessl.errors import ConfigError, DataError
from edgessl.text.data import MAX_TEXT_CHARS, is_text_set, load_text_set


def test_folder_format_splits_per_class_and_is_seeded(tmp_path):
    root = write_toy_folder(tmp_path / "toy", per_class=10)
    (root / "fruit" / "more.txt").write_text("\n\n  apple pie  \n\n", encoding="utf-8")
    data = load_text_set(root, val_fraction=0.2, seed=3)
    assert data.classes == tuple(sorted(CLASSES))
    assert len(data.train) + len(data.val) == 31  # blank lines skipped
    assert "apple pie" in [t for t, _ in data.train + data.val]  # stripped
    assert sorted({y for _, y in data.val}) == [0, 1, 2]  # every class in val
    again = load_text_set(root, val_fraction=0.2, seed=3)
    assert (again.train, again.val) == (data.train, data.val)
    assert again.fingerprint() == data.fingerprint()
    assert load_text_set(root, val_fraction=0.2, seed=4).val != data.val


def test_labels_per_class_is_stratified_and_checked(tmp_path):
    data = load_text_set(write_toy_folder(tmp_path / "toy"), seed=0)
    subset = data.labels_per_class(3, seed=1)
    assert sorted(y for _, y in subset) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert subset == data.labels_per_class(3, seed=1)
    assert data.labels_per_class(None) == list(data.train)
    with pytest.raises(DataError, match="between 1 and"):
        data.labels_per_class(50)


def _csv(path, header, rows):
    lines = [",".join(header)] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_and_jsonl_give_the_same_set(tmp_path):
    rows = [(text, label) for label, texts in toy_sentences(6).items() for text in texts]
    csv = _csv(tmp_path / "set.csv", ["id", "text", "label"],
               [(str(i), t, y) for i, (t, y) in enumerate(rows)])
    jsonl = tmp_path / "set.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in rows) + "\n\n",
                     encoding="utf-8")
    a, b = load_text_set(csv), load_text_set(jsonl)
    assert a.classes == b.classes == tuple(sorted(CLASSES))
    assert (a.train, a.val) == (b.train, b.val)


def test_train_and_val_folders_are_kept(tmp_path):
    write_toy_folder(tmp_path / "root" / "train", per_class=4)
    write_toy_folder(tmp_path / "root" / "val", per_class=2)
    data = load_text_set(tmp_path / "root")
    assert (data.split_by, len(data.train), len(data.val)) == ("folders", 12, 6)


def test_long_lines_are_truncated_and_counted(tmp_path):
    root = write_toy_folder(tmp_path / "toy", per_class=4)
    (root / "fruit" / "long.txt").write_text("apple " * MAX_TEXT_CHARS, encoding="utf-8")
    data = load_text_set(root)
    assert data.truncated == 1
    assert max(len(t) for t, _ in data.train + data.val) == MAX_TEXT_CHARS


def _bad_bytes(root):
    write_toy_folder(root, per_class=4)
    (root / "fruit" / "latin1.txt").write_bytes("apple\ncaf\xe9 au lait\n".encode("latin-1"))


def _empty_class(root):
    write_toy_folder(root, per_class=4)
    (root / "empty").mkdir()
    (root / "empty" / "blank.txt").write_text("\n  \n", encoding="utf-8")


def _one_class(root):
    (root / "only").mkdir(parents=True)
    (root / "only" / "a.txt").write_text("one\ntwo\n", encoding="utf-8")


def _singleton_class(root):
    write_toy_folder(root, per_class=4)
    (root / "lonely").mkdir()
    (root / "lonely" / "a.txt").write_text("just one\n", encoding="utf-8")


BAD_INPUTS = [
    ("missing", lambda root: None, DataError, "does not exist"),
    ("no classes", lambda root: root.mkdir(), DataError, "no class subfolders"),
    ("empty class", _empty_class, DataError, "class 'empty' .* has no examples"),
    ("one class", _one_class, DataError, "needs two or more"),
    ("singleton", _singleton_class, DataError, "class 'lonely' has 1 example"),
    ("not utf-8", _bad_bytes, DataError, r"latin1.txt' line 2 is not UTF-8 .*save the file as"),
]


@pytest.mark.parametrize("setup,error,message", [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_folders_are_one_line_errors(tmp_path, setup, error, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(error, match=message) as info:
        load_text_set(root)
    assert "\n" not in str(info.value)


BAD_FILES = [
    ("set.csv", "sentence,category\nhello,a\n", DataError,
     "has no text and no label column .*its columns: sentence, category"),
    ("set.csv", "text,category\nhello,a\n", DataError, "no label column"),
    ("set.csv", "", DataError, "is empty"),
    ("set.jsonl", '{"text": "hi", "label": "a"}\nnot json\n', DataError, "line 2 is not JSON"),
    ("set.jsonl", '{"sentence": "hi"}\n', DataError, "line 1 has no 'text' and 'label' keys"),
    ("set.csv", "text,label\nhello,\n", DataError, "line 2 has an empty label"),
    ("set.csv", "text,label\nhi,a\n  ,b\nyo,a\n,a\n", DataError,
     r"line 3 has an empty text \(2 such rows\); give every row a text, or delete the row"),
    ("set.csv", "text,label\nhello, world,greeting\n", DataError,
     r"line 2 has 3 fields, the header 2; put a text that holds a comma in double quotes"),
    ("set.jsonl", '{"text": " ", "label": "a"}\n', DataError, "line 1 has an empty text;"),
    ("set.jsonl", '{"text": "hi", "label": "a"}\n{"text": null, "label": "a"}\n', DataError,
     r"line 2 has null as its 'text' \(null\), not a string; write each text as a JSON str"),
    ("set.jsonl", '{"text": 42, "label": "a"}\n', DataError, "has a number as its 'text'"),
    ("set.jsonl", '{"text": "hi", "label": null}\n', DataError,
     r"line 1 has null as its 'label' \(null\); give every row a label"),
    ("set.jsonl", '{"text": "hi", "label": ["a", "b"]}\n', DataError,
     "has a list as its 'label'"),
    ("set.jsonl", '{"text": "hi", "label": {"name": "a"}}\n', DataError,
     "has an object as its 'label'"),
    ("set.jsonl", '{"text": "hi", "label": NaN}\n', DataError,
     "has NaN or an infinity as its 'label'"),
    ("set.tsv", "text\tlabel\n", ConfigError, "is not a labeled text set"),
]


@pytest.mark.parametrize("name,content,error,message", BAD_FILES)
def test_bad_files_are_one_line_errors(tmp_path, name, content, error, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(error, match=message) as info:
        load_text_set(path)
    assert "\n" not in str(info.value)


def test_numbers_and_booleans_are_labels_as_json_writes_them(tmp_path):
    """0/1 labels are common in JSONL; they (and booleans) become "0", "1", "true"."""
    rows = [{"text": t, "label": i} for i, texts in enumerate(toy_sentences(4).values())
            for t in texts]
    rows += [{"text": f"yes {n}", "label": True} for n in range(4)]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert load_text_set(path).classes == ("0", "1", "2", "true")


def test_blank_lines_and_rows_are_no_examples(tmp_path):
    """Blank lines in .txt files and JSONL, and all-blank CSV rows, separate; no error."""
    table = _csv(tmp_path / "set.csv", ["id", "text", "label"],
                 [(str(i), t, y, "") for i, (y, ts) in enumerate(toy_sentences(4).items())
                  for t in ts] + [("", "", ""), (" ", " ", "", "")])  # and trailing commas
    assert len(load_text_set(table).train + load_text_set(table).val) == 12


def test_builtin_set_is_deterministic_and_licensed(tmp_path):
    pytest.importorskip("chatterbot_corpus")
    from edgessl.text.builtin import MIN_QUESTIONS, TOPICS, write_builtin_text

    a = write_builtin_text(tmp_path / "a")
    b = write_builtin_text(tmp_path / "b")
    data = load_text_set(a, val_fraction=0.5)
    assert data.classes == TOPICS
    counts = [sum(1 for _, y in data.train + data.val if y == i) for i in range(len(TOPICS))]
    assert min(counts) >= MIN_QUESTIONS and max(counts) <= 100
    assert load_text_set(b, val_fraction=0.5).fingerprint() == data.fingerprint()
    assert "BSD-3-Clause" in (a / "SOURCE.md").read_text()
    assert len(data.labels_per_class(8)) == 8 * len(TOPICS)


def _image_classes(root, names=("cat", "dog"), per_class=3):
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(b"\x89PNG")
    return root


@pytest.mark.parametrize("stray", ["README.txt", "LICENSE.txt", "cat/notes.txt",
                                   "cat/sub/notes.txt", "train/README.txt"])
def test_stray_txt_files_leave_an_image_set_an_image_set(tmp_path, stray):
    root = tmp_path / "data"
    if stray.startswith("train/"):
        _image_classes(root / "train")
        _image_classes(root / "val")
    else:
        _image_classes(root)
    (root / stray).parent.mkdir(parents=True, exist_ok=True)
    (root / stray).write_text("notes about the set\n", encoding="utf-8")
    assert not is_text_set(root)


def test_a_text_set_with_a_readme_is_text(tmp_path):
    root = write_toy_folder(tmp_path / "toy", per_class=4)
    (root / "README.txt").write_text("about\n", encoding="utf-8")
    assert is_text_set(root)


AMBIGUOUS = [
    ("text class beside image classes", {"notes/a.txt": 1}, r"class folders of images "
     r"\('cat'\) and of .txt files \('notes'\), so it is neither a text set nor an image set"),
    ("class folder mostly text", {"cat/a.txt": 1, "cat/b.txt": 1, "cat/c.txt": 1,
                                  "cat/d.txt": 1}, r"class folder '.*cat' holds 4 .txt files "
     "and 3 images, so it is neither a text class nor an image class; move"),
]


@pytest.mark.parametrize("extra,message", [c[1:] for c in AMBIGUOUS],
                         ids=[c[0] for c in AMBIGUOUS])
def test_ambiguous_folders_are_one_line_errors(tmp_path, extra, message):
    root = _image_classes(tmp_path / "data")
    for name in extra:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("hello\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        is_text_set(root)
    assert "\n" not in str(info.value)
