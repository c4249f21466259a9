"""Why a zero-shot split fails: is it the text side or the skeleton side?

Three numbers per evaluation, over the unseen classes only (all in `RUN/zeroshot.json` and the
per-run table):

- ``unseen_text_cos``: mean cosine between the unseen classes' text embeddings (per text mode). Near 1,
  the text side cannot tell the classes apart whatever the skeleton does.
- ``unseen_skeleton_cos``: mean cosine between the unseen classes' skeleton centroids (the mean of each
  class's L2-normalised test embeddings). Near 1, the skeleton encoder maps both classes to one place.
- ``unseen_oracle_top1``: leave-one-out nearest-centroid top-1 (%) among the unseen classes, with the
  centroids taken from the test clips' true labels: what a text side that put each unseen class
  exactly at its skeleton centroid would reach. Far above ZSL top-1: the text side is what fails; near
  chance: the skeleton embedding does not separate the classes, so no text can.
"""

from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine over the distinct pairs of rows of `vectors` (K, D), K >= 2."""
    v = _unit(vectors)
    k = len(v)
    if k < 2:
        raise ValueError("mean_pairwise_cosine needs at least two vectors")
    sim = v @ v.T
    return float(sim[~np.eye(k, dtype=bool)].mean())


def centroid_diagnostics(embeddings: np.ndarray, labels: np.ndarray, classes: list[int]) -> dict[str, float | None]:
    """Skeleton centroid cosine and leave-one-out nearest-centroid top-1 over `classes`.

    embeddings: (N, D) skeleton embeddings of the test clips; labels: (N,) their classes. A number that
    is not defined (one class; a class with fewer than two clips for the oracle) is None.
    """
    x, y = _unit(embeddings), np.asarray(labels)
    rows = np.isin(y, classes)
    x, y = x[rows], y[rows]
    cls = np.array(sorted(set(classes)))
    counts = np.array([(y == c).sum() for c in cls])
    if len(cls) < 2 or (counts < 1).any():
        return {"unseen_skeleton_cos": None, "unseen_oracle_top1": None}
    sums = np.stack([x[y == c].sum(0) for c in cls])  # (K, D)
    col = np.searchsorted(cls, y)  # (n,) each clip's class position
    cos = x @ _unit(sums).T  # (n, K) cosine to every class centroid
    # its own class's centroid without the clip itself: S - x, with |S - x|^2 = |S|^2 - 2 x.S + 1 (x unit)
    own_sum = sums[col]  # (n, D)
    dot = (x * own_sum).sum(1)
    norm = np.sqrt(np.maximum((own_sum * own_sum).sum(1) - 2 * dot + 1, 1e-12))
    cos[np.arange(len(x)), col] = (dot - 1) / norm
    oracle = float((cos.argmax(1) == col).mean() * 100) if (counts >= 2).all() else None
    return {"unseen_skeleton_cos": mean_pairwise_cosine(sums / counts[:, None]), "unseen_oracle_top1": oracle}
