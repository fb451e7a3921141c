"""Property test of every CLI command: random option values and corrupted files, never a crash.

The commands and their options are read from the click command objects
(``typer.main.get_command(app)``), so a new command or option is fuzzed without a change here.
Each option gets values of its type, the interesting ones (0, -1, nan, inf, huge, '', 'abc',
long, unicode and control characters), a path that is missing, a folder, a file of the wrong
kind or a file under a file, and the valid values of its name (``HINTS``) so that runs get past
the first check. Path arguments also get small valid artifacts and corrupted copies of them
(``tests/corrupt.py``). Every run, in-process with ``CliRunner``, must keep the invariants of
``run_and_check``: exit code 0, 2 or 130; no traceback; a failure is one ``error:`` line; files
that existed are byte-identical unless ``--force`` named them as the output; no JSON with NaN;
new files honour the umask; no control characters from a file reach the terminal; a pickle's
code never runs; hostile files (code in a pickle, ONNX external data outside the folder) are
refused. Each run is bounded in time (``EDGESSL_FUZZ_TIMEOUT``, s) and memory (address space
4 GiB above the start, ``EDGESSL_FUZZ_MEMORY_GIB``), so a hang or an unbounded allocation is a
failure, not a stuck machine. ``KNOWN`` replays the issue's hostile command lines, and those the
random runs found, on every run.

``EDGESSL_FUZZ_EXAMPLES`` (default 4) is the examples per command and per file kind; set it
higher to explore by hand. ``EDGESSL_FUZZ_LOG=file`` appends every failing run to the file and
keeps going, to list all failures of a long run instead of stopping at the first;
``EDGESSL_FUZZ_TRACE=file`` writes each command line before it runs and its exit after (the
last line names a run that killed the process).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import resource
import signal
import stat
import sys
import traceback
import warnings
from pathlib import Path

import pytest
import typer.main
from corrupt import ESCAPES, HIJACK, Artifacts, build_artifacts, materialize, path_values
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgessl.cli import app

EXAMPLES = int(os.environ.get("EDGESSL_FUZZ_EXAMPLES", "4"))
TIMEOUT_S = int(os.environ.get("EDGESSL_FUZZ_TIMEOUT", "90"))
MEMORY_HEADROOM = int(os.environ.get("EDGESSL_FUZZ_MEMORY_GIB", "4")) << 30
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: runs take seconds
                suppress_health_check=list(HealthCheck))

ROOT_COMMAND = typer.main.get_command(app)
# --debug shows tracebacks on purpose; eager options (--help, --version) end before any work.
ROOT_SKIP = {"debug"}


def leaf_commands(group, prefix=()) -> dict[str, object]:
    """'name' (or 'group name') -> click command, for every command that does work."""
    out = {}
    for name, command in sorted(getattr(group, "commands", {}).items()):
        if getattr(command, "commands", None):
            out.update(leaf_commands(command, (*prefix, name)))
        else:
            out[" ".join((*prefix, name))] = command
    return out


COMMANDS = leaf_commands(ROOT_COMMAND)

# ---------------------------------------------------------------- values

INTS = ["0", "-1", "1", "2", "3", "1000000000000", "2147483648", "-99999999999999999999",
        "abc", "", "1.5", "nan", "inf", "1e3", "0x10", "\u0663", " 7"]
FLOATS = ["0", "-1", "-0.0", "0.5", "1", "2", "nan", "inf", "-inf", "1e12", "1e308", "1e400",
          "5e-324", "abc", "", "0x1p3"]
TEXTS = ["", "abc", "x" * 5000, "\u65e5\u672c\u8a9e\U0001f642", "a\x1b]0;pwned\x07b\x1b[2J",
         "-x", "\t", "a\nb", "../../etc", "~", "*", "[", "\u202eevil"]
# Options whose large valid values mean a long run draw only small or invalid values.
SMALL_INTS = ["0", "-1", "1", "2", "abc", "", "1.5", "nan", "-99999999999999999999"]
SMALL_FLOATS = ["0", "-1", "0.01", "nan", "-inf", "abc", ""]
COSTLY = {"epochs", "iterations", "warmup", "async_runs", "time_budget", "smoke_per_class",
          "calib_size", "requests", "ssl_epochs", "continued_epochs", "full_epochs", "folds"}

# Valid values by parameter name, so that runs get past the first check; kinds of artifact a
# path parameter reads. A parameter not named here gets the values of its type only.
HINTS: dict[str, list[str]] = {
    "method": ["simclr", "moco", "byol", "dino", "vicreg", "mae"],
    "backbone": ["resnet_micro", "resnet_tiny", "vit_tiny32", "scratch", "scratch:resnet_micro",
                 "timm:resnet18"],
    "arch": ["resnet_micro", "vit_tiny32"],
    "format": ["onnx", "openvino"], "precision": ["fp32", "fp16", "int8", "bf16", "auto"],
    "output": ["logits", "probabilities", "embedding", "embedding-l2"],
    "scheme": ["auto", "u8s8", "u8s8-w7", "s8s8", "u8u8", "w8", "w7-first", "w7"],
    "target_isa": ["host", "vnni", "avx2"], "calib_method": ["minmax", "entropy", "percentile"],
    "preset": ["performance", "mixed"], "model_type": ["auto", "cnn", "transformer"],
    "mode": ["linear", "full"], "runtime": ["onnxruntime", "openvino", "pytorch"],
    "profile": ["cpu", "intel-npu", "raspberry-pi-5"],
    "device": ["CPU", "cpu", "auto", "cuda", "cuda:0", "NPU", "GPU"],
    "optimizer": ["sgd", "adamw"], "ignore": [".*", "[", "conv", "(a+)+$"],
    "aug": ["blur_p=0", "crop_scale=0.9,0.1", "hflip=2", "nope=1", "x", "hflip=nan",
            "local_crops=100000", "crop_scale=0.2,1"],
    "opt": ["temperature=0.1", "temperature=-1", "temperature=nan", "x=1", "noeq"],
    "batch_sizes": ["1,2", "0", "a,b", "1,,2", "-1", "100000"],
    "weights_key": ["teacher", "state_dict", "nope"],
    "arms": ["pixels", "scratch,ssl", "pixels,pixels", "nope", ","],
    "timm_pattern": ["resnet1*", "[", "*"],
    "remote": ["abc", "ssh://", "ssh://-oProxyCommand=touch PWNED@x", "http://x"],
    "remote_python": ["python3", "x; touch PWNED"],
    "image_size": ["16", "8"], "batch_size": ["4", "1"], "top_k": ["1", "3", "11"],
    "labels_per_class": ["1", "2", "5"], "hflip": ["0", "0.5"], "lr": ["0.01"],
    "probe_c": ["1", "0.1"], "knn_k": ["1", "3"], "max_drop": ["0.01", "1"],
    "static_batch": ["1", "7"], "val_fraction": ["0.5", "0.99"], "seed": ["0", "7"],
}
INPUTS = {
    "data": ["images", "flat"], "eval_data": ["images"], "calib": ["flat", "images"],
    "images": ["images", "flat"], "model": ["classifier", "backbone", "onnx", "openvino"],
    "models": ["classifier", "onnx", "openvino"], "config": ["recipe"], "unlabeled": ["flat"],
    "weights": ["safetensors", "pickle"], "backbone": ["backbone", "safetensors", "pickle"],
    "profile": ["profile"],
}
OUTPUTS = {"out", "out_dir", "json_path", "csv_path", "markdown_path", "plot_path", "workdir"}
OUTPUT_VALUES = [("fresh",), ("existing_output",), ("existing_file",), ("under_file",),
                 ("text_file",), ("same_as_input",)]
# A run of these with valid values takes minutes, so each of their runs gets one value that
# must be refused; it checks the refusal comes before the work.
EXPENSIVE = {"quickstart": [("--epochs", "-1"), ("--iterations", "-1"), ("--epochs", "abc"),
                            ("--iterations", "nan")]}
# Small settings in front of the drawn options (a drawn value of the same option wins).
CAPS = {
    "pretrain": ["--epochs", "1", "--image-size", "16", "--batch-size", "4",
                 "--backbone", "resnet_micro"],
    "finetune": ["--epochs", "1", "--backbone", "scratch", "--arch", "resnet_micro",
                 "--image-size", "16"],
    "export": ["--calib-size", "8"],
    "benchmark": ["--warmup", "1", "--iterations", "2", "--async-runs", "0",
                  "--batch-sizes", "1"],
    "deploy": ["--iterations", "2", "--smoke-per-class", "1"],
    "data digits": ["--image-size", "8"],
    "compare": ["--arms", "pixels,scratch", "--arch", "resnet_micro", "--image-size", "16",
                "--folds", "2", "--ssl-epochs", "1", "--continued-epochs", "1",
                "--full-epochs", "1"],
}
HOSTILE = {("onnx", ("external_escape",)): "an ONNX file whose external data lies outside its "
                                          "folder", ("pickle", ("evil",)): "a pickle with code"}


def type_of(param) -> str:
    """'int', 'float', 'str', 'Path', 'bool' (a list type gives its item type)."""
    bare = getattr(param, "bare_type", None)
    name = bare() if callable(bare) else getattr(getattr(param, "type", None), "name", "text")
    name = str(name).removeprefix("list[").removesuffix("]")
    return {"integer": "int", "text": "str", "path": "Path", "boolean": "bool"}.get(
        name.lower(), name)


def value_strategy(param, artifacts: Artifacts, kinds=None) -> st.SearchStrategy:
    """What one value of ``param`` may be (a string, or a tuple for ``materialize``)."""
    kind, name = type_of(param), param.name
    hints = st.sampled_from(HINTS[name]) if name in HINTS else st.nothing()
    if name in OUTPUTS:
        return st.sampled_from(OUTPUT_VALUES).map(lambda v: ("output", *v))
    if kind == "int":
        generic = st.sampled_from(SMALL_INTS if name in COSTLY else INTS)
    elif kind == "float":
        generic = st.sampled_from(SMALL_FLOATS if name in COSTLY else FLOATS)
    else:
        generic = st.sampled_from(TEXTS)
    if kind == "Path" or name in INPUTS:
        files = path_values(artifacts, kinds or INPUTS.get(name))
        return st.one_of(files, files, hints, generic)
    return st.one_of(hints, hints, generic)


@st.composite
def command_lines(draw, command: str, artifacts: Artifacts, forced=None, max_options=6):
    """(argv with tuples for paths, the options given) for one run of ``command``."""
    forced = forced or {}
    click_command = COMMANDS[command]
    root_flags = [o for p in ROOT_COMMAND.params if p.name not in ROOT_SKIP
                  and not getattr(p, "is_eager", False) for o in p.opts]
    argv = [*draw(st.lists(st.sampled_from(root_flags), max_size=1, unique=True)),
            *command.split(), *CAPS.get(command, [])]
    options = [p for p in click_command.params if p.param_type_name == "option"]
    chosen = draw(st.lists(st.sampled_from(options), max_size=max_options, unique_by=id)) \
        if options else []
    chosen += [p for p in options if p.name in forced and p not in chosen]
    for param in chosen:
        flags = [*param.opts, *getattr(param, "secondary_opts", [])]
        if getattr(param, "is_flag", False):
            argv.append(draw(st.sampled_from(flags)))
            continue
        for _ in range(draw(st.integers(1, 2)) if param.multiple else 1):
            value = forced.get(param.name) or draw(value_strategy(param, artifacts))
            argv += [draw(st.sampled_from(param.opts)), value]
    argv += list(draw(st.sampled_from(EXPENSIVE[command]))) if command in EXPENSIVE else []
    for param in click_command.params:
        if param.param_type_name != "argument":
            continue  # optional arguments are always given: their default is the full digits
        count = draw(st.integers(1, 2)) if param.nargs == -1 else 1
        for _ in range(count):
            argv.append(forced.get(param.name) or draw(value_strategy(param, artifacts)))
    return argv, {p.name for p in chosen}


# ---------------------------------------------------------------- running and checking

class RunTimedOut(BaseException):
    """Raised in the command by SIGALRM (a BaseException, so ``except Exception`` lets it by)."""


def files_under(*roots: Path) -> dict[Path, str]:
    """Every regular file under ``roots`` (links not followed) -> sha256 of its bytes."""
    out = {}
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if path.is_file() and not path.is_symlink():
                    out[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@contextlib.contextmanager
def bounded(seconds: int, headroom: int):
    """SIGALRM after ``seconds``; address space limited to ``headroom`` bytes above now."""
    def on_alarm(_signum, _frame):
        raise RunTimedOut(f"still running after {seconds} s")

    size = int(re.search(r"VmSize:\s+(\d+)", Path("/proc/self/status").read_text())[1]) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    old = signal.signal(signal.SIGALRM, on_alarm)
    resource.setrlimit(resource.RLIMIT_AS, (size + headroom, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def interpreter_warnings():
    """Python warnings printed on stderr under the interpreter's default filters, as in a real
    ``edgessl`` process (pytest would otherwise record them out of sight)."""
    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                         ResourceWarning):
            warnings.filterwarnings("ignore", category=category)
        warnings.showwarning = show
        yield


def _strict_json(path: Path) -> str | None:
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    try:
        json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"wrote '{path}', which is not strict JSON: {exc}"
    return None


PY_WARNING = re.compile(r"^\S+:\d+: \w*Warning: |^\w*Warning: ")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colour of the error line itself


def output_problems(result) -> list[str]:
    problems = []
    text = SGR.sub("", result.stdout + result.stderr)
    if "Traceback" in text:
        problems.append("a traceback was printed")
    controls = sorted({repr(c) for c in text if (ord(c) < 32 and c not in "\n\t")
                       or 0x7f <= ord(c) < 0xa0 or c in "\u202e\u2066\u2067\u2068"})
    if controls:
        problems.append(f"control characters reached the terminal: {', '.join(controls)}")
    if result.exit_code != 0:
        lines = [ln for ln in SGR.sub("", result.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("error:")]
        if len(errors) != 1 or not lines or lines[-1] != errors[0]:
            problems.append("a failure is not exactly one 'error:' line at the end of stderr")
        noise = [ln for ln in lines if PY_WARNING.search(ln) or ln.lstrip()[:1] in "╭│╰"
                 or ln.startswith(("Usage:", "Try '", "Error"))]
        if noise:
            problems.append(f"stderr has usage text or Python warnings: {noise[0]!r}")
    return problems


def file_problems(before: dict[Path, str], after: dict[Path, str], writable: list[Path],
                  inputs: list[Path]) -> list[str]:
    """Changed or removed files that were not the output of a --force run; bad new files."""
    def under(path: Path, roots: list[Path]) -> bool:
        return any(path == r or r in path.parents for r in roots)

    problems = []
    for path, digest in before.items():
        if after.get(path) != digest and (not under(path, writable) or under(path, inputs)):
            problems.append(f"'{path}' was {'changed' if path in after else 'removed'}")
    mask = os.umask(0)
    os.umask(mask)
    for path in sorted(set(after) - set(before)):
        if path.suffix == ".json" and (error := _strict_json(path)):
            problems.append(error)
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o444 & ~mask != 0o444 & ~mask:
            problems.append(f"'{path}' was created with mode {mode:o} despite umask {mask:o}")
    return problems


_counter = itertools.count()


def resolve(argv, artifacts: Artifacts, workspace: Path):
    """argv with each drawn tuple made a real path; the inputs, outputs and hostile inputs."""
    real, inputs, outputs, hostile = list(argv), [], [], []
    for i, item in enumerate(argv):  # inputs first: an output may be 'the same as the input'
        if isinstance(item, tuple) and item[0] != "output":
            real[i] = path = materialize(item, artifacts, workspace, f"a{i}")
            if item[0] in ("artifact", "corrupt"):
                inputs.append(path)
            hostile += [why for key, why in HOSTILE.items() if item[1:] == key]
    for i, item in enumerate(argv):
        if isinstance(item, tuple) and item[0] == "output":
            if item[1] == "same_as_input":
                path = inputs[0] if inputs else workspace / f"a{i}" / "fresh"
            elif item[1] == "fresh":
                path = workspace / f"a{i}" / "fresh"
            else:
                path = materialize(item[1:], artifacts, workspace, f"a{i}")
            real[i] = path
            outputs.append(path)
    return [str(a) for a in real], inputs, outputs, hostile


def run_and_check(argv, artifacts: Artifacts, base: Path) -> None:
    """Run one drawn command line and fail (or log) on every broken invariant."""
    workspace = base / f"ws{next(_counter)}"
    workspace.mkdir()
    (workspace / "victim").mkdir()
    (workspace / "victim" / "precious.txt").write_text("someone else's work\n")
    real, inputs, outputs, hostile = resolve(argv, artifacts, workspace)
    force = "--force" in real
    before = files_under(workspace, artifacts.root)
    if os.environ.get("EDGESSL_FUZZ_TRACE"):  # the last line names a run that killed pytest
        with open(os.environ["EDGESSL_FUZZ_TRACE"], "a", encoding="utf-8") as trace:
            trace.write(f"{real!r}  # {argv!r}\n")
    cwd = os.getcwd()
    crash = None
    try:
        os.chdir(workspace)
        with bounded(TIMEOUT_S, MEMORY_HEADROOM), interpreter_warnings():
            result = CliRunner().invoke(app, real, catch_exceptions=True, color=True)
    except RunTimedOut as exc:
        result, crash = None, str(exc)
    finally:
        os.chdir(cwd)
    problems = [crash] if crash else []
    if os.environ.get("EDGESSL_FUZZ_TRACE") and result is not None:
        with open(os.environ["EDGESSL_FUZZ_TRACE"], "a", encoding="utf-8") as trace:
            trace.write(f"  -> exit {result.exit_code}: {result.stderr.strip()[-300:]!r}\n")
    if result is not None:
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            problems.append("crashed: " + "".join(traceback.format_exception(
                *result.exc_info)).strip().splitlines()[-1])
        if result.exit_code not in (0, 2, 130):
            problems.append(f"exit code {result.exit_code}")
        problems += output_problems(result)
        if hostile and result.exit_code == 0:
            problems.append(f"accepted {', '.join(hostile)}")
    after = files_under(workspace, artifacts.root)
    problems += file_problems(before, after, outputs if force else [], inputs)
    if artifacts.marker.exists() or (workspace / "PWNED").exists():
        problems.append("a payload ran: the marker file exists")
        artifacts.marker.unlink(missing_ok=True)
    if problems:
        report = (f"edgessl {' '.join(map(repr, real))}\n  drawn: {argv!r}\n  problems: "
                  + "\n    ".join(problems))
        if result is not None:
            report += (f"\n  exit {result.exit_code}\n  stdout: {result.stdout[-2000:]!r}"
                       f"\n  stderr: {result.stderr[-2000:]!r}")
            if result.exc_info and result.exception is not None \
                    and not isinstance(result.exception, SystemExit):
                report += "\n" + "".join(traceback.format_exception(*result.exc_info))[-4000:]
        if os.environ.get("EDGESSL_FUZZ_LOG"):
            with open(os.environ["EDGESSL_FUZZ_LOG"], "a", encoding="utf-8") as log:
                log.write(report + "\n\n")
        else:
            pytest.fail(report, pytrace=False)


# ---------------------------------------------------------------- the tests

@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, one_torch_thread) -> Artifacts:
    return build_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The folder of the runs' workspaces; no progress bars, umask 022, '~' an empty folder."""
    root = tmp_path_factory.mktemp("runs")
    (root / "home").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGESSL_PROGRESS", "0")
        patch.setenv("HOME", str(root / "home"))
        old = os.umask(0o022)
        yield root
        os.umask(old)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@FUZZ
@given(data=st.data())
def test_any_command_line_is_a_result_or_one_line(command, artifacts, runs, data):
    argv, _ = data.draw(command_lines(command, artifacts), label="argv")
    run_and_check(argv, artifacts, runs)


def readers() -> list[tuple[str, str, str]]:
    """(file kind, command, parameter) for every parameter that reads a kind of file."""
    out = []
    for command, click_command in COMMANDS.items():
        for param in click_command.params:
            for kind in INPUTS.get(param.name, []):
                out.append((kind, command, param.name))
    return out


KINDS = sorted({kind for kinds in INPUTS.values() for kind in kinds})


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_any_corrupted_file_is_a_result_or_one_line(kind, artifacts, runs, data):
    _, command, param = data.draw(st.sampled_from([r for r in readers() if r[0] == kind]),
                                  label="reader")
    from corrupt import corruptions

    value = data.draw(st.tuples(st.just("corrupt"), st.just(kind),
                                corruptions(kind, artifacts)), label="file")
    argv, _ = data.draw(command_lines(command, artifacts, forced={param: value}, max_options=2),
                        label="argv")
    run_and_check(argv, artifacts, runs)


ONNX, IMAGES, FLAT = ("artifact", "onnx"), ("artifact", "images"), ("artifact", "flat")
# Command lines of the hostile-input issue (12) and of what the random runs above found, in the
# form they are drawn in, so each class is checked on every run and not only when drawn.
# CAPS are put in front as for drawn runs.
KNOWN = {
    "recipe replaces a folder": ("pretrain", ["--config", ("corrupt", "recipe", HIJACK), FLAT]),
    "pickle with code as weights": ("finetune", [
        "--backbone", "resnet_micro", "--weights", ("corrupt", "pickle", ("evil",)), IMAGES]),
    "pickle with code as train state": ("pretrain", [
        "--resume", "--out", ("corrupt", "backbone", ("train_state.pt", ("evil",))), FLAT]),
    "ONNX external data outside": ("predict", [("corrupt", "onnx", ("external_escape",)),
                                               IMAGES]),
    "escapes in labels": ("predict", [
        ("corrupt", "onnx", ("meta", ("set", ("labels",), [ESCAPES] * 10))), IMAGES]),
    "image_size 100000 in metadata": ("predict", [
        ("corrupt", "onnx", ("meta", ("set", ("image_size",), 100_000))), IMAGES]),
    "1 x 2,000,000 pixel PNG": ("predict", [ONNX, ("corrupt", "flat", ("add", "strip"))]),
    "symlink loop in the images": ("predict", [ONNX, ("corrupt", "flat", ("add", "link_loop"))]),
    "predict --json over a file": ("predict", [ONNX, IMAGES, "--json",
                                               ("output", "existing_file")]),
    "export over its own input": ("export", [("artifact", "classifier"), "--out",
                                             ("output", "same_as_input"), "--force"]),
    "NaN weights exported": ("export", [
        ("corrupt", "classifier", ("model.safetensors", ("nan",)))]),
    "infinite weights exported (the exporter's rewrites warned)": ("export", [
        "--calib-size", "8", ("corrupt", "classifier", ("model.safetensors", ("inf",)))]),
    "card without a field": ("deploy", [
        "--out", ("output", "fresh"),
        ("corrupt", "backbone", ("card.json", ("drop", ("backbone", "small_stem"))))]),
    "usage error": ("pretrain", ["--epochs", "abc", FLAT]),
    "pretrain --image-size 1": ("pretrain", ["--image-size", "1", FLAT]),
    "finetune --lr -1": ("finetune", ["--mode", "full", "--lr", "-1", IMAGES]),
    "export --ignore [": ("export", [("artifact", "classifier"), "--precision", "int8",
                                     "--ignore", "["]),
    "empty MODEL": ("export", [""]),
    "5000-character path": ("predict", [ONNX, "x" * 5000]),
    "data digits onto a file": ("data digits", [("output", "existing_file")]),
    "data digits --image-size -1e20": ("data digits", ["--image-size", "-99999999999999999999",
                                                       ("output", "fresh")]),
    "pretrain output modes": ("pretrain", [FLAT]),
}


@pytest.mark.parametrize("case", sorted(KNOWN))
def test_known_hostile_command_lines(case, artifacts, runs):
    command, rest = KNOWN[case]
    run_and_check([*command.split(), *CAPS.get(command, []), *rest], artifacts, runs)


def test_every_file_kind_has_a_reader_and_every_command_is_fuzzed(artifacts):
    assert {kind for kind, _, _ in readers()} == set(artifacts.paths)
    assert {"pretrain", "finetune", "export", "predict", "deploy", "benchmark"} <= set(COMMANDS)
