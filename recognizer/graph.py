"""Skeleton layouts: joints, parents, the CTR-GCN adjacency subsets and body-part groups.

A `Layout` is plain data, so a custom dataset can describe its own skeleton (see docs/datasets.md):
a parent per joint (the root is its own parent), the joint used for centring and the joints of the
four part groups that the part-level contrastive loss pools over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PART_GROUP_NAMES = ("head", "hands_arms", "hips", "legs_feet")


@dataclass(frozen=True)
class Layout:
    name: str
    parents: tuple[int, ...]  # parents[j] = parent of joint j (0-based); root: itself
    parts: dict[str, tuple[int, ...]]  # PART_GROUP_NAMES -> joint indices
    center: int  # joint subtracted (first frame) when centring
    joint_names: tuple[str, ...] = field(default=())

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def inward(self) -> list[tuple[int, int]]:
        """(child, parent) edges, pointing to the root."""
        return [(j, p) for j, p in enumerate(self.parents) if j != p]

    def adjacency(self) -> np.ndarray:
        """(3, V, V): self links, normalised inward and outward edges (CTR-GCN's spatial graph)."""
        v = self.num_joints
        eye = np.eye(v, dtype=np.float32)
        inward = _edge_matrix(self.inward, v)
        outward = _edge_matrix([(p, c) for c, p in self.inward], v)
        return np.stack([eye, _normalise(inward), _normalise(outward)])

    def validate(self) -> None:
        v = self.num_joints
        if any(not 0 <= p < v for p in self.parents):
            raise ValueError(f"layout '{self.name}': a parent index is outside 0..{v - 1}")
        missing = set(PART_GROUP_NAMES) - set(self.parts)
        if missing:
            raise ValueError(f"layout '{self.name}': part groups missing: {sorted(missing)}")
        for g, joints in self.parts.items():
            if not joints or any(not 0 <= j < v for j in joints):
                raise ValueError(f"layout '{self.name}': part group '{g}' has no or invalid joints")


def _edge_matrix(edges: list[tuple[int, int]], v: int) -> np.ndarray:
    a = np.zeros((v, v), dtype=np.float32)
    for i, j in edges:
        a[j, i] = 1
    return a


def _normalise(a: np.ndarray) -> np.ndarray:
    """Column-normalise (A D^-1), as CTR-GCN's normalize_digraph."""
    deg = a.sum(0)
    inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1e-12), 0.0).astype(np.float32)
    return a @ np.diag(inv)


def _parents_from_one_based(pairs: list[tuple[int, int]], v: int, root: int) -> tuple[int, ...]:
    parents = list(range(v))
    for child, parent in pairs:
        parents[child - 1] = parent - 1
    parents[root] = root
    return tuple(parents)


# NTU RGB+D (Kinect v2), 25 joints. Edges as CTR-GCN's ntu_rgb_d graph (1-based child, parent).
NTU25 = Layout(
    name="ntu25",
    parents=_parents_from_one_based(
        [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
         (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
         (22, 23), (23, 8), (24, 25), (25, 12)],
        25, root=20,
    ),
    parts={
        "head": (2, 3, 20),
        "hands_arms": (4, 5, 6, 7, 8, 9, 10, 11, 21, 22, 23, 24),
        "hips": (0, 1, 12, 16),
        "legs_feet": (13, 14, 15, 17, 18, 19),
    },
    center=1,  # spine mid
    joint_names=(
        "spine base", "spine mid", "neck", "head", "left shoulder", "left elbow", "left wrist",
        "left hand", "right shoulder", "right elbow", "right wrist", "right hand", "left hip",
        "left knee", "left ankle", "left foot", "right hip", "right knee", "right ankle", "right foot",
        "spine shoulder", "left hand tip", "left thumb", "right hand tip", "right thumb",
    ),
)

# NW-UCLA (Kinect v1), 20 joints. Edges as CTR-GCN's ucla graph.
UCLA20 = Layout(
    name="ucla20",
    parents=_parents_from_one_based(
        [(1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3), (10, 9), (11, 10), (12, 11),
         (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19)],
        20, root=2,
    ),
    parts={
        "head": (2, 3),
        "hands_arms": (4, 5, 6, 7, 8, 9, 10, 11),
        "hips": (0, 1, 12, 16),
        "legs_feet": (13, 14, 15, 17, 18, 19),
    },
    center=1,  # spine
    joint_names=(
        "hip centre", "spine", "shoulder centre", "head", "left shoulder", "left elbow", "left wrist",
        "left hand", "right shoulder", "right elbow", "right wrist", "right hand", "left hip",
        "left knee", "left ankle", "left foot", "right hip", "right knee", "right ankle", "right foot",
    ),
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (NTU25, UCLA20)}


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown skeleton layout '{name}' (known: {', '.join(sorted(LAYOUTS))})")
    return LAYOUTS[name]
