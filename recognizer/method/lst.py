"""GAP's input transform: CTR-GCN reads (I - P^k) x instead of x (GAP's "LST" models).

P is a binary joint graph, and its orientation differs per dataset in GAP's code:
- NTU (`graph.ntu_rgb_d`, InfoGCN's edge list rooted at the spine-mid joint): P[child, parent] = 1,
  so (P^k x)_v is the position of v's k-th ancestor and (I - P^k) x makes a joint relative to it
  (joints with fewer than k ancestors stay absolute). The deepest NTU joint has 7 ancestors, so
  GAP's joint-stream k = 8 leaves the input unchanged; the bone streams use k = 1.
- NW-UCLA (`graph.ucla`, CTR-GCN's tree rooted at the shoulder centre): P[parent, child] = 1, so
  (P^k x)_v sums v's descendants k generations down. With GAP's joint-stream k = 6 only the shoulder
  centre changes (minus both feet); the bone streams use k = 1.
Other layouts use the NTU orientation on their own parent tree (relative to the k-th ancestor).
`model.lst_k` maps a stream to k (0 or absent = off); the presets carry GAP's values.
"""

from __future__ import annotations

import numpy as np

from recognizer.method.graph import Layout

# InfoGCN's NTU tree as GAP builds A_outward_binary from it: (row, col) = (child, parent), 0-based.
_NTU_INFOGCN_PARENT_CHILD = [
    (2, 1), (2, 21), (21, 3), (3, 4), (21, 5), (5, 6), (6, 7), (7, 8), (8, 23), (23, 22), (21, 9), (9, 10),
    (10, 11), (11, 12), (12, 25), (25, 24), (1, 13), (13, 14), (14, 15), (15, 16), (1, 17), (17, 18), (18, 19),
    (19, 20),
]  # 1-based (parent, child) pairs as listed in GAP's graph/ntu_rgb_d.py


def step_matrix(layout: Layout) -> np.ndarray:
    """(V, V) binary P for `layout`, oriented as GAP's code does for that dataset."""
    v = layout.num_joints
    p = np.zeros((v, v), dtype=np.float64)
    if layout.name == "ntu25":
        for parent, child in _NTU_INFOGCN_PARENT_CHILD:
            p[child - 1, parent - 1] = 1
    elif layout.name == "ucla20":
        for child, parent in layout.inward:
            p[parent, child] = 1
    else:
        for child, parent in layout.inward:
            p[child, parent] = 1
    return p


def lst_matrix(layout: Layout, k: int) -> np.ndarray:
    """(V, V) float32 I - P^k (the identity for k = 0)."""
    v = layout.num_joints
    if k <= 0:
        return np.eye(v, dtype=np.float32)
    return (np.eye(v) - np.linalg.matrix_power(step_matrix(layout), k)).astype(np.float32)
