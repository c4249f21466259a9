"""NTU RGB+D raw `.skeleton` text files -> denoised, centred two-actor sequences.

File format (whitespace-separated, one group per line): the frame count; per frame a body count;
per body a line of 10 body fields (bodyID, clippedEdges, handLeftConfidence, handLeftState,
handRightConfidence, handRightState, isRestricted, leanX, leanY, trackingState), the joint count
(25) and 25 joint lines of 12 values (x y z depthX depthY colorX colorY orientationW X Y Z
trackingState).

Denoising follows CTR-GCN / 2s-AGCN `get_raw_denoised_data.py` so that results are comparable:
frames without bodies are dropped; with several bodies, bodies seen in <= 11 frames are dropped,
then bodies whose x-spread exceeds 0.8 x their y-spread in >= 69.754 % of their frames (objects
mistaken for people), and the rest are ranked by motion (summed variance of their joints). The
most moving body is actor 1; the others fill actor 1 or 2 where their frame intervals do not
overlap. One deliberate difference: a body that disappears and comes back keeps its true frame
indices (the reference code assumes its frames are contiguous).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recognizer.datasets import DatasetError

NUM_JOINTS = 25
BODY_FIELDS = 10
JOINT_FIELDS = 12
MAX_BODIES = 6  # Kinect v2 tracks at most six people
T_MAX = 300  # NTU clips are at most 300 frames; longer ones are cut
CENTER_JOINT = 1  # spine mid
NOISE_LEN = 11  # bodies seen in this many frames or fewer are noise
SPREAD_RATIO = 0.8  # a frame is noisy where x-spread > 0.8 * y-spread
SPREAD_NOISE_FRACTION = 0.69754  # a body with this share of noisy frames is dropped


class SkeletonFileError(DatasetError):
    """A `.skeleton` file is unreadable, truncated or holds values no skeleton can have."""


@dataclass
class Body:
    body_id: str
    frames: list[int] = field(default_factory=list)  # indices among the non-empty frames
    rows: list[np.ndarray] = field(default_factory=list)  # per frame (25, 12)

    @property
    def values(self) -> np.ndarray:
        return np.stack(self.rows)  # (F, 25, 12)

    @property
    def xyz(self) -> np.ndarray:
        return self.values[..., :3]  # (F, 25, 3)


@dataclass
class RawSkeleton:
    num_frames: int  # frames in the file, with or without bodies
    dropped: list[int]  # file frames without any body
    bodies: dict[str, Body]  # in order of first appearance

    @property
    def num_valid(self) -> int:
        return self.num_frames - len(self.dropped)


def read_skeleton(path: str | Path) -> RawSkeleton:
    """Parse one file; every problem is a SkeletonFileError naming the file."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise SkeletonFileError(f"{path}: not a readable text file ({e})") from None
    return parse_skeleton_text(text, str(path))


def _numbers(tokens: list[str], where: str) -> np.ndarray:
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        for i, tok in enumerate(tokens):
            try:
                float(tok)
            except ValueError:
                raise SkeletonFileError(f"{where}: not a number: {tok[:40]!r} (value {i + 1})") from None
        raise SkeletonFileError(f"{where}: unreadable numbers") from None


class _Reader:
    """Walks the token stream; errors say where the file stopped making sense."""

    def __init__(self, text: str, where: str):
        self.tokens = text.split()
        self.where = where
        if not self.tokens:
            raise SkeletonFileError(f"{where}: empty file")
        self.values = _numbers(self.tokens, where)
        self.pos = 0

    def fail(self, msg: str) -> SkeletonFileError:
        return SkeletonFileError(f"{self.where}: {msg}")

    def need(self, k: int, what: str) -> None:
        if self.pos + k > len(self.values):
            raise self.fail(f"truncated: the file ends inside {what}")

    def count(self, what: str, hi: int) -> int:
        self.need(1, what)
        tok = self.tokens[self.pos]
        if not (tok.isascii() and tok.isdigit()) or int(tok) > hi:
            raise self.fail(f"{what} is {tok[:40]!r}, expected an integer in 0..{hi}")
        self.pos += 1
        return int(tok)


def parse_skeleton_text(text: str, where: str = "<text>") -> RawSkeleton:
    r = _Reader(text, where)
    n = r.count("the frame count", 100_000)
    if n == 0:
        raise r.fail("the file has 0 frames")
    raw = RawSkeleton(n, [], {})
    valid = -1
    for f in range(n):
        nb = r.count(f"the body count of frame {f + 1}/{n}", MAX_BODIES)
        if nb == 0:
            raw.dropped.append(f)
            continue
        valid += 1
        seen: set[str] = set()
        for b in range(nb):
            here = f"frame {f + 1}/{n}, body {b + 1}/{nb}"
            r.need(BODY_FIELDS, here)
            body_id = r.tokens[r.pos]
            if body_id in seen:
                raise r.fail(f"{here}: body id {body_id} appears twice in one frame")
            seen.add(body_id)
            r.pos += BODY_FIELDS
            nj = r.count(f"the joint count of {here}", 10_000)
            if nj != NUM_JOINTS:
                raise r.fail(f"{here}: {nj} joints, expected {NUM_JOINTS}")
            r.need(NUM_JOINTS * JOINT_FIELDS, f"the joints of {here}")
            rows = r.values[r.pos : r.pos + NUM_JOINTS * JOINT_FIELDS].reshape(NUM_JOINTS, JOINT_FIELDS)
            if not np.isfinite(rows[:, :3]).all():
                raise r.fail(f"{here}: NaN or infinite joint coordinates")
            r.pos += NUM_JOINTS * JOINT_FIELDS
            body = raw.bodies.setdefault(body_id, Body(body_id))
            body.frames.append(valid)
            body.rows.append(rows)
    if r.pos != len(r.values):
        raise r.fail(f"{len(r.values) - r.pos} values after the last of {n} frames (wrong frame count?)")
    if not raw.bodies:
        raise r.fail(f"no body in any of the {n} frames")
    return raw


def _motion(xyz: np.ndarray) -> float:
    """Summed variance of all joint positions: how much a body moves."""
    return float(np.sum(np.var(xyz.reshape(-1, 3), axis=0)))


def _spread_ok(xyz: np.ndarray) -> np.ndarray:
    """(F,) True where the body is taller than wide enough to be a person."""
    x, y = xyz[..., 0], xyz[..., 1]
    return (x.max(1) - x.min(1)) <= SPREAD_RATIO * (y.max(1) - y.min(1))


def denoise(bodies: dict[str, Body]) -> list[Body]:
    """Drop noise bodies; return the rest, most moving first (the standard rules)."""
    if len(bodies) <= 1:
        return list(bodies.values())
    kept = {k: b for k, b in bodies.items() if len(b.frames) > NOISE_LEN}
    if not kept:  # everything is short: the reference code crashes here; keep the longest
        return [max(bodies.values(), key=lambda b: len(b.frames))]
    if len(kept) == 1:
        return list(kept.values())
    motion = {k: _motion(b.xyz) for k, b in kept.items()}
    for k, b in list(kept.items()):
        if len(kept) == 1:
            break
        ok = _spread_ok(b.xyz)
        noisy = int((~ok).sum())
        if noisy == 0:
            continue
        if noisy / len(ok) >= SPREAD_NOISE_FRACTION:
            del kept[k]
        else:
            motion[k] = min(motion[k], _motion(b.xyz[ok]))
    return sorted(kept.values(), key=lambda b: motion[b.body_id], reverse=True)


def two_actors(ordered: list[Body], num_valid: int) -> np.ndarray:
    """Place ranked bodies into two actor slots without overlapping in time -> (F, 2, 25, 3)."""
    out = np.zeros((num_valid, 2, NUM_JOINTS, 3), dtype=np.float32)
    first = ordered[0]
    out[first.frames, 0] = first.xyz
    s1, e1 = first.frames[0], first.frames[-1]
    s2, e2 = 0, 0
    for b in ordered[1:]:
        s, e = b.frames[0], b.frames[-1]
        if min(e1, e) - max(s1, s) <= 0:
            out[b.frames, 0] = b.xyz
            s1, e1 = min(s, s1), max(e, e1)
        elif min(e2, e) - max(s2, s) <= 0:
            out[b.frames, 1] = b.xyz
            s2, e2 = min(s, s2), max(e, e2)
    return out


def to_sequence(raw: RawSkeleton, where: str = "<text>", t_max: int = T_MAX) -> np.ndarray:
    """Denoise, drop empty frames, centre on actor 1's spine mid in its first frame.

    Returns (C=3, L, V=25, M=2) float32, L = valid frames (2 <= L <= t_max), unpadded.
    """
    joints = two_actors(denoise(raw.bodies), raw.num_valid)  # (F, 2, 25, 3)
    joints = joints[np.any(joints != 0, axis=(1, 2, 3))]
    if len(joints) < 2:
        raise SkeletonFileError(f"{where}: {len(joints)} valid frame(s); a clip needs at least 2")
    present = np.any(joints != 0, axis=(2, 3))  # (L, 2)
    origin = joints[int(np.argmax(present[:, 0])), 0, CENTER_JOINT]
    joints = np.where(present[:, :, None, None], joints - origin, 0).astype(np.float32)
    return np.ascontiguousarray(joints[:t_max].transpose(3, 0, 2, 1))  # (3, L, 25, 2)


def load_sequence(path: str | Path, t_max: int = T_MAX) -> np.ndarray:
    """One `.skeleton` file -> (3, L, 25, 2) float32 (see `to_sequence`)."""
    return to_sequence(read_skeleton(path), str(path), t_max)


def pad(seq: np.ndarray, t_max: int = T_MAX) -> np.ndarray:
    """(C, L, V, M) -> (C, t_max, V, M), zeros after L."""
    out = np.zeros((seq.shape[0], t_max, *seq.shape[2:]), dtype=np.float32)
    out[:, : seq.shape[1]] = seq[:, :t_max]
    return out
