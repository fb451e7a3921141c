"""What ``edgessl compare`` measured: each arm's cross-validated top-1 and the recommendation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ArmResult:
    """One arm's cross-validated top-1 (fractions) and cost."""

    name: str
    title: str
    backbone: str
    top1_mean: float
    top1_std: float
    top1_per_fold: tuple[float, ...]
    seconds: float


@dataclass(frozen=True)
class CompareResult:
    """The arms, the recommendation and where the report went."""

    arms: tuple[ArmResult, ...]
    recommended: str
    reason: str
    labels_per_class: int | None
    folds: int
    labeled_images: int
    ssl_pool: str
    path: Path
    notes: tuple[str, ...] = field(default_factory=tuple)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        return data
