"""Zero-shot metrics on a (N, C) score matrix over all classes, labels (N,) and the unseen class ids.

Accuracies are per-sample top-1 (or top-k) in percent, as `pcle evaluate`'s top-1.

- ZSL: unseen-class samples, ranked among the unseen classes only.
- GZSL (Xian et al.'s protocol): every test sample ranked among all C classes; seen accuracy S over the
  seen-class samples, unseen accuracy U over the unseen-class samples, harmonic mean H = 2SU / (S + U).
  Calibrated stacking (Chao et al. 2016): `gamma` is subtracted from the seen classes' scores before the
  argmax, trading seen for unseen accuracy (gamma = 0: plain GZSL). AUSUC (Chao et al. 2016): the area
  under the seen-unseen accuracy curve traced by every gamma, a GZSL summary that needs no calibration
  choice (100 = both perfect at once; the plain H depends on where gamma = 0 happens to sit).
- Base-to-new (CoCoOp's protocol): base = seen-class samples among the seen classes only, new =
  unseen-class samples among the unseen classes only, and their harmonic mean.
"""

from __future__ import annotations

import numpy as np


def harmonic(a: float, b: float) -> float:
    return 0.0 if a + b <= 0 else 2 * a * b / (a + b)


def _topk_within(scores: np.ndarray, labels: np.ndarray, cols: np.ndarray, k: int) -> float:
    """Top-k accuracy (%) of samples whose label is in `cols`, ranked among `cols` only."""
    rows = np.isin(labels, cols)
    if not rows.any():
        raise ValueError("no test samples of the chosen classes")
    sub = scores[np.ix_(rows, cols)]
    pos = np.searchsorted(cols, labels[rows])  # cols sorted: label -> column within the subset
    top = np.argsort(-sub, axis=1, kind="stable")[:, : min(k, len(cols))]
    return float((top == pos[:, None]).any(1).mean() * 100)


def _split_ids(num_classes: int, unseen: list[int]) -> tuple[np.ndarray, np.ndarray]:
    unseen_a = np.array(sorted(set(unseen)), dtype=np.int64)
    if not len(unseen_a):
        raise ValueError("no unseen classes")
    seen_a = np.setdiff1d(np.arange(num_classes), unseen_a)
    return seen_a, unseen_a


def zsl(scores: np.ndarray, labels: np.ndarray, unseen: list[int]) -> dict[str, float]:
    _, u = _split_ids(scores.shape[1], unseen)
    return {"zsl_top1": _topk_within(scores, labels, u, 1), "zsl_top5": _topk_within(scores, labels, u, 5)}


def gzsl(scores: np.ndarray, labels: np.ndarray, unseen: list[int], gamma: float = 0.0) -> dict[str, float]:
    s_ids, u_ids = _split_ids(scores.shape[1], unseen)
    calibrated = scores.astype(np.float64).copy()
    calibrated[:, s_ids] -= gamma
    pred = calibrated.argmax(1)
    seen_rows, unseen_rows = np.isin(labels, s_ids), np.isin(labels, u_ids)
    acc_s = float((pred[seen_rows] == labels[seen_rows]).mean() * 100) if seen_rows.any() else 0.0
    acc_u = float((pred[unseen_rows] == labels[unseen_rows]).mean() * 100) if unseen_rows.any() else 0.0
    return {"gzsl_seen": acc_s, "gzsl_unseen": acc_u, "gzsl_h": harmonic(acc_s, acc_u), "gamma": float(gamma)}


def ausuc(scores: np.ndarray, labels: np.ndarray, unseen: list[int]) -> float:
    """Area (%) under the curve of (unseen accuracy, seen accuracy) as gamma runs from -inf to +inf.

    With calibration gamma a sample gets its best seen class when max_seen - gamma > max_unseen, else
    its best unseen class; so a seen sample is right for gamma < d = max_seen - max_unseen if its best
    seen class is right, an unseen sample for gamma >= d if its best unseen class is. The curve only
    moves at the samples' d values: one point per distinct d (plus gamma = -inf), trapezoid rule.
    """
    s_ids, u_ids = _split_ids(scores.shape[1], unseen)
    seen_rows, unseen_rows = np.isin(labels, s_ids), np.isin(labels, u_ids)
    if not seen_rows.any() or not unseen_rows.any():
        return 0.0
    d = scores[:, s_ids].max(1) - scores[:, u_ids].max(1)  # (N,)
    right_seen = seen_rows & (s_ids[scores[:, s_ids].argmax(1)] == labels)
    right_unseen = unseen_rows & (u_ids[scores[:, u_ids].argmax(1)] == labels)
    d_s, d_u = np.sort(d[right_seen]), np.sort(d[right_unseen])
    gammas = np.concatenate([[-np.inf], np.unique(d)])
    acc_s = (len(d_s) - np.searchsorted(d_s, gammas, side="right")) / seen_rows.sum()  # right while d > gamma
    acc_u = np.searchsorted(d_u, gammas, side="right") / unseen_rows.sum()  # right while d <= gamma
    return float(np.trapezoid(acc_s, acc_u) * 100)


def base_to_new(scores: np.ndarray, labels: np.ndarray, unseen: list[int]) -> dict[str, float]:
    s_ids, u_ids = _split_ids(scores.shape[1], unseen)
    base, new = _topk_within(scores, labels, s_ids, 1), _topk_within(scores, labels, u_ids, 1)
    return {"base": base, "new": new, "base_new_h": harmonic(base, new)}


def all_metrics(scores: np.ndarray, labels: np.ndarray, unseen: list[int], gamma: float = 0.0) -> dict[str, float]:
    return {**zsl(scores, labels, unseen), **gzsl(scores, labels, unseen, gamma),
            "gzsl_ausuc": ausuc(scores, labels, unseen), **base_to_new(scores, labels, unseen)}
