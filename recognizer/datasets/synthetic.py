"""The embedded default dataset: procedurally generated 3D skeletons in the NTU 25-joint layout.

Ten real NTU classes whose motions differ by body part (waving, kicking, jumping, sitting, standing,
clapping, nodding, saluting, crossing hands, squatting). A small forward-kinematics body is driven by
per-class joint-angle curves; every clip varies subject size, speed, timing, amplitude, which side
acts, sensor noise, idle sway and camera rotation, so the task is learnable but not trivial (sitting
down vs squatting down, saluting vs waving share most of their motion). Fully deterministic from a
seed: `make train` needs nothing from outside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from corpus import CURATED, PROMPTS_DIR
from recognizer.datasets import register
from recognizer.datasets.base import DatasetBundle, Split
from recognizer.method.graph import NTU25

CLASS_NAMES = [line.strip() for line in (PROMPTS_DIR / "classes" / "synthetic.txt").read_text().splitlines()
               if line.strip()]
T_MAX = 100
X, Y, Z = np.eye(3)


def _pulse(p: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((p - centre) / width) ** 2)


def _ramp(p: np.ndarray, start: float, end: float) -> np.ndarray:
    """Smooth 0 -> 1 between start and end."""
    s = np.clip((p - start) / max(end - start, 1e-6), 0, 1)
    return s * s * (3 - 2 * s)


def _hold(p: np.ndarray, a: float = 0.15, b: float = 0.85) -> np.ndarray:
    """Raise, hold, lower: 0 -> 1 -> 0."""
    return _ramp(p, 0.0, a) * (1 - _ramp(p, b, 1.0))


def _rot_x(v: np.ndarray, ang: np.ndarray) -> np.ndarray:
    """Rotate (T, 3) vectors about the x axis (positive = towards +z from -y)."""
    c, s = np.cos(ang), np.sin(ang)
    return np.stack([v[:, 0], c * v[:, 1] - s * v[:, 2], s * v[:, 1] + c * v[:, 2]], 1)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-8)


def _angles(cls: int, p: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Joint-angle curves (radians, metres) of one class over phase p in [0, 1]; acting side = right."""
    t = len(p)
    z = np.zeros(t)
    a = {k: z.copy() for k in ("lean", "nod", "dy", "dz", "l_flex", "l_abd", "l_elbow", "r_flex", "r_abd",
                               "r_elbow", "l_hip", "l_knee", "r_hip", "r_knee")}
    a["l_abd"] += 0.12
    a["r_abd"] += 0.12
    a["l_elbow"] += 0.15
    a["r_elbow"] += 0.15
    amp = rng.uniform(0.6, 1.3)
    freq = rng.uniform(2.0, 4.0)
    if cls == 0:  # hand waving: arm raised sideways, forearm swinging
        h = _hold(p)
        a["r_abd"] += h * (1.9 + 0.35 * amp * np.sin(2 * np.pi * freq * p))
        a["r_elbow"] += h * 0.8
    elif cls == 1:  # kicking something
        c = rng.uniform(0.45, 0.6)
        a["r_knee"] += 1.3 * _pulse(p, c - 0.1, 0.07)
        a["r_hip"] += amp * 1.2 * _pulse(p, c, 0.08)
        a["lean"] -= 0.15 * _pulse(p, c, 0.1)
        a["l_abd"] += 0.3 * _pulse(p, c, 0.12)
    elif cls == 2:  # jump up
        c = rng.uniform(0.45, 0.6)
        crouch = _pulse(p, c - 0.15, 0.06) + 0.7 * _pulse(p, c + 0.15, 0.05)
        for side in "lr":
            a[f"{side}_knee"] += 1.1 * crouch
            a[f"{side}_hip"] += 0.8 * crouch
            a[f"{side}_flex"] += amp * 2.4 * _pulse(p, c, 0.07)
        a["dy"] += amp * 0.35 * _pulse(p, c, 0.06) - 0.2 * crouch
        a["lean"] += 0.3 * crouch
    elif cls in (3, 4):  # sitting down / standing up (from sitting): monotonic, hips move back
        s = _ramp(p, rng.uniform(0.1, 0.3), rng.uniform(0.6, 0.9))
        s = s if cls == 3 else 1 - s
        for side in "lr":
            a[f"{side}_hip"] += 1.5 * s
            a[f"{side}_knee"] += 1.5 * s
        a["dy"] -= 0.45 * s
        a["dz"] -= 0.25 * s
        a["lean"] += 0.2 * s + 0.5 * amp * _pulse(s, 0.5, 0.2)
    elif cls == 5:  # clapping: both forearms in front, hands meeting repeatedly
        h = _hold(p)
        beat = 0.5 * (1 + np.sin(2 * np.pi * freq * p))
        for side in "lr":
            a[f"{side}_flex"] += h * 0.9
            a[f"{side}_abd"] += h * (0.45 * beat - 0.1)
            a[f"{side}_elbow"] += h * 1.3
    elif cls == 6:  # nod head / bow
        n = rng.integers(1, 3)
        wave = np.clip(np.sin(np.pi * n * p), 0, None)
        if rng.uniform() < 0.5:
            a["nod"] += amp * 0.6 * wave
        else:
            a["lean"] += amp * 0.5 * wave
            a["nod"] += 0.3 * wave
    elif cls == 7:  # salute: elbow out to the side, hand to the forehead
        h = _hold(p, 0.2, 0.8)
        a["r_abd"] += h * 1.3 * amp
        a["r_flex"] += h * 0.35
        a["r_elbow"] += h * 2.2
    elif cls == 8:  # cross hands in front (say stop)
        h = _hold(p, 0.25, 0.75)
        for side in "lr":
            a[f"{side}_flex"] += h * 1.4 * amp
            a[f"{side}_abd"] -= h * 0.5
            a[f"{side}_elbow"] += h * 0.6
    elif cls == 9:  # squat down: straight down and back up, arms forward for balance
        h = _hold(p, rng.uniform(0.2, 0.35), rng.uniform(0.65, 0.8))
        for side in "lr":
            a[f"{side}_hip"] += 1.7 * h * amp
            a[f"{side}_knee"] += 2.1 * h * amp
            a[f"{side}_flex"] += 1.1 * h
        a["dy"] -= 0.5 * h * amp
        a["lean"] += 0.35 * h
    return a


def _limb(origin: np.ndarray, direction: np.ndarray, length: float) -> np.ndarray:
    return origin + direction * length


def _arm(shoulder, torso_lean, flex, abd, elbow, side, s):
    """Shoulder (T,3) + angles -> elbow, wrist, hand, hand tip, thumb."""
    lat = side  # +1 left (+x), -1 right
    down = np.tile(-Y, (len(flex), 1))
    # abduction: rotate the hanging arm outwards in the frontal plane, then flex forward about x
    upper = np.stack([lat * np.sin(abd), -np.cos(abd), np.zeros_like(abd)], 1)
    upper = _rot_x(upper, flex + torso_lean)
    # the forearm bends towards the front/up, perpendicular to the upper arm
    hint = _rot_x(np.tile(Z, (len(flex), 1)), torso_lean) + 0.3 * np.tile(Y, (len(flex), 1)) - 0.4 * lat * X
    perp = _unit(hint - (hint * upper).sum(1, keepdims=True) * upper)
    fore = _unit(np.cos(elbow)[:, None] * upper + np.sin(elbow)[:, None] * perp)
    e = _limb(shoulder, upper, 0.28 * s)
    w = _limb(e, fore, 0.25 * s)
    h = _limb(w, fore, 0.08 * s)
    tip = _limb(h, fore, 0.06 * s)
    thumb = h + 0.04 * s * _unit(perp - lat * X) + 0 * down
    return e, w, h, tip, thumb


def _leg(hip, flex, knee, s):
    thigh = _rot_x(np.tile(-Y, (len(flex), 1)), flex)
    shin = _rot_x(np.tile(-Y, (len(flex), 1)), flex - knee)
    k = _limb(hip, thigh, 0.42 * s)
    ankle = _limb(k, shin, 0.42 * s)
    foot = ankle + np.array([0.0, -0.04, 0.12]) * s
    return k, ankle, foot


def render(a: dict[str, np.ndarray], s: float) -> np.ndarray:
    """Angle curves -> (T, 25, 3) joint positions in the person's frame (NTU joint order)."""
    t = len(a["dy"])
    j = np.zeros((t, 25, 3))
    root = np.stack([np.zeros(t), 0.95 * s + a["dy"], a["dz"]], 1)
    up = _rot_x(np.tile(Y, (t, 1)), a["lean"])
    j[:, 0] = root
    j[:, 1] = root + up * 0.25 * s
    j[:, 20] = root + up * 0.5 * s
    j[:, 2] = j[:, 20] + up * 0.07 * s
    j[:, 3] = j[:, 2] + _rot_x(np.tile(Y, (t, 1)), a["lean"] + a["nod"]) * 0.15 * s
    for side, (sh, el, wr, ha, tip, th) in ((1, (4, 5, 6, 7, 21, 22)), (-1, (8, 9, 10, 11, 23, 24))):
        p = "l" if side == 1 else "r"
        j[:, sh] = j[:, 20] + side * X * 0.18 * s - up * 0.02 * s
        out = _arm(j[:, sh], a["lean"], a[f"{p}_flex"], a[f"{p}_abd"], a[f"{p}_elbow"], side, s)
        for idx, pos in zip((el, wr, ha, tip, th), out):
            j[:, idx] = pos
    for side, (hp, kn, an, ft) in ((1, (12, 13, 14, 15)), (-1, (16, 17, 18, 19))):
        p = "l" if side == 1 else "r"
        j[:, hp] = root + side * X * 0.1 * s - Y * 0.04 * s
        j[:, kn], j[:, an], j[:, ft] = _leg(j[:, hp], a[f"{p}_hip"], a[f"{p}_knee"], s)
    return j


def _mirror(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Swap left and right: the same action done with the other side."""
    out = dict(a)
    for k in a:
        if k[:2] in ("l_", "r_"):
            out[k] = a[("r_" if k[0] == "l" else "l_") + k[2:]]
    return out


def make_clip(cls: int, rng: np.random.Generator) -> np.ndarray:
    """One clip: (T, 25, 3) in camera coordinates (metres), T in [40, 100]."""
    t = int(rng.integers(40, T_MAX + 1))
    p = np.linspace(0, 1, t)
    warp = rng.uniform(0.7, 1.4)  # uneven speed within the clip
    p = p**warp
    p = np.clip(p + rng.uniform(-0.08, 0.08), 0, 1)
    a = _angles(cls, p, rng)
    # a faint trace of another class's motion (people fidget), so no single cue is enough
    other = _angles(int(rng.integers(len(CLASS_NAMES))), np.clip(p + rng.uniform(-0.3, 0.3), 0, 1), rng)
    w = rng.uniform(0.0, 0.35)
    a = {k: v + w * (other[k] - _angles(-1, p, rng)[k]) for k, v in a.items()}
    a["lean"] = a["lean"] + 0.03 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * p + rng.uniform(0, 6))  # sway
    if rng.uniform() < 0.3:
        a = _mirror(a)
    joints = render(a, rng.uniform(0.85, 1.15))
    yaw, pitch = rng.uniform(-np.pi / 2, np.pi / 2), rng.uniform(-0.2, 0.2)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    rot = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    joints = joints @ rot.T + np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.3), rng.uniform(2.5, 3.5)])
    joints += rng.normal(0, 0.025, joints.shape)
    return joints.astype(np.float32)


def make_split(n_per_class: int, seed: int, split_id: int) -> Split:
    n = n_per_class * len(CLASS_NAMES)
    data = np.zeros((n, 3, T_MAX, 25, 1), dtype=np.float32)  # (N, C, T, V, M)
    labels = np.zeros(n, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    names = []
    for cls in range(len(CLASS_NAMES)):
        for i in range(n_per_class):
            k = cls * n_per_class + i
            clip = make_clip(cls, np.random.default_rng([seed, split_id, cls, i]))  # (T, V, 3)
            clip = clip - clip[0, NTU25.center]  # centre on spine mid of the first frame, as NTU
            data[k, :, : len(clip), :, 0] = clip.transpose(2, 0, 1)
            labels[k], lengths[k] = cls, len(clip)
            names.append(f"synthetic_{'train' if split_id == 0 else 'test'}_c{cls:02d}_{i:04d}")
    return Split(data, labels, lengths, names)


@register("synthetic")
def build(root: str | None = None, train_per_class: int = 60, test_per_class: int = 30, seed: int = 0) -> DatasetBundle:
    """`root` is unused: the data is generated (in about a second)."""
    return DatasetBundle(
        name="synthetic",
        class_names=list(CLASS_NAMES),
        layout=NTU25,
        train=make_split(train_per_class, seed, 0),
        test=make_split(test_per_class, seed, 1),
        corpus=str(CURATED["ntu120"]),
    )


def _preview(path: str | Path) -> None:  # pragma: no cover - used to draw docs/synthetic.png
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 5, figsize=(15, 6))
    for cls, ax in enumerate(axes.flat):
        clip = make_clip(cls, np.random.default_rng([0, 9, cls]))
        for f in np.linspace(0, len(clip) - 1, 5).astype(int):
            for c, par in enumerate(NTU25.parents):
                ax.plot(clip[f, [c, par], 0] + 0.8 * f / len(clip), clip[f, [c, par], 1], "-", lw=1,
                        color=plt.cm.viridis(f / len(clip)))
        ax.set_title(CLASS_NAMES[cls], fontsize=8)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
