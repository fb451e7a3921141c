"""Every number and every field: a valid config or an edgessl error that names the field.

The configs declare each numeric field's valid range next to its type (``Annotated[int,
Range(...)]``) and one validator (``edgessl.config.check_fields``) enforces them in
``__post_init__``, so the Python API, the flags, the recipes and every file edgessl reads are
covered alike. These tests drive every numeric field of every config with hostile values, and
the CLI with the cases a tester found.
"""

from __future__ import annotations

import json
import math
import typing

import pytest
from cli_helpers import flat_digits, invoke, one_line_error

from edgessl.artifact import ArtifactMeta
from edgessl.benchmark.host import BenchmarkConfig
from edgessl.checkpoint import CARD_FILE, ModelCard, read_card
from edgessl.config import FieldError, Range, _fields, field_label, from_dict
from edgessl.deploy.bundle_config import DeployConfig
from edgessl.deploy.remote_config import RemoteConfig
from edgessl.devices.profile import DeviceProfile
from edgessl.errors import CheckpointError, ConfigError
from edgessl.export.api import ExportConfig
from edgessl.export.schemes import QuantizeConfig
from edgessl.finetune.train import FinetuneConfig
from edgessl.quickstart import QuickstartConfig
from edgessl.ssl import METHODS
from edgessl.ssl.augment import AugmentConfig
from edgessl.ssl.pretrain import PretrainConfig

CARD = {"kind": "classifier",
        "backbone": {"name": "resnet_micro", "image_size": 16, "small_stem": True},
        "method": "scratch", "labels": ["a", "b"], "format": "edgessl-checkpoint/1"}
META = {"labels": ["a", "b"], "image_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}
# Each config with the smallest table that builds it (required fields only).
CONFIGS = {
    PretrainConfig: {}, FinetuneConfig: {}, ExportConfig: {}, QuantizeConfig: {},
    BenchmarkConfig: {}, DeployConfig: {}, RemoteConfig: {}, QuickstartConfig: {},
    AugmentConfig: {}, DeviceProfile: {}, ArtifactMeta: META, ModelCard: CARD,
    **{METHODS.get(name).Config: {} for name in METHODS.names()},
}
HOSTILE = (0, -1, math.nan, math.inf, -math.inf, 1e12, 10**12, 10**400)


def _is_number_type(annotation) -> bool:
    args = typing.get_args(annotation) or (annotation,)
    return any(a in (int, float) for a in args if a is not Ellipsis)


def _numeric_fields():
    for cls, base in CONFIGS.items():
        for name, (annotation, rng) in _fields(cls).items():
            inner = typing.get_args(annotation)
            if _is_number_type(annotation) or (typing.get_origin(annotation) is tuple
                                               and _is_number_type(inner[0])):
                yield pytest.param(cls, base, name, annotation, rng,
                                   id=f"{cls.__name__}.{name}")


NUMERIC_FIELDS = list(_numeric_fields())


def _shaped(annotation, value):
    """``value`` as the field's shape: a scalar, or a tuple of as many items as it takes."""
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        return [value] * (1 if Ellipsis in args else len(args))
    return value


def test_the_fields_list_is_complete():
    names = {p.id for p in NUMERIC_FIELDS}
    assert {"PretrainConfig.image_size", "FinetuneConfig.probe_c", "AugmentConfig.crop_scale",
            "ExportConfig.static_batch", "DeviceProfile.threads", "ModelCard.std",
            "ArtifactMeta.image_size", "SimCLRConfig.temperature"} <= names
    assert len(names) > 80


@pytest.mark.parametrize("cls, base, name, annotation, rng", NUMERIC_FIELDS)
def test_every_numeric_field_declares_its_range(cls, base, name, annotation, rng):
    assert isinstance(rng, Range), f"{cls.__name__}.{name} has no Range next to its type"
    assert rng.finite and (rng.le is not None or rng.lt is not None or name == "grad_clip"), \
        f"{cls.__name__}.{name} has no upper bound"


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize("cls, base, name, annotation, rng", NUMERIC_FIELDS)
def test_hostile_numbers_give_a_config_or_an_error_naming_the_field(cls, base, name,
                                                                   annotation, rng, value):
    data = {**base, name: _shaped(annotation, value)}
    try:
        config = from_dict(cls, data, where="test.toml")
    except ConfigError as exc:
        message = str(exc)
        assert f"key '{name}'" in message and message.startswith("test.toml: "), message
        assert "\n" not in message
    else:  # accepted: only where the value is in the declared range
        assert isinstance(config, cls)
        assert isinstance(value, int) or math.isfinite(value)
    if not isinstance(value, int) or abs(value) < 2**63:  # the Python API, same check
        try:
            cls(**{**from_dict(cls, base).__dict__, name: _shaped(annotation, value)})
        except FieldError as exc:
            assert exc.field == name and "\n" not in str(exc)
            assert str(exc).startswith(field_label(cls, name)) or cls is DeviceProfile


@pytest.mark.parametrize("cls, field, value, expected", [
    (PretrainConfig, "image_size", 1, "--image-size must be ≥ 8 and ≤ 4096 (pixels), got 1"),
    (PretrainConfig, "image_size", 10000, "--image-size must be ≥ 8 and ≤ 4096"),
    (PretrainConfig, "lr", math.nan, "--lr must be a finite number, > 0"),
    (PretrainConfig, "grad_clip", math.nan, "--grad-clip must be a finite number, ≥ 0"),
    (PretrainConfig, "seed", -1, "--seed must be ≥ 0"),
    (FinetuneConfig, "lr", -1.0, "--lr must be > 0"),
    (FinetuneConfig, "probe_c", math.nan, "--probe-c must be a finite number"),
    (FinetuneConfig, "hflip", 2.0, "--hflip must be ≥ 0 and ≤ 1"),
    (ExportConfig, "static_batch", 0, "--static-batch must be ≥ 1"),
    (BenchmarkConfig, "time_budget_s", math.inf, "--time must be a finite number"),
    (BenchmarkConfig, "async_requests", -1, "--requests must be ≥ 0"),
    (QuickstartConfig, "pretrain_epochs", 0, "--epochs must be ≥ 1"),
    (AugmentConfig, "hflip", 2.0, "augment hflip must be ≥ 0 and ≤ 1"),
    (AugmentConfig, "crop_scale", (0.9, 0.1), "crop_scale must be (low, high) with "
                                              "0 < low ≤ high ≤ 1, got (0.9, 0.1)"),
    (METHODS.get("simclr").Config, "temperature", -1.0, "simclr temperature must be > 0"),
    (QuantizeConfig, "max_drop", math.nan, "--max-drop must be a finite number"),
])
def test_python_api_errors_name_the_option(cls, field, value, expected):
    with pytest.raises(ConfigError) as info:
        cls(**{field: value})
    assert expected in str(info.value)


def test_flags_and_files_are_named_as_the_user_wrote_them():
    with pytest.raises(ConfigError) as info:
        from_dict(PretrainConfig, {"image_size": 1, "epochs": 0}, where="recipe 'r.toml'",
                  flags={"image_size"})
    assert str(info.value).startswith("--image-size must be")  # a flag: its CLI spelling
    with pytest.raises(ConfigError) as info:
        from_dict(PretrainConfig, {"epochs": 0}, where="recipe 'r.toml'", flags={"image_size"})
    assert str(info.value).startswith("recipe 'r.toml': key 'epochs' must be ≥ 1")


@pytest.mark.parametrize("data, expected", [
    ({"crop_scale": [0.5]}, "key 'crop_scale' must be tuple[float, float], got list (0.5)"),
    ({"crop_scale": [0.2, 0.5, 1.0]}, "key 'crop_scale' must be tuple[float, float]"),
    ({"rotate": 10**400}, "key 'rotate' must be a finite number, got an integer of 401 digits"),
])
def test_shapes_and_huge_integers_are_config_errors(data, expected):
    with pytest.raises(ConfigError, match="^t: ") as info:
        from_dict(AugmentConfig, data, where="t")
    assert expected in str(info.value)


def test_ignore_takes_valid_regular_expressions():
    with pytest.raises(ConfigError) as info:
        QuantizeConfig(ignored=("conv1", "["))
    assert str(info.value).startswith("--ignore takes regular expressions of layer names; '['")
    assert QuantizeConfig(ignored=(r"conv\d+", "fc")).ignored == (r"conv\d+", "fc")


# --- files edgessl reads ------------------------------------------------------------------

@pytest.mark.parametrize("change, expected", [
    ({"std": [0.2, 0, 0.2]}, "key 'std' must be > 0"),
    ({"std": [0.2, 0.2]}, "key 'std' must be tuple[float, float, float]"),
    ({"mean": [0.5, "x", 0.5]}, "key 'mean' must be"),
    ({"mean": [0.5, math.nan, 0.5]}, "key 'mean' must be a finite number"),
    ({"kind": "detector"}, "key 'kind' must be one of backbone, classifier"),
    ({"kind": None}, "key 'kind' must be str"),
    ({"backbone": {"name": "resnet_micro", "image_size": 100000}},
     "key 'backbone.image_size' must be ≥ 1 and ≤ 4096"),
    ({"backbone": {"name": "resnet_micro", "image_size": "16"}},
     "key 'backbone.image_size' must be an integer"),
    ({"backbone": {"image_size": 16}}, "key 'backbone.name' must be the backbone's name"),
    ({"backbone": {"name": "resnet_micro", "image_size": 16}},
     "key 'backbone.small_stem' must be true or false"),
    ({"backbone": {"name": "resnet_micro", "image_size": 16, "small_stem": False, "x": 1}},
     "key 'backbone.x' is not a backbone field"),
    ({"backbone": [1, 2]}, "key 'backbone' must be dict"),
    ({"labels": "ab"}, "key 'labels' must be tuple[str, ...]"),
    ({"labels": []}, "key 'labels' must list the classifier's class names"),
    ({"training": 3}, "key 'training' must be dict"),
    ({"data": {"val_fraction": 1.5}}, "key 'data.val_fraction' must be > 0 and < 1"),
    ({"data": {"val_fraction": "x"}}, "key 'data.val_fraction' must be float"),
    ({"data": {"seed": -1}}, "key 'data.seed' must be ≥ 0"),
    ({"data": {"path": 3}}, "key 'data.path' must be str"),
    ({"method": None}, "key 'method' must be str"),
])
def test_damaged_cards_are_refused_naming_file_and_field(tmp_path, change, expected):
    (tmp_path / CARD_FILE).write_text(json.dumps({**CARD, **change}), encoding="utf-8")
    with pytest.raises(CheckpointError) as info:
        read_card(tmp_path)
    message = str(info.value)
    assert f"model card '{tmp_path / CARD_FILE}'" in message and expected in message, message
    assert "\n" not in message


@pytest.mark.parametrize("missing", ["kind", "backbone", "method"])
def test_a_card_missing_a_required_field_names_it(tmp_path, missing):
    (tmp_path / CARD_FILE).write_text(json.dumps({k: v for k, v in CARD.items()
                                                  if k != missing}))
    with pytest.raises(CheckpointError, match=f"missing key '{missing}'"):
        read_card(tmp_path)


def test_a_card_with_unknown_keys_from_a_newer_version_still_reads(tmp_path):
    (tmp_path / CARD_FILE).write_text(json.dumps({**CARD, "future_field": 1}))
    assert read_card(tmp_path).labels == ("a", "b")


@pytest.mark.parametrize("change, expected", [
    ({"std": [0, 0, 0]}, "key 'std' must be > 0"),
    ({"image_size": 100000}, "key 'image_size' must be ≥ 1 and ≤ 4096 (pixels), got 100000"),
    ({"image_size": 0}, "key 'image_size' must be ≥ 1"),
    ({"image_size": 1.5}, "key 'image_size' must be int"),
    ({"image_size": "x"}, "key 'image_size' must be int"),
    ({"labels": "ab"}, "key 'labels' must be tuple[str, ...]"),
    ({"labels": ["x" * 5000]}, "key 'labels' must be names of at most 1000 characters"),
    ({"extra": [1]}, "key 'extra' must be dict | None"),
])
def test_damaged_artifact_metadata_is_refused_naming_the_field(change, expected):
    with pytest.raises(CheckpointError) as info:
        ArtifactMeta.from_json(json.dumps({**META, **change}), "m.onnx")
    message = str(info.value)
    assert message.startswith("edgessl metadata of 'm.onnx': ") and expected in message, message
    assert "re-export" in message and "\n" not in message


@pytest.mark.parametrize("text", ["[1, 2]", "null", "{", '"x"', '{"labels": ["a"]}'])
def test_artifact_metadata_that_is_not_an_object_is_refused(text):
    with pytest.raises(CheckpointError, match="'m.onnx'"):
        ArtifactMeta.from_json(text, "m.onnx")


@pytest.mark.parametrize("text, expected", [
    ("threads = 1e12\n", "key 'threads' must be int"),
    ("threads = 100000\n", "key 'threads' must be ≥ 0 and ≤ 4096"),
    ("batch_sizes = [1, 0]\n", "key 'batch_sizes' must be ≥ 1"),
    ("static_batch = 1000000\n", "key 'static_batch' must be ≥ 1 and ≤ 65536"),
])
def test_profile_numbers_name_file_and_key(tmp_path, text, expected):
    from edgessl.devices.profile import load_profile

    (tmp_path / "p.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_profile(str(tmp_path / "p.toml"))
    assert str(info.value).startswith(f"device profile '{tmp_path / 'p.toml'}': ")
    assert expected in str(info.value)


# --- the command line ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def images(digits_dir, tmp_path_factory):
    return flat_digits(digits_dir, tmp_path_factory.mktemp("values") / "images", 8)


PRETRAIN = ("--backbone", "resnet_micro", "--epochs", "1", "--batch-size", "4")


@pytest.mark.parametrize("args, expected", [
    (["--image-size", "1"], "--image-size must be ≥ 8 and ≤ 4096 (pixels), got 1"),
    (["--image-size", "10000"], "--image-size must be ≥ 8 and ≤ 4096 (pixels), got 10000"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--lr", "-1"], "--lr must be > 0"),
    (["--grad-clip", "nan"], "--grad-clip must be a finite number"),
    (["--epochs", "0"], "--epochs must be ≥ 1"),
    (["--batch-size", "100000000"], "--batch-size must be ≥ 1 and ≤ 65536"),
    (["--seed", "-1"], "--seed must be ≥ 0"),
    (["--knn-k", "0"], "--knn-k must be ≥ 1"),
    (["--hflip", "2"], "key 'hflip' must be ≥ 0 and ≤ 1 (a probability), got 2.0"),
    (["--aug", "crop_scale=0.9,0.1"], "key 'crop_scale' must be (low, high) with 0 < low"),
    (["--opt", "temperature=-1"], "key 'temperature' must be > 0"),
    (["--opt", "temperature=nan"], "key 'temperature' must be a finite number"),
])
def test_pretrain_numbers_are_one_line_errors_before_any_work(images, tmp_path, args,
                                                               expected):
    line = one_line_error(invoke("pretrain", images, *PRETRAIN, *args, "--out", tmp_path / "o"))
    assert expected in line, line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("recipe, expected", [
    ("image_size = 10000\n", "recipe '{path}': key 'image_size' must be ≥ 8"),
    ("lr = nan\n", "recipe '{path}': key 'lr' must be a finite number"),
    ("[augment]\ncrop_scale = [0.9, 0.1]\n", "recipe '{path}' [augment]: key 'crop_scale' "
                                             "must be (low, high)"),
    ("[method_options]\ntemperature = -1\n", "recipe '{path}' [method_options]: key "
                                             "'temperature' must be > 0"),
])
def test_recipe_values_name_the_file_and_key(images, tmp_path, recipe, expected):
    path = tmp_path / "r.toml"
    path.write_text(recipe)
    line = one_line_error(invoke("pretrain", images, *PRETRAIN, "--config", path,
                                 "--out", tmp_path / "o"))
    assert expected.format(path=path) in line, line


@pytest.mark.parametrize("args, expected", [
    (["--mode", "full", "--lr", "-1"], "--lr must be > 0"),
    (["--probe-c", "nan"], "--probe-c must be a finite number"),
    (["--probe-c", "0"], "--probe-c must be > 0"),
    (["--hflip", "2"], "--hflip must be ≥ 0 and ≤ 1"),
    (["--image-size", "100000"], "--image-size must be ≥ 8 and ≤ 4096"),
    (["-k", "0"], "--labels-per-class must be ≥ 1"),
])
def test_finetune_numbers_are_one_line_errors(digits_dir, tmp_path, args, expected):
    line = one_line_error(invoke("finetune", digits_dir, *args, "--out", tmp_path / "o"))
    assert expected in line, line


@pytest.mark.parametrize("command, args, expected", [
    ("export", ["--static-batch", "0"], "--static-batch must be ≥ 1"),
    ("export", ["--calib-size", "1000000000"], "--calib-size must be ≥ 1 and ≤ 100000"),
    ("export", ["--precision", "int8", "--ignore", "["], "--ignore takes regular expressions"),
    ("export", ["--precision", "int8", "--max-drop", "nan"], "--max-drop must be a finite"),
    ("benchmark", ["--iterations", "0"], "--iterations must be ≥ 1"),
    ("benchmark", ["--time", "nan"], "--time must be a finite number"),
    ("benchmark", ["--requests", "-1"], "--requests must be ≥ 0"),
    ("deploy", ["--iterations", "-1"], "--iterations must be ≥ 1"),
    ("deploy", ["--smoke-per-class", "-1"], "--smoke-per-class must be ≥ 0"),
    ("quickstart", ["--epochs", "0"], "--epochs must be ≥ 1"),
])
def test_other_commands_name_the_option(tiny_classifier, tmp_path, command, args, expected):
    model = [] if command == "quickstart" else [tiny_classifier]
    out = [] if command in ("benchmark", "quickstart") else ["--out", tmp_path / "o"]
    line = one_line_error(invoke(command, *model, *args, *out))
    assert expected in line, line


def test_a_card_with_zero_std_is_refused_before_export(tiny_classifier, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_classifier, model)
    card = json.loads((model / CARD_FILE).read_text())
    (model / CARD_FILE).write_text(json.dumps({**card, "std": [0.0, 0.0, 0.0]}))
    line = one_line_error(invoke("export", model, "--out", tmp_path / "o"))
    assert f"model card '{model / CARD_FILE}': key 'std' must be > 0" in line, line
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def small_labeled(digits_dir, tmp_path_factory):
    """train/ and val/ with 2 digits per class: 20 val images, not a multiple of 7."""
    import shutil

    root = tmp_path_factory.mktemp("values") / "labeled"
    for split in ("train", "val"):
        for folder in sorted((digits_dir / split).iterdir()):
            (root / split / folder.name).mkdir(parents=True)
            for path in sorted(folder.glob("*.png"))[:2]:
                shutil.copy(path, root / split / folder.name / path.name)
    return root


def test_a_fixed_batch_artifact_refuses_another_batch_size_in_one_line():
    import numpy as np

    from edgessl.errors import DataError

    meta = ArtifactMeta.from_json(json.dumps({**META, "input_spec": {
        "name": "input", "dtype": "float32", "layout": "NCHW", "shape": [7, 3, 16, 16]}}), "m")
    assert meta.fixed_batch == 7 and ArtifactMeta.from_json(json.dumps(META), "m").fixed_batch \
        is None
    assert meta.check_batch(np.zeros((7, 3, 16, 16), np.float32), "m").shape[0] == 7
    with pytest.raises(DataError, match="'m' is exported for a fixed batch of 7, got 2 images"):
        meta.check_batch(np.zeros((2, 3, 16, 16), np.float32), "m")


def test_static_batch_onnx_export_validates_and_a_wrong_batch_is_one_line(
        tiny_classifier, tmp_path, small_labeled):
    # OpenVINO said this well already; ONNX Runtime's own message was a traceback.
    result = invoke("export", tiny_classifier, "--format", "onnx", "--static-batch", "7",
                    "--data", small_labeled, "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    assert "on 20 val images" in result.output  # 20 = 2 x 7 + 6: the last batch is padded
    assert "agreement 100.00%" in result.output
    artifact = tmp_path / "e" / "model.onnx"
    image = next((small_labeled / "val").rglob("*.png"))
    # predict fills the fixed batch (padding dropped), so one image is classified
    result = invoke("predict", artifact, image)
    assert result.exit_code == 0 and len(result.stdout.strip().splitlines()) == 1, result.output
    from edgessl.backends.registry import load_any

    line = one_line_error(invoke("benchmark", artifact, "--batch-size", "2", "--iterations", "1"))
    assert "fixed batch of 7; pass --batch-size 7" in line, line
    import numpy as np

    from edgessl.errors import DataError

    with pytest.raises(DataError, match="fixed batch of 7, got 1 images; pass batches of 7"):
        load_any(artifact).run(np.zeros((1, 3, 16, 16), np.float32))


# --- the deploy bundle's runner (run.py on the device) ------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["predict", "x.jpg", "--top-k", "0"], "--top-k must be ≥ 1"),
    (["benchmark", "--iterations", "0"], "--iterations must be ≥ 1"),
    (["benchmark", "--warmup", "-1"], "--warmup must be ≥ 0"),
    (["benchmark", "--batch-size", "1", "--batch-size", "100000000"], "--batch-size must be"),
    (["benchmark", "--time", "nan"], "--time must be a finite number"),
    (["benchmark", "--time", "0"], "--time must be > 0"),
    (["benchmark", "--requests", "-1"], "--requests must be ≥ 0"),
    (["benchmark", "--async-runs", "-1"], "--async-runs must be ≥ 0"),
    (["benchmark", "--batch-sizes", "1,0"], "--batch-sizes must be ≥ 1"),
    (["benchmark", "--batch-sizes", "1,x"], "--batch-sizes takes comma-separated integers"),
    (["benchmark", "--inference-precision", "bf17"], "unknown --inference-precision 'bf17'"),
    (["smoke", "--min-agreement", "nan"], "--min-agreement must be a finite number"),
    (["smoke", "--min-agreement", "2"], "--min-agreement must be ≥ 0 and ≤ 1"),
])
def test_runner_numbers_are_one_line_errors(tmp_path, capsys, args, expected):
    from edgessl.runtime.bundle_cli import main

    assert main(args, bundle_dir=tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err, err


@pytest.mark.parametrize("bundle, expected", [
    ([1], "is not an edgessl-bundle/1 bundle"),
    ({"format": "edgessl-bundle/1"}, "key 'models' must list the bundle's models"),
    ({"format": "edgessl-bundle/1", "models": [{"name": 1, "path": "m.onnx"}]},
     "key 'models' must list"),
    ({"format": "edgessl-bundle/1", "models": [{"name": "m", "path": "m.onnx"}], "device": 3},
     "key 'device' must be str"),
    ({"format": "edgessl-bundle/1", "models": [{"name": "m", "path": "m.onnx"}],
      "profile": {"batch_sizes": [0]}}, "key 'profile.batch_sizes' must be ≥ 1"),
    ({"format": "edgessl-bundle/1", "models": [{"name": "m", "path": "m.onnx"}],
      "profile": {"batch_sizes": "8"}}, "key 'profile.batch_sizes' must be a list of integers"),
])
def test_damaged_bundle_json_is_one_line_naming_the_key(tmp_path, capsys, bundle, expected):
    from edgessl.runtime.bundle_cli import main

    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    assert main(["info"], bundle_dir=tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and expected in err, err


@pytest.mark.parametrize("args, expected", [
    (["data", "digits", "{tmp}/d", "--val-fraction", "nan"], "--val-fraction must be a finite"),
    (["data", "digits", "{tmp}/d", "--image-size", "100000"], "--image-size must be ≥ 1"),
    (["data", "digits", "{tmp}/d", "--seed", "-1"], "--seed must be ≥ 0"),
    (["backbones", "--image-size", "0"], "--image-size must be ≥ 8 and ≤ 4096"),
])
def test_data_and_backbones_numbers_are_one_line_errors(tmp_path, args, expected):
    line = one_line_error(invoke(*[a.format(tmp=tmp_path) for a in args]))
    assert expected in line, line
    assert not (tmp_path / "d").exists()
