"""Geometric sanity checks of skeleton clips: is the joint order right, are the clips centred?

Both look at person 0 in the clip's non-empty frames, on the coordinate channels (at most 3):

- `tree_ratio`: the summed length of the layout's bones over that of the shortest tree joining
  the same points (minimum spanning tree), median over a few frames. A correct joint order links
  neighbours, so the two trees nearly coincide (NW-UCLA: 1.24 median, 1.47 at the 95th
  percentile); a wrong order links joints across the body (NW-UCLA stored in MSR-Action3D's
  order: 2.6; a random order: 3.6).
- `bone_variation`: for every bone its length's coefficient of variation over frames, the median
  over bones. A body's bones keep their length (NW-UCLA: 0.11); bones that stretch and shrink
  mean that the "bones" are not bones, or that joints are lost and found again.
- `origin_ratio`: how far the body sits from the origin, as the distance of its mean position
  from 0 over its size (median extent across frames). Centred clips stay below 1; raw camera
  coordinates (a person 3 m in front of a Kinect, keypoints in pixels) lie well above it.
"""

from __future__ import annotations

import numpy as np

from recognizer.datasets.base import centre_clip
from recognizer.method.graph import Layout

TREE_RATIO_WARN = 1.8  # median over clips (measured on NW-UCLA, see above)
BONE_VARIATION_WARN = 0.35  # median over clips of the median bone-length CV
ORIGIN_RATIO_WARN = 1.5  # body's mean distance from the origin / its size
SAMPLE = 500  # clips examined per split (spread evenly)


def _pose(x: np.ndarray, length: int | None = None) -> np.ndarray:
    """(C, T, V, M) -> (F, V, c): person 0's coordinates in its non-empty valid frames."""
    t = x.shape[1] if length is None else int(length)
    p = np.asarray(x[: min(3, x.shape[0]), :t, :, 0], dtype=np.float64).transpose(1, 2, 0)  # (t, V, c)
    return p[np.any(p != 0, axis=(1, 2))]


def bone_variation(x: np.ndarray, layout: Layout, length: int | None = None) -> float | None:
    """Median over bones of std/mean of the bone's length across frames (None: too few frames)."""
    p = _pose(x, length)
    if len(p) < 3 or not layout.inward:
        return None
    child, parent = np.array(layout.inward).T
    lengths = np.linalg.norm(p[:, child] - p[:, parent], axis=-1)  # (F, bones)
    mean = lengths.mean(0)
    ok = mean > 1e-9
    if not ok.any():
        return None
    return float(np.median(lengths.std(0)[ok] / mean[ok]))


def _spanning_length(points: np.ndarray) -> float:
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import pdist, squareform

    d = squareform(pdist(points)) + 1e-9  # coincident joints still count as linked
    np.fill_diagonal(d, 0)
    return float(minimum_spanning_tree(d).sum())


def tree_ratio(x: np.ndarray, layout: Layout, length: int | None = None, frames: int = 5) -> float | None:
    """Bones' summed length over the minimum spanning tree's, median over `frames` frames (>= 1)."""
    p = _pose(x, length)
    if not len(p) or not layout.inward:
        return None
    child, parent = np.array(layout.inward).T
    ratios = []
    for f in np.unique(np.linspace(0, len(p) - 1, frames).round().astype(int)):
        span = _spanning_length(p[f])
        if span > 1e-6:
            ratios.append(np.linalg.norm(p[f, child] - p[f, parent], axis=-1).sum() / span)
    return float(np.median(ratios)) if ratios else None


def origin_ratio(x: np.ndarray, length: int | None = None) -> float | None:
    """Distance of the body's mean position from the origin over the body's median extent."""
    p = _pose(x, length)
    if not len(p):
        return None
    extent = float(np.median(np.linalg.norm(p.max(1) - p.min(1), axis=-1)))
    if extent <= 1e-9:
        return None
    return float(np.linalg.norm(p.mean((0, 1))) / extent)


def sample_indices(n: int, k: int = SAMPLE) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n else np.zeros(0, dtype=int)


def split_geometry(data: np.ndarray, lengths: np.ndarray, layout: Layout, centre: bool = False,
                   channels: int | None = None) -> dict[str, np.ndarray]:
    """Clip indices and, per examined clip, tree ratio, bone variation and origin ratio (NaN: undefined).

    `centre`: look at the clips as the loader hands them over when meta.json asks for centring.
    """
    idx = sample_indices(len(lengths))
    out = {"index": idx, **{k: np.full(len(idx), np.nan) for k in ("tree", "variation", "origin")}}
    for k, i in enumerate(idx):
        x = np.asarray(data[i])
        if centre:
            x = centre_clip(x, layout.center, int(lengths[i]), channels)
        for key, value in (("tree", tree_ratio(x, layout, lengths[i])),
                           ("variation", bone_variation(x, layout, lengths[i])),
                           ("origin", origin_ratio(x, lengths[i]))):
            out[key][k] = np.nan if value is None else value
    return out


def _median(a: np.ndarray) -> float:
    return float(np.nanmedian(a)) if np.isfinite(a).any() else float("nan")


def geometry_warnings(data: np.ndarray, lengths: np.ndarray, layout: Layout, centre: bool = False,
                      channels: int | None = None) -> list[str]:
    """Messages (empty when all is well) about joint order and centring of one split."""
    g = split_geometry(data, lengths, layout, centre, channels)
    idx, var, ratio = g["index"], g["variation"], g["origin"]
    out = []
    hint = f"is the joint order the layout's? (`pcle data show-layout {layout.name}` shows it)"
    if _median(g["tree"]) > TREE_RATIO_WARN:
        out.append(f"the bones of layout '{layout.name}' are {_median(g['tree']):.1f} times as long as the shortest "
                   f"tree joining the joints (median over {int(np.isfinite(g['tree']).sum())} clips; a right joint "
                   f"order gives about 1.2): {hint}")
    if _median(var) > BONE_VARIATION_WARN:
        out.append(f"bone lengths of layout '{layout.name}' vary by {_median(var):.0%} across frames (median over "
                   f"{int(np.isfinite(var).sum())} clips; real bones keep their length): {hint}")
    far = np.isfinite(ratio) & (ratio > ORIGIN_RATIO_WARN)
    if far.any():
        worst = int(idx[np.nanargmax(np.where(far, ratio, np.nan))])
        out.append(f"{int(far.sum())} of {len(idx)} clips examined sit far from the origin (up to "
                   f"{np.nanmax(ratio):.1f} body sizes away, clip {worst}): {centring_advice(layout, centre)}")
    return out


def centring_advice(layout: Layout, centred: bool) -> str:
    """What to do about clips far from the origin; never advises a centring that is already on."""
    if not centred:
        return "centre them (meta.json \"centre\": \"first-frame\")"
    joint = layout.joint_names[layout.center] if layout.joint_names else f"joint {layout.center}"
    return (f"they are centred already (\"centre\": \"first-frame\" subtracts the layout's centre joint, "
            f"{layout.center} '{joint}', in each clip's first non-empty frame), so that joint does not follow "
            "the body: is it tracked in these clips, and is the layout's \"center\" the right joint?")
