"""The command line's surface: one-line usage errors, --version, help text, escapes of untrusted
text at the output boundary, and switches a file may not set."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import typer
from cli_helpers import invoke, one_line_error

from edgessl import __version__
from edgessl.cli import app

ESCAPES = ("\x1b]0;pwned\x07", "\x1b[2J", "\x9b6n", "\u202e", "\x7f", "\r")


def _leaf_commands():
    """(argv path, click command) for every command, subcommands of groups included."""
    found = []

    def walk(group, path):
        for name, command in sorted(group.commands.items()):
            if hasattr(command, "commands"):
                walk(command, [*path, name])
            else:
                found.append(([*path, name], command))

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _leaf_commands()


def _raw_escape_free(text: str) -> bool:
    return not any(c in text for c in "\x1b\x07\x9b\u202e\x7f\r")


# --- usage errors: one line, exit 2, click's suggestion kept, where to get help ---------------

@pytest.mark.parametrize("args, expected", [
    (["pretrain", "--epoch", "3"], "no such option: --epoch"),
    (["pretrain", "--epochs", "abc"], "'--epochs'"),
    (["pretrain", "--config"], "'--config' requires an argument"),
    (["predict"], "missing argument 'MODEL'"),
    (["export", "--format"], "'--format' requires an argument"),
    (["pretrian"], "Did you mean 'pretrain'?"),
    (["export", "m", "--foramt", "onnx"], "Did you mean --format?"),
    (["data", "digit", "x"], "Did you mean 'digits'?"),
    (["data", "digits", "x", "--image-size"], "'--image-size' requires an argument"),
    (["--bogus"], "no such option: --bogus"),
])
def test_usage_errors_are_one_line_with_the_hint_and_where_to_get_help(args, expected):
    line = one_line_error(invoke(*args))
    assert expected in line
    command = "edgessl " + " ".join(a for a in args[:2] if not a.startswith("-")
                                    and a in {"pretrain", "predict", "export", "data", "digits"})
    assert f"ee '{command.strip()} --help'" in line  # "; see ..." or "? See ..."


def test_usage_error_text_from_the_command_line_is_escaped():
    line = one_line_error(invoke("pretrain", "--x\x1b[2J"))
    assert "\\x1b[2J" in line and _raw_escape_free(line)


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"edgessl {__version__}"


def test_debug_is_per_invocation(tmp_path):
    """--debug of one run (traceback) does not leak into the next: no global flag."""
    assert invoke("--debug", "pretrain", tmp_path / "missing").exception is not None
    assert "does not exist" in one_line_error(invoke("pretrain", tmp_path / "missing"))


# --- help: plain text, every default shown ---------------------------------------------------

def _option_blocks(help_text: str) -> dict[str, str]:
    """The Options/Arguments records of a rendered help: first line's names -> whole record."""
    blocks, current = {}, None
    for line in help_text.splitlines():
        if re.match(r"  \S", line):
            current = line.strip()
            blocks[current] = line
        elif current and line.startswith("   "):
            blocks[current] += " " + line.strip()
        else:
            current = None
    return {k: " ".join(v.split()) for k, v in blocks.items()}


def _block_of(blocks: dict[str, str], opt: str) -> str:
    for head, text in blocks.items():
        if opt in re.split(r"[ ,/]+", head):
            return text
    raise AssertionError(f"{opt} is not in the help")


def _has_default(param) -> bool:
    if isinstance(param.show_default, str):
        return True
    if param.default is None or param.default == [] or param.show_default is False:
        return False
    return not (getattr(param, "is_flag", False) and not param.secondary_opts
                and param.default is False)  # a plain on/off switch that is off


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_is_plain_text_and_shows_every_default(path, command):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    text = result.output
    for line in text.splitlines():
        assert not line.rstrip().endswith(" ."), line
    for bad in ("[default: (", "<list[", "╭", "{"):
        assert bad not in text, bad
    blocks = _option_blocks(text)
    for param in command.params:
        if param.name == "help" or param.hidden:
            continue
        names = (param.opts if param.param_type_name == "option"
                 else [param.metavar or param.name.upper()])
        block = _block_of(blocks, names[-1])
        # defaults are declared (default= or show_default=), never written into the help text
        assert not re.search(r"[\[(]default", param.help or "", re.I), (names, param.help)
        if _has_default(param):
            assert "[default: " in block or "; default: " in block, block


def test_pretrain_help_shows_pretrain_config_defaults():
    """pretrain's options default to None (a recipe may set them); the help shows the values
    PretrainConfig fills in."""
    import dataclasses

    from edgessl.ssl.pretrain import PretrainConfig

    command = dict((" ".join(p), c) for p, c in COMMANDS)["pretrain"]
    blocks = _option_blocks(invoke("pretrain", "--help").output)
    checked = 0
    for field in dataclasses.fields(PretrainConfig):
        param = next((p for p in command.params if p.name == field.name), None)
        if param is None or field.default is None or isinstance(field.default, bool) \
                or not isinstance(field.default, (int, float, str)):
            continue
        shown = re.search(r"\[default: ([^\]]+)\]", _block_of(blocks, param.opts[-1]))
        assert shown, field.name
        value = shown.group(1).split(";")[0].strip()  # "simclr; simcse for text"
        assert (float(value) == field.default if isinstance(field.default, (int, float))
                else value == field.default), (field.name, value, field.default)
        checked += 1
    assert checked >= 10


# --- untrusted text is escaped where it is printed -------------------------------------------

def _tiny_onnx(path, labels):
    """A 3-class ONNX classifier on 8 px inputs (mean colour -> scores), with edgessl metadata."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["logits"])]
    model = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"labels": list(labels), "image_size": 8, "mean": [0.5] * 3, "std": [0.25] * 3}
    helper.set_model_props(model, {"edgessl": json.dumps(meta)})
    onnx.save(model, str(path))
    return path


def _red_png(path):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), (250, 10, 10), np.uint8)).save(path)
    return path


def test_predict_escapes_class_labels_but_json_keeps_them(tmp_path):
    labels = ["red" + "".join(ESCAPES), "green\x1b[2J", "blue\u202etxt.exe"]
    model = _tiny_onnx(tmp_path / "m.onnx", labels)
    image = _red_png(tmp_path / "a.png")
    result = invoke("predict", model, image, "--top-k", "3")
    assert result.exit_code == 0, result.output
    assert _raw_escape_free(result.output)
    assert "red\\x1b]0;pwned\\x07\\x1b[2J\\x9b6n\\u202e\\x7f\\r" in result.output
    assert "blue\\u202etxt.exe" in result.output
    assert len(result.output.strip().splitlines()) == 1  # one image, one line
    out = tmp_path / "p.json"
    assert invoke("predict", model, image, "--json", out).exit_code == 0
    assert json.loads(out.read_text())["predictions"][0]["label"] == labels[0]  # exact text


def test_predict_escapes_file_names(tmp_path):
    model = _tiny_onnx(tmp_path / "m.onnx", ["a", "b", "c"])
    image = _red_png(tmp_path / "x\x1b[2J\x9b.png")
    result = invoke("predict", model, image)
    assert result.exit_code == 0, result.output
    assert _raw_escape_free(result.output) and "x\\x1b[2J\\x9b.png" in result.output


def test_bundle_runner_escapes_class_labels(tmp_path, capsys):
    """The deploy bundle's run.py prints predictions too: same escapes, same boundary."""
    from edgessl.runtime import bundle_cli as runner

    _tiny_onnx(tmp_path / "m.onnx", ["red\x1b]0;pwned\x07", "b", "c"])
    (tmp_path / "bundle.json").write_text(json.dumps({
        "format": runner.BUNDLE_FORMAT, "runtime": "onnxruntime", "device": "CPU",
        "models": [{"name": "m\x1b[2J", "path": "m.onnx"}]}))
    assert runner.main(["predict", str(_red_png(tmp_path / "a.png"))], tmp_path) == 0
    out = capsys.readouterr().out
    assert "red\\x1b]0;pwned\\x07" in out and _raw_escape_free(out)
    assert runner.main(["predict", "--model", "nope\x1b[2J", "x"], tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and _raw_escape_free(err)


def test_log_and_error_lines_escape_file_names(tmp_path):
    folder = tmp_path / "d\x1b]0;t\x07"
    folder.mkdir()
    (folder / "bad\x1b[2J\u202e.png").write_bytes(b"not a png")
    result = invoke("pretrain", folder, "--image-size", "8")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("skipped 1 unreadable")  # the log line
    assert lines[1].startswith("error: no usable image")
    assert _raw_escape_free(result.output)
    assert "bad\\x1b[2J\\u202e.png" in lines[0] and "d\\x1b]0;t\\x07" in lines[1]


def test_error_line_escapes_and_stays_one_line(tmp_path):
    line = one_line_error(invoke("pretrain", tmp_path / "no\nsuch\x1b[2J\x9bdir"))
    assert "no\\nsuch\\x1b[2J\\x9bdir" in line and _raw_escape_free(line)


# --- destructive switches come from the command line only -------------------------------------

@pytest.mark.parametrize("key", ["force", "resume"])
def test_recipe_may_not_set_destructive_switches(tmp_path, key):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'{key} = true\nout = "{victim}"\nepochs = 1\nimage_size = 8\n')
    line = one_line_error(invoke("pretrain", tmp_path, "--config", recipe))
    assert f"'{key}'" in line and f"--{key}" in line and "command line" in line
    assert (victim / "precious.txt").read_text() == "keep me"


def test_device_profile_may_not_set_force(tmp_path):
    from edgessl.devices.profile import load_profile
    from edgessl.errors import ConfigError

    profile = tmp_path / "p.toml"
    profile.write_text("force = true\n")
    with pytest.raises(ConfigError, match="unknown key 'force'"):
        load_profile(str(profile))


# --- what a path is, when it is not the file or folder asked for ------------------------------

@pytest.mark.parametrize("target, expected", [
    ("folder", "is a folder, not a file"),
    ("/dev/null", "is not a regular file"),
    ("empty", "is empty"),
    ("missing", "does not exist"),
])
def test_config_path_says_what_it_is(tmp_path, target, expected):
    paths = {"folder": tmp_path, "empty": tmp_path / "e.toml", "missing": tmp_path / "m.toml",
             "/dev/null": "/dev/null"}
    (tmp_path / "e.toml").touch()
    line = one_line_error(invoke("pretrain", "--config", paths[target]))
    assert expected in line and "--config" in line


@pytest.mark.parametrize("target, expected", [
    ("folder", "is a folder, not a file"), ("/dev/null", "is not a regular file")])
def test_profile_path_says_what_it_is(tmp_path, target, expected):
    from edgessl.config import load_toml
    from edgessl.errors import ConfigError

    with pytest.raises(ConfigError, match=expected):
        load_toml(tmp_path if target == "folder" else target)


def _split_root(tmp_path, digits_dir, splits):
    root = tmp_path / "root"
    for name in splits:
        shutil.copytree(digits_dir / "val", root / name)
    return root


@pytest.mark.parametrize("splits, expected", [
    (["train"], "has train/ but no val/ folder"),
    (["val"], "has val/ but no train/ folder"),
    (["test", "valid"], "no train/ folder"),
])
def test_labeled_root_with_a_split_missing(tmp_path, digits_dir, splits, expected):
    """Split folders are not classes (once, 'train' and 'valid' were trained as two)."""
    from edgessl.data.labeled import load_labeled
    from edgessl.errors import DataError

    with pytest.raises(DataError, match=re.escape(expected)):
        load_labeled(_split_root(tmp_path, digits_dir, splits))


def test_labeled_root_mixing_splits_and_classes(tmp_path, digits_dir):
    from edgessl.data.labeled import load_labeled
    from edgessl.errors import DataError

    root = _split_root(tmp_path, digits_dir, ["train"])
    shutil.copytree(digits_dir / "val" / "3", root / "cat")
    with pytest.raises(DataError, match=re.escape("mixes split folders (train/) with class "
                                                  "folders (cat)")):
        load_labeled(root)


def test_finetune_on_a_train_only_root_is_one_line(tmp_path, digits_dir):
    line = one_line_error(invoke("finetune", _split_root(tmp_path, digits_dir, ["train"])))
    assert "has train/ but no val/ folder" in line and "add val/" in line


@pytest.mark.parametrize("held_out", ["valid", "validation"])
def test_labeled_root_with_valid_folder_is_split_by_folders(tmp_path, digits_dir, held_out):
    from edgessl.data.labeled import load_labeled

    data = load_labeled(_split_root(tmp_path, digits_dir, ["train", held_out]))
    assert data.split_by == "folders" and len(data.classes) == 10


def test_a_text_model_where_an_image_checkpoint_is_needed_says_what_to_run():
    from edgessl.checkpoint import ModelCard
    from edgessl.errors import CheckpointError

    with pytest.raises(CheckpointError, match="'m/clf' is an edgessl text classifier, not an "
                                              "image checkpoint: export it first"):
        ModelCard.from_dict({"format": "edgessl-text-classifier/1"}, "m/clf/card.json")
    with pytest.raises(CheckpointError, match="text encoder .* --backbone m/enc"):
        ModelCard.from_dict({"format": "edgessl-text-encoder/1"}, "m/enc/card.json")
    with pytest.raises(CheckpointError, match="not an edgessl model card"):
        ModelCard.from_dict({"format": "other/1"}, "m/x/card.json")


def test_an_unknown_backbone_lists_the_pretrained_starts_not_only_scratch(digits_dir,
                                                                           tmp_path):
    line = one_line_error(invoke("finetune", digits_dir, "--backbone", "nope", "--out",
                                 tmp_path / "m"))
    assert "unknown backbone 'nope'" in line and "efficientnet_lite0.in1k" in line
    assert "scratch:NAME" in line and "Choose from: scratch" not in line
    line = one_line_error(invoke("finetune", digits_dir, "--backbone", "timm:resnet51",
                                 "--out", tmp_path / "m"))
    assert "Did you mean 'resnet5" in line


def test_predict_refuses_a_batch_size_below_one_before_any_work(tiny_classifier, digits_dir):
    image = next((digits_dir / "val").rglob("*.png"))
    line = one_line_error(invoke("predict", tiny_classifier, image, "--batch-size", "0"))
    assert "--batch-size" in line and "predicting" not in line


def test_predict_leaves_out_an_unreadable_image_of_a_folder_but_not_a_named_one(
        tiny_classifier, digits_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for path in sorted((digits_dir / "val").rglob("*.png"))[:3]:
        shutil.copy(path, folder / path.name)
    (folder / "zz_bad.png").write_bytes(b"not an image")
    result = invoke("predict", tiny_classifier, folder, "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert len(data["predictions"]) == 3
    assert [s["image"] for s in data["skipped"]] == [str(folder / "zz_bad.png")]
    line = one_line_error(invoke("predict", tiny_classifier, folder / "zz_bad.png"))
    assert "zz_bad.png" in line and "not a readable image" in line


@pytest.mark.parametrize("module", ["edgessl.runtime.bundle_cli", "edgessl.text.bundle_cli"])
def test_a_bundle_usage_error_is_one_line(module, capsys):
    import importlib

    parser = importlib.import_module(module).parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["predict", "--top-k", "a"])
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: argument --top-k")
    assert "see 'python run.py predict --help'" in err[0]


def test_an_output_that_cannot_be_written_names_its_own_option(tiny_classifier, digits_dir,
                                                               tmp_path):
    (tmp_path / "afile").write_text("")
    image = next((digits_dir / "val").rglob("*.png"))
    line = one_line_error(invoke("predict", tiny_classifier, image, "--json",
                                 tmp_path / "afile" / "x.json"))
    assert "is a file, not a folder; choose another --json" in line
