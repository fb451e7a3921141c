"""The linear probe's regularisation chosen by cross-validation on the training labels only."""

from __future__ import annotations

import logging

import numpy as np

from edgessl.finetune.train import PROBE_C_GRID, choose_probe_c


def _blobs(n_per_class: int, noise: float, seed: int = 0, dims: int = 64):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dims))
    x = np.concatenate([c + noise * rng.normal(size=(n_per_class, dims)) for c in centres])
    return x, np.repeat(np.arange(3), n_per_class)


def test_noisy_few_labels_get_stronger_regularisation_than_clean_many():
    noisy = choose_probe_c(*_blobs(5, noise=6.0), seed=0)
    clean = choose_probe_c(*_blobs(60, noise=0.3), seed=0)
    assert noisy in PROBE_C_GRID and clean in PROBE_C_GRID
    assert noisy < clean


def test_single_label_per_class_falls_back_to_default(caplog):
    x, y = _blobs(1, noise=1.0)
    with caplog.at_level(logging.INFO, logger="edgessl"):
        assert choose_probe_c(x, y, seed=0) == 1.0
    assert "single labeled image" in caplog.text


def test_choice_is_seeded():
    x, y = _blobs(10, noise=3.0)
    assert choose_probe_c(x, y, seed=3) == choose_probe_c(x, y, seed=3)
