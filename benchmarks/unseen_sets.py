"""Image sets edgessl was never tuned on, built from packages on the public registries.

- ``emoji``: Google's Noto emoji as the npm package ``emoji-datasource-google`` ships them
  (MIT package, Apache-2.0 artwork): 1,906 images of 64 px, one class folder per Unicode
  category (9: smileys, people, animals and nature, food, travel, activities, objects,
  symbols, flags; the 5-image "Component" category is left out). Drawings, not photos, with
  transparent backgrounds.
- ``elpv``: electroluminescence images of solar cells, the PyPI package ``elpv-dataset``
  (CC BY-NC-SA 4.0, for research): 2,624 grey 300 px cells, one class folder per defect
  probability an expert gave (functional, mildly, likely, defective; imbalanced). An
  industrial-inspection domain far from ImageNet.
- ``galaxy``: radio galaxies from the FIRST survey as the PyPI package ``firstgalaxydata``
  ships them (MIT package; the FIRST images are for scholarly, educational and private
  non-commercial use): 2,158 grey 300 px PNGs, one class folder per morphology (fri 495,
  frii 924, compact 391, bent 348; the package's "all" split, which its train/valid/test
  splits partition). Radio-telescope maps, not photos: black sky with the source in the
  middle (half of them fit in the central 60 px, so small resizes lose most of the signal);
  one image is blank.

    python benchmarks/unseen_sets.py --out benchmarks/work/unseen     # fetches all three
    python benchmarks/label_efficiency.py --datasets --folder emoji=benchmarks/work/unseen/emoji \\
        --ks 10 --arms pixels scratch pretrained_linear pretrained_full

The packages are fetched with npm and pip (nothing else is downloaded); the folders hold
symbolic links into them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ELPV_CLASSES = {"0.0": "functional", "0.3333333333333333": "mildly_defective",
                "0.6666666666666666": "likely_defective", "1.0": "defective"}


def _link(src: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / src.name
    if not target.exists():
        os.symlink(src.resolve(), target)


def emoji(work: Path) -> Path:
    pkg = work / "emoji-datasource-google" / "package"
    if not pkg.is_dir():
        (work / "emoji-datasource-google").mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["npm", "pack", "emoji-datasource-google@16.0.0", "--silent"],
                             cwd=work, check=True, capture_output=True, text=True)
        with tarfile.open(work / out.stdout.strip().splitlines()[-1]) as tar:
            tar.extractall(work / "emoji-datasource-google", filter="data")
    root = work / "emoji"
    for entry in json.loads((pkg / "emoji.json").read_text()):
        if not entry.get("has_img_google") or entry["category"] == "Component":
            continue
        src = pkg / "img" / "google" / "64" / entry["image"]
        if src.is_file():
            name = entry["category"].lower().replace(" & ", "_").replace(" ", "_")
            _link(src, root / name)
    return root


def elpv(work: Path) -> Path:
    unpacked = work / "elpv-dataset"
    if not (unpacked / "elpv_dataset").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                        "elpv-dataset==1.0.0.post1", "-d", str(work)], check=True)
        wheel = next(work.glob("elpv_dataset-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extractall(unpacked)
    data = unpacked / "elpv_dataset" / "data"
    root = work / "elpv"
    for line in (data / "labels.csv").read_text().splitlines():
        image, probability, _kind = line.split()
        _link(data / image, root / ELPV_CLASSES[probability])
    return root


def galaxy(work: Path) -> Path:
    unpacked = work / "firstgalaxydata"
    data = unpacked / "galaxy_data" / "all"
    if not data.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                        "firstgalaxydata==0.2.1", "-d", str(work)], check=True)
        wheel = next(work.glob("firstgalaxydata-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extractall(unpacked)
        # The PNGs sit in a zip inside the wheel: galaxy_data/{all,train,valid,test}/CLASS/.
        with zipfile.ZipFile(unpacked / "firstgalaxydata" / "galaxy_data.zip") as z:
            z.extractall(unpacked)
    root = work / "galaxy"
    for src in sorted(data.glob("*/*.png")):
        _link(src, root / src.parent.name.lower())
    return root


SETS = {"emoji": emoji, "elpv": elpv, "galaxy": galaxy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/work/unseen"))
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.sets:
        root = SETS[name](args.out.resolve())
        counts = {p.name: len(list(p.iterdir())) for p in sorted(root.iterdir())}
        print(f"{name}: {root} {counts}")


if __name__ == "__main__":
    main()
