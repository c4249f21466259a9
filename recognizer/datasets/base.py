"""What every dataset hands to the trainer: padded arrays, true lengths, labels, names.

Every loader (synthetic, NW-UCLA, NTU, native format, ...) returns a `DatasetBundle`; the
`SkeletonDataset` below turns a split into training clips (crop/resize, rotation, streams). All
randomness is drawn from a generator seeded by (seed, epoch, index) so that a resumed run and a
run with more loader workers see exactly the same clips.
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
    """How a stored sequence becomes a model input (DESIGN.md: data facts)."""

    window: int = 64  # frames after resize
    train_crop: tuple[float, float] = (0.5, 1.0)  # fraction of valid frames kept, drawn uniformly
    test_crop: float = 0.95  # central fraction at test time
    rotation: float = 0.3  # max |angle| in radians per axis in training (0 = off)
    rotation_axes: str = "xyz"  # which axes get a random rotation
    stream: str = "joint"  # joint | bone | joint_motion | bone_motion


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
    """Clips of one split: (C, window, V, M) float tensors, label, index."""

    def __init__(self, split: Split, layout: Layout, clip: ClipConfig, train: bool, seed: int = 0):
        self.split, self.layout, self.clip, self.train, self.seed = split, layout, clip, train, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        x = np.asarray(self.split.data[i], dtype=np.float32)  # (C, T_max, V, M)
        length = int(self.split.lengths[i])
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            crop = rng.uniform(*self.clip.train_crop)
            x = crop_resize(x, length, self.clip.window, crop, rng.uniform())
            if self.clip.rotation > 0 and x.shape[0] == 3:
                angles = rng.uniform(-self.clip.rotation, self.clip.rotation, 3)
                angles *= np.array([a in self.clip.rotation_axes for a in "xyz"], dtype=float)
                x = np.einsum("ij,jtvm->itvm", rotation_matrix(angles), x)
        else:
            x = crop_resize(x, length, self.clip.window, self.clip.test_crop, 0.5)
        x = to_stream(x, self.layout, self.clip.stream)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(self.split.labels[i]), i


CENTRINGS = ("none", "first-frame")  # data.options.centre / meta.json "centre"


def centre_clip(x: np.ndarray, joint: int, length: int | None = None, channels: int | None = None) -> np.ndarray:
    """Subtract person 0's `joint` in the first frame from every non-empty frame of every person.

    What the NTU and NW-UCLA loaders do (CTR-GCN's seq_transformation): x (C, T, V, M); padding and
    empty persons stay zero; only the first `channels` channels (coordinates, not a score) move.
    """
    c = x.shape[0] if channels is None else min(channels, x.shape[0])
    t = x.shape[1] if length is None else int(length)
    out = np.array(x, dtype=np.float32)
    present = np.any(out[:, :t] != 0, axis=(0, 2))  # (t, M)
    origin = out[:c, 0, joint, 0]
    out[:c, :t] -= origin[:, None, None, None] * present[None, :, None, :]
    return out
