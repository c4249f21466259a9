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
    # GAP's joint-stream lists (Model_lst_4part): hips and legs share the hip joints 12 and 16.
    parts={
        "head": (2, 3, 20),
        "hands_arms": (4, 5, 6, 7, 8, 9, 10, 11, 21, 22, 23, 24),
        "hips": (0, 1, 2, 12, 16),
        "legs_feet": (12, 13, 14, 15, 16, 17, 18, 19),
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
    # GAP's joint-stream lists (Model_lst_4part_ucla): legs/feet include the hip joints 12 and 16.
    parts={
        "head": (2, 3),
        "hands_arms": (4, 5, 6, 7, 8, 9, 10, 11),
        "hips": (0, 1, 12, 16),
        "legs_feet": (12, 13, 14, 15, 16, 17, 18, 19),
    },
    center=1,  # spine (GAP's UCLA feeder centres on joint index 1 of frame 0)
    joint_names=(
        "hip centre", "spine", "shoulder centre", "head", "left shoulder", "left elbow", "left wrist",
        "left hand", "right shoulder", "right elbow", "right wrist", "right hand", "left hip",
        "left knee", "left ankle", "left foot", "right hip", "right knee", "right ankle", "right foot",
    ),
)

# COCO 17 keypoints (2D pose estimators: OpenPose/HRNet/PYSKL), rooted at the nose as PYSKL's graph.
COCO17_JOINTS = (
    "nose", "left eye", "right eye", "left ear", "right ear", "left shoulder", "right shoulder", "left elbow",
    "right elbow", "left wrist", "right wrist", "left hip", "right hip", "left knee", "right knee",
    "left ankle", "right ankle",
)
COCO17 = Layout(
    name="coco17",
    parents=(0, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    parts={
        "head": (0, 1, 2, 3, 4),
        "hands_arms": (5, 6, 7, 8, 9, 10),
        "hips": (11, 12),
        "legs_feet": (13, 14, 15, 16),
    },
    center=0,  # nose (there is no spine joint)
    joint_names=COCO17_JOINTS,
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (NTU25, UCLA20, COCO17)}


def layout_from_edges(name: str, edges: list, parts: dict, center: int = 0, root: int | None = None,
                      joint_names: tuple[str, ...] | list[str] = (), num_joints: int | None = None) -> Layout:
    """A custom skeleton from undirected 0-based joint pairs: parents by breadth-first search from `root`.

    The edges must form a tree over all joints (one parent each), so that the bone stream and the
    inward/outward graph subsets are defined; `parts` names the joints of the four part groups.
    """
    pairs = [(int(a), int(b)) for a, b in edges]
    v = num_joints if num_joints is not None else 1 + max((max(p) for p in pairs), default=center)
    root = center if root is None else int(root)
    if any(not (0 <= a < v and 0 <= b < v) or a == b for a, b in pairs) or not 0 <= root < v:
        raise ValueError(f"layout '{name}': an edge or the root is outside 0..{v - 1} (or is a self-loop)")
    if len(set(map(frozenset, pairs))) != v - 1:
        raise ValueError(f"layout '{name}': {v} joints need exactly {v - 1} distinct edges to form a tree")
    nbrs: dict[int, list[int]] = {j: [] for j in range(v)}
    for a, b in pairs:
        nbrs[a].append(b)
        nbrs[b].append(a)
    parents = {root: root}
    queue = [root]
    while queue:
        j = queue.pop(0)
        for k in nbrs[j]:
            if k not in parents:
                parents[k] = j
                queue.append(k)
    if len(parents) != v:
        raise ValueError(f"layout '{name}': joints {sorted(set(range(v)) - set(parents))} are not connected")
    if joint_names and len(joint_names) != v:
        raise ValueError(f"layout '{name}': {len(joint_names)} joint names for {v} joints")
    layout = Layout(name=name, parents=tuple(parents[j] for j in range(v)),
                    parts={str(k): tuple(int(j) for j in js) for k, js in parts.items()}, center=int(center),
                    joint_names=tuple(joint_names))
    if not 0 <= layout.center < v:
        raise ValueError(f"layout '{name}': centre joint {center} outside 0..{v - 1}")
    layout.validate()
    return layout


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"unknown skeleton layout '{name}' (known: {', '.join(sorted(LAYOUTS))})")
    return LAYOUTS[name]


def layout_to_dict(layout: Layout) -> dict:
    """The whole layout as plain JSON data (what meta.json and checkpoints store for custom skeletons)."""
    return {"name": layout.name, "edges": [list(e) for e in layout.inward], "center": layout.center,
            "root": next(j for j, p in enumerate(layout.parents) if j == p),
            "parts": {k: list(v) for k, v in layout.parts.items()}, "joint_names": list(layout.joint_names),
            "num_joints": layout.num_joints}


def layout_from_dict(spec: dict) -> Layout:
    """Inverse of `layout_to_dict`; parents come back identical (a tree has one parent per joint given its root)."""
    return layout_from_edges(name=str(spec.get("name", "custom")), edges=spec["edges"], parts=spec["parts"],
                             center=spec.get("center", 0), root=spec.get("root"),
                             joint_names=spec.get("joint_names", ()), num_joints=spec.get("num_joints"))


def layout_from_spec(spec: str | dict) -> Layout:
    """A shipped layout's name or a layout dict -> Layout (ValueError/KeyError/TypeError when malformed)."""
    if isinstance(spec, str):
        return get_layout(spec)
    if isinstance(spec, dict):
        return layout_from_dict(spec)
    raise TypeError(f"a layout is a name or an object with edges and parts, not {type(spec).__name__}")
