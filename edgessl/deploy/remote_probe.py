"""Check a device before a remote benchmark: Python 3.10+ and the bundle's packages there, and
a fresh remote working folder (made by the probe, the only folder the cleanup removes)."""

from __future__ import annotations

import json
import re
import shlex

from edgessl.deploy.ssh import RemoteError, SshSession, last_line

MIN_PYTHON = (3, 10)
# Import name -> pip name of what the runner needs besides its runtime.
BASE_MODULES = {"numpy": "numpy", "PIL": "pillow"}
# Runs on the device with any Python 3: reports version and missing modules, makes the folder.
PROBE = """import sys, json, tempfile, importlib.util
missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]
ok = sys.version_info[:2] >= MIN_PYTHON and not missing
folder = tempfile.mkdtemp(prefix="edgessl-") if ok else ""
print(json.dumps({"version": ".".join(map(str, sys.version_info[:3])), "missing": missing,
                  "folder": folder, "executable": sys.executable}))
""".replace("MIN_PYTHON", repr(MIN_PYTHON))
# What the probe's mkdtemp(prefix="edgessl-") may return: no spaces, quotes or shell syntax.
SAFE_REMOTE_FOLDER = re.compile(r"(/[A-Za-z0-9._-]+)*/edgessl-[A-Za-z0-9._-]+")


def probe(session: SshSession, runtime: str, requirements: list[str]) -> dict:
    """Check Python and the runtime on the device and make the remote working folder.

    Returns:
        {"version", "missing", "folder", "executable"} as the device reported them.

    Raises:
        RemoteError: no Python, a Python older than 3.10, or missing packages (kind "python"
            or "runtime"), each with the command that fixes it.
    """
    python = session.config.python
    modules = [*BASE_MODULES, runtime]
    result = session.run([python, "-c", PROBE, *modules], "checking Python on the device",
                         timeout=session.config.connect_timeout + 60)
    target = session.target
    try:
        info = json.loads(result.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        if result.returncode == 127 or "not found" in result.stderr.lower() or \
                "no such file" in result.stderr.lower():
            raise RemoteError("python", f"no Python '{python}' on {target} "
                              f"({last_line(result.stderr)}); install Python 3.10+ there "
                              "(e.g. sudo apt install python3 python3-venv) or pass "
                              "--remote-python PATH") from None
        raise RemoteError("python", f"'{python}' on {target} did not run the check "
                          f"({last_line(result.stderr)}); pass --remote-python PATH to a "
                          "Python 3.10+ there") from None
    if tuple(int(v) for v in info["version"].split(".")[:2]) < MIN_PYTHON:
        raise RemoteError("python", f"'{python}' on {target} is Python {info['version']}; the "
                          f"bundle needs {'.'.join(map(str, MIN_PYTHON))} or newer: install one "
                          "and pass --remote-python PATH")
    if info["missing"]:
        names = [BASE_MODULES.get(m, m) for m in info["missing"]]
        wanted = [r for r in requirements if _req_name(r) in names] or names
        fix = shlex.join([python, "-m", "pip", "install", *wanted])
        raise RemoteError("runtime", f"'{python}' on {target} lacks {', '.join(names)}; "
                          f"install them on the device ({target.ssh_command()}): {fix}")
    if not SAFE_REMOTE_FOLDER.fullmatch(str(info.get("folder", ""))):
        # scp may hand the path to the remote shell: only a plain mkdtemp path is accepted.
        raise RemoteError("remote", f"'{python}' on {target} reported an unexpected working "
                          f"folder {str(info.get('folder'))[:100]!r}; check that it is a real "
                          "Python (pass --remote-python PATH)")
    return info


def _req_name(requirement: str) -> str:
    for sep in ("==", ">=", "<=", "~=", ">", "<"):
        requirement = requirement.split(sep, 1)[0]
    name = requirement.strip().lower()
    # onnxruntime-gpu and friends provide the module onnxruntime
    return "onnxruntime" if name.startswith("onnxruntime") else name
