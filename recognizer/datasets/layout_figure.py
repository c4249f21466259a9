"""`pcle data show-layout`: a skeleton layout as a picture (joints numbered, part groups coloured) and a table.

Shipped layouts are drawn in a front-view rest pose (the person faces the viewer, so their left
side is on the right); a native dataset folder is drawn from its own first clip, which also shows
whether the stored joint order matches the declared layout; any other layout as a tree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recognizer.method.graph import COCO17, LAYOUTS, NTU25, PART_GROUP_NAMES, UCLA20, Layout

PART_COLOURS = {"head": "tab:purple", "hands_arms": "tab:orange", "hips": "tab:green", "legs_feet": "tab:blue"}
OTHER = "#9a9a9a"

# Front-view rest pose (x: the person's left, y: up) by joint name, shared by the Kinect layouts.
_KINECT = {
    "spine base": (0, 0), "spine mid": (0, 0.3), "neck": (0, 0.64), "head": (0, 0.8),
    "left shoulder": (0.2, 0.55), "left elbow": (0.3, 0.3), "left wrist": (0.35, 0.08), "left hand": (0.37, 0.0),
    "right shoulder": (-0.2, 0.55), "right elbow": (-0.3, 0.3), "right wrist": (-0.35, 0.08),
    "right hand": (-0.37, 0.0), "left hip": (0.1, -0.05), "left knee": (0.12, -0.45), "left ankle": (0.13, -0.85),
    "left foot": (0.2, -0.9), "right hip": (-0.1, -0.05), "right knee": (-0.12, -0.45),
    "right ankle": (-0.13, -0.85), "right foot": (-0.2, -0.9), "spine shoulder": (0, 0.55),
    "left hand tip": (0.38, -0.1), "left thumb": (0.44, 0.02), "right hand tip": (-0.38, -0.1),
    "right thumb": (-0.44, 0.02), "hip centre": (0, 0), "spine": (0, 0.3), "shoulder centre": (0, 0.55),
}
_COCO = {
    "nose": (0, 0.72), "left eye": (0.06, 0.8), "right eye": (-0.06, 0.8), "left ear": (0.13, 0.76),
    "right ear": (-0.13, 0.76), "left shoulder": (0.2, 0.55), "right shoulder": (-0.2, 0.55),
    "left elbow": (0.3, 0.3), "right elbow": (-0.3, 0.3), "left wrist": (0.35, 0.08), "right wrist": (-0.35, 0.08),
    "left hip": (0.1, -0.05), "right hip": (-0.1, -0.05), "left knee": (0.12, -0.45), "right knee": (-0.12, -0.45),
    "left ankle": (0.13, -0.85), "right ankle": (-0.13, -0.85),
}
REST_POSES = {layout.name: np.array([names[n] for n in layout.joint_names], dtype=float)
              for layout, names in ((NTU25, _KINECT), (UCLA20, _KINECT), (COCO17, _COCO))}


def tree_positions(layout: Layout) -> np.ndarray:
    """(V, 2) a tidy tree: the root on top, each level lower, leaves side by side, parents above their children."""
    root = next(j for j, p in enumerate(layout.parents) if j == p)
    children: dict[int, list[int]] = {j: [] for j in range(layout.num_joints)}
    for c, p in layout.inward:
        children[p].append(c)
    pos = np.zeros((layout.num_joints, 2))
    next_x = [0.0]

    def place(j: int, depth: int) -> None:
        for c in children[j]:
            place(c, depth + 1)
        if children[j]:
            pos[j, 0] = np.mean([pos[c, 0] for c in children[j]])
        else:
            pos[j, 0] = next_x[0]
            next_x[0] += 1.0
        pos[j, 1] = -depth

    place(root, 0)
    return pos


def rest_pose(layout: Layout) -> np.ndarray:
    """A shipped layout (by structure, whatever its name) in its rest pose, anything else as a tree."""
    for name, shipped in LAYOUTS.items():
        if shipped.parents == layout.parents:
            return REST_POSES[name]
    return tree_positions(layout)


def pose_from_clip(data: np.ndarray, length: int) -> np.ndarray | None:
    """(V, 2) person 0 in the first non-empty frame of a stored clip (C, T, V, M); 2D pixel y points down."""
    x = np.asarray(data[:, :length, :, 0], dtype=float)  # (C, T, V)
    used = np.flatnonzero(np.any(x != 0, axis=(0, 2)))
    if not len(used) or x.shape[0] < 2:
        return None
    xy = x[:2, used[0]].T.copy()
    if x.shape[0] == 2:  # image coordinates
        xy[:, 1] *= -1
    return xy


def part_of(layout: Layout) -> list[str | None]:
    """The first part group each joint belongs to (None: in no group)."""
    out: list[str | None] = [None] * layout.num_joints
    for g in PART_GROUP_NAMES:
        for j in layout.parts.get(g, ()):
            out[j] = out[j] or g
    return out


# label positions tried in turn (points from the joint): up-right first, then around it, farther and farther
_LABEL_SPOTS = [(d * np.cos(a), d * np.sin(a)) for d in (11.0, 16.0, 22.0, 30.0, 40.0)
                for a in np.linspace(np.pi / 4, 2 * np.pi + np.pi / 4, 8, endpoint=False)]
MARKER_SIZE = 120  # joint dots, points^2


def place_labels(fig, ax, xy: np.ndarray) -> list:
    """Number every joint where its label overlaps no other joint's dot and no earlier label (dense hands
    fan out instead of printing over each other): the first free spot of `_LABEL_SPOTS`, measured on the
    drawn figure."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    r = 0.5 * np.sqrt(MARKER_SIZE) * fig.dpi / 72  # a dot's radius in pixels
    placed = [Bbox.from_extents(px - r, py - r, px + r, py + r) for px, py in ax.transData.transform(xy)]
    texts = []
    for j, (x, y) in enumerate(xy):
        for spot in _LABEL_SPOTS:
            text = ax.annotate(str(j), (x, y), xytext=spot, textcoords="offset points", fontsize=9, zorder=4,
                               ha="center", va="center")
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed) or spot == _LABEL_SPOTS[-1]:
                break
            text.remove()
        placed.append(box)
        texts.append(text)
    return texts


def draw_layout(layout: Layout, out: str | Path, pose: np.ndarray | None = None, title: str | None = None,
                dpi: int = 100) -> Path:
    from recognizer.analysis.report import save_figure

    return save_figure(layout_figure(layout, pose, title, dpi), out, dpi)


def layout_figure(layout: Layout, pose: np.ndarray | None = None, title: str | None = None, dpi: int = 100):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    xy = rest_pose(layout) if pose is None else np.asarray(pose, dtype=float)
    span = float(np.ptp(xy, axis=0).max()) or 1.0
    groups = part_of(layout)
    fig, ax = plt.subplots(figsize=(5.0, 6.0), dpi=dpi)
    for c, p in layout.inward:
        ax.plot(*xy[[c, p]].T, color="#555555", lw=2, zorder=1)
    colours = [PART_COLOURS.get(g, OTHER) if g else OTHER for g in groups]
    ax.scatter(*xy.T, s=MARKER_SIZE, c=colours, edgecolors="black", linewidths=0.6, zorder=2)
    ax.scatter(*xy[layout.center], s=420, facecolors="none", edgecolors="red", linewidths=1.6, zorder=3)
    pad = 0.08 * span
    ax.set_xlim(xy[:, 0].min() - pad, xy[:, 0].max() + 2 * pad)
    ax.set_ylim(xy[:, 1].min() - pad, xy[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    handles = [Line2D([], [], marker="o", ls="", color=PART_COLOURS[g], label=g) for g in PART_GROUP_NAMES]
    handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="none", markeredgecolor="red",
                          label=f"centre joint ({layout.center})"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=8, frameon=False)
    ax.set_title(title or f"{layout.name}: {layout.num_joints} joints", fontsize=11)
    place_labels(fig, ax, xy)  # last: the axes' limits and size are final
    return fig


def joint_rows(layout: Layout) -> list[tuple[str, str, str, str]]:
    """(index, name, parent, part group) per joint; the root's parent is '-'."""
    groups = part_of(layout)
    return [(str(j), layout.joint_names[j] if layout.joint_names else "", "-" if p == j else str(p), groups[j] or "")
            for j, p in enumerate(layout.parents)]


def markdown_table(layout: Layout) -> str:
    """The joint-order table of docs/datasets.md."""
    lines = ["| # | joint | parent | part group |", "|---|---|---|---|"]
    lines += [f"| {i} | {n} | {p} | {g} |" for i, n, p, g in joint_rows(layout)]
    return "\n".join(lines)
