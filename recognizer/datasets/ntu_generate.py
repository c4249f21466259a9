"""Raw NTU RGB+D `.skeleton` files in the exact official text format, generated.

The full NTU sets are distributed on request only, so tests and benchmarks build small raw trees
here: one or two actors (two for the mutual actions), optional noise bodies of the three kinds the
denoiser must remove or ignore (a short-lived ghost, a wide flat object, a still bystander), and
frames without any body. Content is a deterministic function of (sample name, seed).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A real first frame (S001C001P001R001A001), 25 joints x (x, y, z) in metres, re-centred below.
_TEMPLATE = np.array([
    [0.218, 0.173, 3.786], [0.232, 0.433, 3.715], [0.246, 0.688, 3.634], [0.213, 0.808, 3.582],
    [0.111, 0.611, 3.717], [0.101, 0.429, 3.743], [0.119, 0.343, 3.557], [0.117, 0.317, 3.551],
    [0.345, 0.574, 3.589], [0.421, 0.385, 3.628], [0.192, 0.319, 3.541], [0.130, 0.317, 3.543],
    [0.163, 0.175, 3.778], [0.198, -0.136, 3.904], [0.244, -0.420, 4.054], [0.204, -0.476, 4.094],
    [0.270, 0.168, 3.730], [0.311, -0.146, 3.818], [0.343, -0.433, 3.943], [0.295, -0.502, 3.969],
    [0.243, 0.625, 3.656], [0.120, 0.296, 3.532], [0.099, 0.346, 3.528], [0.087, 0.299, 3.546],
    [0.127, 0.281, 3.550],
])
POSE = _TEMPLATE - _TEMPLATE[1] * np.array([1, 1, 0])  # spine mid at x = y = 0, depth kept
ARMS = [5, 6, 7, 9, 10, 11, 21, 22, 23, 24]
MUTUAL = set(range(50, 61)) | set(range(106, 121))  # two-person actions (1-based)
JOINT_FMT = " ".join(["%.7g"] * 11) + " %d"


@dataclass
class GenBody:
    body_id: int
    start: int  # first file frame (0-based) the body appears in
    xyz: np.ndarray  # (F, 25, 3)
    actor: bool  # a real actor (kept by the denoiser) or noise


def _walker(rng: np.random.Generator, n: int, x0: float, action: int) -> np.ndarray:
    """An actor: template pose, drifting sideways, arms swinging at a class-dependent rate."""
    t = np.linspace(0, 1, n)[:, None]
    xyz = np.repeat(POSE[None], n, 0).copy()  # (F, 25, 3)
    xyz[..., 0] += x0 + rng.uniform(0.3, 0.6) * rng.choice([-1, 1]) * t
    xyz[..., 2] += rng.uniform(-0.3, 0.3)
    swing = 0.15 * np.sin(2 * np.pi * (1 + action % 5) * t + rng.uniform(0, 6))
    xyz[:, ARMS, 1] += swing
    xyz[:, ARMS, 2] -= 0.5 * swing
    return xyz + rng.normal(0, 0.004, xyz.shape)


def _object(rng: np.random.Generator, n: int) -> np.ndarray:
    """A wide, flat thing (a table edge) that Kinect took for a body: fails the spread test."""
    xyz = np.zeros((n, 25, 3))
    xyz[..., 0] = np.linspace(-0.8, 0.8, 25) + rng.uniform(-0.5, 0.5)
    xyz[..., 1] = rng.uniform(-0.4, -0.2) + rng.normal(0, 0.03, (n, 25))
    xyz[..., 2] = rng.uniform(2.5, 4.0)
    return xyz


def make_bodies(name: str, seed: int = 0, frames: tuple[int, int] = (40, 100),
                noise: bool = True) -> tuple[int, list[GenBody]]:
    """(file frame count, bodies) for one sample; mutual actions get two actors."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    action = int(name[-3:])
    n = int(rng.integers(frames[0], frames[1] + 1))
    lead = int(rng.integers(0, 3))  # empty frames at the start (no body tracked yet)
    ids = iter(rng.integers(72057594037927936, 72057594037999999, size=8).tolist())
    x0 = -0.4 if action in MUTUAL else 0.0
    bodies = [GenBody(next(ids), lead, _walker(rng, n - lead, x0, action), True)]
    if action in MUTUAL:
        bodies.append(GenBody(next(ids), lead, _walker(rng, n - lead, 0.4, action + 1), True))
    if noise and rng.uniform() < 0.6:
        k = int(rng.integers(2, 12))
        bodies.append(GenBody(next(ids), int(rng.integers(lead, n - k)), _walker(rng, k, 1.0, 0), False))
    if noise and rng.uniform() < 0.4:
        k = int(rng.integers(15, n - lead))
        bodies.append(GenBody(next(ids), lead, _object(rng, k), False))
    if noise and action in MUTUAL and rng.uniform() < 0.5:
        still = np.repeat(POSE[None] + [1.2, 0, 0.5], n - lead, 0) + rng.normal(0, 0.002, (n - lead, 25, 3))
        bodies.append(GenBody(next(ids), lead, still, False))
    return n, bodies


def _joint_block(xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(F, 25, 3) -> (F, 25, 12): projections, orientations and tracking states as Kinect writes."""
    f = len(xyz)
    z = np.maximum(xyz[..., 2], 0.5)
    depth = np.stack([256 + 365 * xyz[..., 0] / z, 212 - 365 * xyz[..., 1] / z], -1)
    color = np.stack([960 + 1060 * xyz[..., 0] / z, 540 - 1060 * xyz[..., 1] / z], -1)
    quat = rng.normal(0, 1, (f, 25, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    state = np.where(rng.uniform(size=(f, 25, 1)) < 0.1, 1, 2)
    return np.concatenate([xyz, depth, color, quat, state], -1)


def render(n_frames: int, bodies: list[GenBody], seed: int = 0, gaps: int = 1) -> str:
    """The file text (CRLF line ends, as the originals). `gaps` empty frames are punched mid-clip."""
    rng = np.random.default_rng(seed)
    empty = set(rng.integers(n_frames // 3, n_frames, size=gaps).tolist()) if gaps else set()
    blocks = []
    for b in bodies:
        info = f"{b.body_id} 0 1 1 1 1 0 {rng.uniform(-0.1, 0.1):.7g} {rng.uniform(-0.1, 0.1):.7g} 2"
        rows = _joint_block(b.xyz, rng).reshape(len(b.xyz), -1).tolist()
        joints = ["\r\n".join(JOINT_FMT % tuple(r[i : i + 12]) for i in range(0, 300, 12)) for r in rows]
        blocks.append((b.start, info, joints))
    lines = [str(n_frames)]
    for f in range(n_frames):
        here = [(info, js[f - s]) for s, info, js in blocks if s <= f < s + len(js)] if f not in empty else []
        lines.append(str(len(here)))
        for info, joint_text in here:
            lines += [info, "25", joint_text]
    return "\r\n".join(lines) + "\r\n"


def write_sample(path: str | Path, seed: int = 0, frames: tuple[int, int] = (40, 100),
                 noise: bool = True) -> None:
    """Write `<name>.skeleton`; its content follows from the file name and seed."""
    path = Path(path)
    n, bodies = make_bodies(path.stem, seed, frames, noise)
    path.write_text(render(n, bodies, seed), newline="")


def covering_names(benchmark: str) -> list[str]:
    """A small, fixed set of sample names with every split of `benchmark` represented.

    ntu60: setups 1-2, cameras 1-3, subjects 1-3 (1, 2 train in X-Sub), actions 1 and 58.
    ntu120 adds setups 18-19 (18 is X-Set train), subjects 45 (train) and 48, actions 61 and 120.
    """
    names = [f"S{s:03d}C{c:03d}P{p:03d}R001A{a:03d}" for s in (1, 2) for c in (1, 2, 3) for p in (1, 2, 3)
             for a in (1, 58)]
    if benchmark == "ntu120":
        names += [f"S{s:03d}C{c:03d}P{p:03d}R002A{a:03d}" for s in (18, 19) for c in (1, 2) for p in (45, 48)
                  for a in (61, 120)]
    return names


def generate_tree(root: str | Path, names: list[str], seed: int = 0, frames: tuple[int, int] = (40, 100),
                  noise: bool = True, unique: int | None = None) -> list[Path]:
    """Write one file per name under `root`. With `unique`, only that many distinct contents are
    generated (per one/two-actor kind) and reused: fast for large benchmark trees."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cache: dict[tuple[int, bool], str] = {}
    paths = []
    for i, name in enumerate(names):
        path = root / f"{name}.skeleton"
        if unique is None:
            write_sample(path, seed, frames, noise)
        else:
            mutual = int(name[-3:]) in MUTUAL
            key = (i % unique, mutual)
            if key not in cache:
                stand_in = f"S001C001P001R001A{58 if mutual else 1:03d}"
                n, bodies = make_bodies(stand_in, seed + key[0], frames, noise)
                cache[key] = render(n, bodies, seed + key[0])
            path.write_text(cache[key], newline="")
        paths.append(path)
    return paths
