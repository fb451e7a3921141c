"""Write a benchmark's results: ``NAME.json`` (strict JSON) and ``NAME.md``, each atomically.

Through ``edgessl.io``: each file is written under a temporary name beside its target and
renamed into place, so an interrupted run leaves the previous results as they were (never a
truncated file), and NaN or infinity are written as null (with a warning), so that strict
JSON parsers read the file. Scripts here import it as ``from results_io import
write_results``: Python puts a script's own folder on ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_results(folder: str | Path, name: str, data: Any, markdown: str) -> tuple[Path, Path]:
    """Write ``data`` to ``folder/name.json`` and ``markdown`` (as is) to ``folder/name.md``.

    Creates ``folder``; replaces earlier results (a rerun). Values JSON cannot hold are
    written as ``str(value)``. Returns the paths of the .json and the .md.
    """
    from edgessl.io import atomic_file, write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = write_json(folder / f"{name}.json", data, force=True)
    md_path = folder / f"{name}.md"
    with atomic_file(md_path, force=True) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    return json_path, md_path
