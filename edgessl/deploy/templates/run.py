#!/usr/bin/env python3
"""Run this edgessl bundle on the device: predict, benchmark, smoke (python run.py --help).

Needs only the packages in requirements.txt (numpy, Pillow and one inference runtime).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The bundle carries its own copy of edgessl's light runtime; it wins over any installed edgessl.
sys.path.insert(0, str(HERE / "lib"))

from edgessl.runtime.bundle_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(bundle_dir=HERE))
