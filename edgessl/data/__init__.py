"""Data stage: image discovery, labeled/unlabeled datasets and the built-in digits dataset."""
