"""Which start to ship: pixels, scratch, SSL, a pretrained start, or pretrained + SSL.

``compare`` cross-validates each on the user's labeled images (see ``edgessl.compare.run``);
``ARMS`` is the registry of starting points (one function each, in ``arms.py``).
"""

from __future__ import annotations

from edgessl.compare.arms import ARMS, ORDER
from edgessl.compare.result import ArmResult, CompareResult
from edgessl.compare.run import CompareConfig, compare, recommend

__all__ = ["ARMS", "ORDER", "ArmResult", "CompareConfig", "CompareResult", "compare", "recommend"]
