"""What every dataset hands to the trainer: padded arrays, true lengths, labels, names.

Every loader (synthetic, NW-UCLA, NTU, native format, ...) returns a `DatasetBundle`; the
`SkeletonDataset` below turns a split into training clips. Two clip modes (`data.clip.mode`):
- `crop`: a random 50-100 % crop of the valid frames resized to `window` frames (NTU, GAP's NTU feeder);
  test: the central `test_crop` fraction.
- `sample`: GAP's NW-UCLA feeder: random view rotation about x and y plus a random scale, per-clip
  min-max normalisation to [-1, 1], then `window` frame indices drawn at random over the whole clip
  and sorted; test: no rotation/scale, the same normalisation, evenly spaced frames (linspace).
All randomness is drawn from a generator seeded by (seed, epoch, position in the epoch) so that a
resumed run and a run with more loader workers see exactly the same clips, and the `repeat` copies of
a clip within one epoch each get their own draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from recognizer.method.graph import Layout


@dataclass
class Split:
    """One split. `data` may be a memory map; it is only read per sample."""

    data: np.ndarray  # (N, C, T_max, V, M) float32, zero-padded after `lengths[i]` frames
    labels: np.ndarray  # (N,) int64 in [0, num_classes)
    lengths: np.ndarray  # (N,) int, valid frames per sample (>= 1)
    names: list[str] = field(default_factory=list)  # sample names, for reports

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> Split:
        """The samples at positions `idx` (in that order), labels unchanged."""
        return Split(self.data[idx], self.labels[idx], self.lengths[idx],
                     [self.names[i] for i in idx] if self.names else [])


@dataclass
class DatasetBundle:
    name: str
    class_names: list[str]
    layout: Layout
    train: Split
    test: Split
    corpus: str | None = None  # default prompt corpus path for these classes
    centre: str = "none"  # centring the loader applied to stored clips (CENTRINGS); inference repeats it


@dataclass
class ClipConfig:
    """How a stored sequence becomes a model input (docs/method.md: data pipeline)."""

    mode: str = "crop"  # crop: crop-and-resize (NTU) | sample: GAP's NW-UCLA frame sampling
    window: int = 64  # frames per clip
    train_crop: tuple[float, float] = (0.5, 1.0)  # crop mode: fraction of valid frames kept, drawn uniformly
    test_crop: float = 0.95  # crop mode: central fraction at test time
    rotation: float = 0.3  # max |angle| in radians per axis in training (0 = off)
    rotation_axes: str = "xyz"  # which axes get a random rotation
    scale: tuple[float, float] = (1.0, 1.0)  # random isotropic scale range in training
    normalize: str = "none"  # none | minmax (per clip and axis to [-1, 1], train and test, as GAP's UCLA feeder)
    stream: str = "joint"  # joint | bone | joint_motion | bone_motion

    def check(self) -> None:
        if self.mode not in ("crop", "sample"):
            raise ValueError(f"data.clip.mode must be crop or sample, not '{self.mode}'")
        if self.normalize not in ("none", "minmax"):
            raise ValueError(f"data.clip.normalize must be none or minmax, not '{self.normalize}'")
        if self.window < 1:
            raise ValueError(f"data.clip.window must be >= 1, not {self.window}")


def crop_resize(x: np.ndarray, length: int, window: int, crop: float, offset_frac: float) -> np.ndarray:
    """Keep `crop` of the valid frames starting at `offset_frac` of the slack, resize to `window`.

    x: (C, T_max, V, M) -> (C, window, V, M), by linear interpolation in time.
    """
    length = max(int(length), 1)
    keep = int(np.clip(round(length * crop), 1, length))
    start = int(round((length - keep) * offset_frac))
    clip = x[:, start : start + keep]  # (C, keep, V, M)
    if keep == 1:
        return np.repeat(clip, window, axis=1)
    pos = np.linspace(0, keep - 1, window)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, keep - 1)
    w = (pos - lo)[None, :, None, None]
    return (clip[:, lo] * (1 - w) + clip[:, hi] * w).astype(np.float32)


def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """(3,) angles about x, y, z -> (3, 3) rotation."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return (rz @ ry @ rx).astype(np.float32)


def view_transform(x: np.ndarray, angle_x: float, angle_y: float, scale: float) -> np.ndarray:
    """GAP's NW-UCLA view transform: row vectors times Ry(angle_y) Rx(angle_x) S. x: (3, T, V, M), radians."""
    cx, sx, cy, sy = np.cos(angle_x), np.sin(angle_x), np.cos(angle_y), np.sin(angle_y)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    m = ry @ rx @ (scale * np.eye(3))  # applied to row vectors: p' = p @ m
    return np.einsum("ij,itvm->jtvm", m, x).astype(np.float32)


def minmax(x: np.ndarray) -> np.ndarray:
    """Per-axis min-max over the whole clip to [-1, 1]. x: (C, T, V, M); a flat axis maps to -1 (as GAP: 0/0 -> nan
    there, which we avoid)."""
    flat = x.reshape(x.shape[0], -1)
    lo, hi = flat.min(1)[:, None, None, None], flat.max(1)[:, None, None, None]
    return (2 * (x - lo) / np.maximum(hi - lo, 1e-12) - 1).astype(np.float32)


def sample_frames(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(C, T, V, M) -> (C, len(idx), V, M)."""
    return np.ascontiguousarray(x[:, idx])


def random_frame_indices(rng: np.random.Generator, length: int, window: int) -> np.ndarray:
    """GAP's training draw: `window` indices sampled without replacement from 100 copies of 0..length-1, sorted."""
    pool = np.repeat(np.arange(length), 100)
    return np.sort(rng.choice(pool, size=window, replace=False))


def even_frame_indices(length: int, window: int) -> np.ndarray:
    """GAP's test frames: linspace over the whole clip, truncated to integers."""
    return np.linspace(0, length - 1, window).astype(np.int64)


def sampled_clip(x: np.ndarray, angle_x: float, angle_y: float, scale: float, idx: np.ndarray,
                 clip: ClipConfig) -> np.ndarray:
    """GAP's NW-UCLA training clip for given draws, in GAP's order: view transform, normalise, sample frames.
    x: (C, T, V, M) valid frames only; angles in radians."""
    if x.shape[0] == 3:
        x = view_transform(x, angle_x, angle_y, scale)
        if clip.normalize == "minmax":
            x = minmax(x)
    return sample_frames(x, idx)


def eval_clip(x: np.ndarray, length: int, clip: ClipConfig) -> np.ndarray:
    """The deterministic test-time clip of a stored sequence. x: (C, T_max, V, M) -> (C, window, V, M)."""
    length = max(int(length), 1)
    if clip.mode == "sample":
        x = x[:, :length]
        if clip.normalize == "minmax" and x.shape[0] == 3:
            x = minmax(x)
        return sample_frames(x, even_frame_indices(length, clip.window))
    x = crop_resize(x, length, clip.window, clip.test_crop, 0.5)
    return minmax(x) if clip.normalize == "minmax" and x.shape[0] == 3 else x


def train_clip(x: np.ndarray, length: int, clip: ClipConfig, rng: np.random.Generator) -> np.ndarray:
    """A random training clip of a stored sequence. x: (C, T_max, V, M) -> (C, window, V, M)."""
    length = max(int(length), 1)
    xyz = x.shape[0] == 3
    if clip.mode == "sample":
        ax, ay = rng.uniform(-clip.rotation, clip.rotation, 2) * [a in clip.rotation_axes for a in "xy"]
        scale = rng.uniform(*clip.scale)
        return sampled_clip(x[:, :length], ax, ay, scale, random_frame_indices(rng, length, clip.window), clip)
    crop = rng.uniform(*clip.train_crop)
    x = crop_resize(x, length, clip.window, crop, rng.uniform())
    if clip.rotation > 0 and xyz:
        angles = rng.uniform(-clip.rotation, clip.rotation, 3)
        angles *= np.array([a in clip.rotation_axes for a in "xyz"], dtype=float)
        x = np.einsum("ij,jtvm->itvm", rotation_matrix(angles), x)
    if xyz and clip.scale != (1.0, 1.0):
        x = x * np.float32(rng.uniform(*clip.scale))
    return minmax(x) if xyz and clip.normalize == "minmax" else x


def to_stream(x: np.ndarray, layout: Layout, stream: str) -> np.ndarray:
    """joint / bone (joint minus parent) / *_motion (frame difference). x: (C, T, V, M)."""
    if stream not in ("joint", "bone", "joint_motion", "bone_motion"):
        raise ValueError(f"unknown stream '{stream}' (joint, bone, joint_motion, bone_motion)")
    if stream.startswith("bone"):
        x = x - x[:, :, layout.parents]
    if stream.endswith("motion"):
        m = np.zeros_like(x)
        m[:, :-1] = x[:, 1:] - x[:, :-1]
        x = m
    return x


class SkeletonDataset(Dataset):
    """Clips of one split: (C, window, V, M) float tensors, label, index.

    In training the sampler passes a position key `k = copy * N + i` (copy = which of the `repeat`
    passes of the epoch): sample `i` is read and the random draw is seeded by (seed, epoch, k), so the
    copies of a clip in one epoch get different crops, rotations and frames. With repeat 1, k = i.
    """

    def __init__(self, split: Split, layout: Layout, clip: ClipConfig, train: bool, seed: int = 0):
        clip.check()
        self.split, self.layout, self.clip, self.train, self.seed = split, layout, clip, train, seed
        # In shared memory: persistent loader workers (data.persistent_workers) see each new epoch too.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int, int]:
        i = k % len(self.split)
        x = np.asarray(self.split.data[i], dtype=np.float32)  # (C, T_max, V, M)
        length = int(self.split.lengths[i])
        if self.train:
            x = train_clip(x, length, self.clip, np.random.default_rng([self.seed, self.epoch, k]))
        else:
            x = eval_clip(x, length, self.clip)
        x = to_stream(x, self.layout, self.clip.stream)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(self.split.labels[i]), i


CENTRINGS = ("none", "first-frame")  # data.options.centre / meta.json "centre"


def centre_clip(x: np.ndarray, joint: int, length: int | None = None, channels: int | None = None) -> np.ndarray:
    """Subtract person 0's `joint` in its first non-empty frame from every non-empty frame of every person.

    What the NTU and NW-UCLA loaders do (CTR-GCN's seq_transformation, which also skips the leading
    frames where actor 1 is absent): x (C, T, V, M); padding and empty persons stay zero; only the
    first `channels` channels (coordinates, not a score) move. A clip whose first frames are empty
    (a tracker that found the body late) is centred on the first frame that holds person 0.
    """
    c = x.shape[0] if channels is None else min(channels, x.shape[0])
    t = x.shape[1] if length is None else int(length)
    out = np.array(x, dtype=np.float32)
    present = np.any(out[:, :t] != 0, axis=(0, 2))  # (t, M)
    first = np.flatnonzero(present[:, 0]) if present.size else np.zeros(0, dtype=int)
    if not len(first):  # person 0 never appears: nothing to centre on
        return out
    origin = out[:c, first[0], joint, 0]
    out[:c, :t] -= origin[:, None, None, None] * present[None, :, None, :]
    return out
