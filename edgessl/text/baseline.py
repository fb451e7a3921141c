"""The TF-IDF + logistic regression baseline: the text counterpart of raw pixels.

Word unigrams and bigrams (lower-cased, sublinear term frequency, L2-normalised rows),
vocabulary from the labeled training texts only, and a logistic regression whose C is chosen
by the same stratified cross-validation as edgessl's linear probes
(``edgessl.finetune.train.choose_probe_c``): an untuned C = 1 on a few dozen L2-normalised
rows underfits badly, and a comparison against a weakened baseline would say nothing.
It is a comparison arm, not a deployable model: it is not saved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgessl.text.data import TextSample, TextSet


@dataclass
class TfidfBaseline:
    """A fitted vectoriser and classifier, with its card (settings and val metrics)."""

    vectorizer: object
    classifier: object
    classes: tuple[str, ...]
    card: dict

    def predict(self, texts) -> list[str]:
        found = self.classifier.predict(self.vectorizer.transform(list(texts)))
        return [self.classes[i] for i in found]


def fit_tfidf(samples: list[TextSample], classes, seed: int = 0) -> TfidfBaseline:
    """Fit TF-IDF features and a cross-validated logistic regression on ``samples``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from edgessl.finetune.train import choose_probe_c

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
    x = vectorizer.fit_transform([t for t, _ in samples])
    y = np.array([label for _, label in samples])
    c = choose_probe_c(x, y, seed)
    classifier = LogisticRegression(C=c, max_iter=5000).fit(x, y)
    card = {"kind": "tfidf-logreg", "ngram_range": [1, 2], "features": x.shape[1],
            "probe_c": c, "train_examples": len(samples)}
    return TfidfBaseline(vectorizer, classifier, tuple(classes), card)


def tfidf_baseline(data: TextSet, labels_per_class: int | None = None,
                   seed: int = 0) -> TfidfBaseline:
    """The baseline on ``data``'s training split (``labels_per_class`` of each class, seeded),
    scored on its val split (``card["metrics"]["top1"]``)."""
    baseline = fit_tfidf(data.labels_per_class(labels_per_class, seed), data.classes, seed)
    predicted = baseline.classifier.predict(baseline.vectorizer.transform(
        [t for t, _ in data.val]))
    truth = np.array([y for _, y in data.val])
    baseline.card.update({"labels_per_class": labels_per_class, "data": data.summary(),
                          "metrics": {"top1": float((predicted == truth).mean()),
                                      "examples": len(data.val)}})
    return baseline
