"""The raw-pixel logistic-regression baseline that any learned backbone should beat."""

from __future__ import annotations

import numpy as np

from edgessl.data.labeled import LabeledData, labels_per_class
from edgessl.data.preprocess import preprocess_batch


def pixel_logistic_regression(data: LabeledData, k: int | None, seed: int,
                              image_size: int) -> float:
    """Top-1 on the val split of scikit-learn's LogisticRegression on raw pixels in [0, 1].

    Pixels are not standardised: on the digits that costs the baseline about 3 points, and a
    baseline should not be handicapped.

    Args:
        data: the labeled dataset.
        k: labels per class (stratified, seeded like fine-tuning); None = all.
        seed: seed of the label subset.
        image_size: side the images are resized to before flattening.
    """
    from sklearn.linear_model import LogisticRegression

    train = labels_per_class(data.train, k, seed, data.classes)
    flat = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

    def pixels(samples):
        x = preprocess_batch([p for p, _ in samples], image_size, *flat)
        return x.reshape(len(samples), -1), np.array([y for _, y in samples])

    x_train, y_train = pixels(train)
    x_val, y_val = pixels(data.val)
    clf = LogisticRegression(max_iter=3000)
    clf.fit(x_train, y_train)
    return float(clf.score(x_val, y_val))
