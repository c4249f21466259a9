"""`pcle data import-text`: plain-text skeleton files -> a native dataset folder.

    SRC/<split>/<class name>/<clip>.txt      e.g. SRC/train/hand waving/a01_s01.txt

One clip per file, one person. Numbers are separated by spaces, tabs or commas; empty lines and
lines starting with '#' are ignored, and `skip` header lines are dropped. Two arrangements:

- `frame`: one frame per line, V x K numbers (joint 0's K values, then joint 1's, ...);
- `joint`: one joint per line, K numbers; V consecutive lines make a frame.

K (`per_joint`) is the numbers each joint has in the file; the first `channels` of them are kept
(e.g. MSR-Action3D's "x y z confidence": per_joint 4, channels 3). Joint order is the layout's.

Cleaning (both off by default, so an import keeps every frame it reads): `drop_zero_frames` removes
the frames whose kept numbers are all zero (a tracker that lost the body writes such frames; inside
a clip they would be trained on as a body collapsed onto the origin, docs/datasets.md), and
`skip_zero_clips` leaves out clips with no non-zero number at all (instead of writing a clip that
`pcle data check` reports as an error). What was dropped is listed in meta.json's "source".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recognizer.datasets import DatasetError
from recognizer.datasets.base import Split
from recognizer.datasets.native import make_meta, write_native
from recognizer.method.graph import Layout

SEPARATORS = re.compile(r"[\s,;]+")


def _rows(path: Path, skip: int) -> list[tuple[int, list[float]]]:
    """(line number, numbers) of every data line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not a readable text file ({e})") from None
    rows = []
    for number, line in enumerate(text.splitlines()[skip:], start=skip + 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            rows.append((number, [float(v) for v in SEPARATORS.split(line) if v]))
        except ValueError:
            raise DatasetError(f"{path}:{number}: not a line of numbers: {line[:60]!r}") from None
    return rows


def read_text_clip(path: str | Path, num_joints: int, per_line: str = "frame", per_joint: int = 3,
                   channels: int | None = None, skip: int = 0) -> np.ndarray:
    """One file -> (T, V, channels) float32; errors name the file (and line)."""
    path = Path(path)
    channels = per_joint if channels is None else channels
    if not 1 <= channels <= per_joint:
        raise DatasetError(f"channels {channels} must lie in 1..per_joint ({per_joint})")
    rows = _rows(path, skip)
    if not rows:
        raise DatasetError(f"{path}: no data lines (0 frames)")
    want = num_joints * per_joint if per_line == "frame" else per_joint
    if per_line not in ("frame", "joint"):
        raise DatasetError(f"per_line must be 'frame' or 'joint', not {per_line!r}")
    for number, values in rows:
        if len(values) != want:
            what = f"{num_joints} joints x {per_joint} numbers" if per_line == "frame" else f"{per_joint} numbers"
            raise DatasetError(f"{path}:{number}: {len(values)} numbers, expected {want} ({what} per line)")
    values = np.array([v for _, v in rows], dtype=np.float64)
    if per_line == "joint" and len(values) % num_joints:
        raise DatasetError(f"{path}: {len(values)} joint lines are not a whole number of {num_joints}-joint frames")
    x = values.reshape(-1, num_joints, per_joint)[..., :channels]
    if not np.isfinite(x).all():
        raise DatasetError(f"{path}: NaN or infinite coordinates")
    return x.astype(np.float32)


def zero_frames(clip: np.ndarray) -> np.ndarray:
    """(T,) True where every number of the frame is zero. clip: (T, V, C)."""
    return ~np.any(clip != 0, axis=(1, 2))


@dataclass
class ImportReport:
    """What `import_text` wrote and what its cleaning options removed."""

    path: Path
    clips: int = 0  # clips written, all splits
    dropped_frames: int = 0  # all-zero frames removed (drop_zero_frames)
    clips_with_dropped: int = 0  # clips that lost at least one frame
    skipped: list[str] = field(default_factory=list)  # "split/class/clip" of all-zero clips left out


def _clean(clip: np.ndarray, where: Path, drop_zero_frames: bool, skip_zero_clips: bool,
           report: ImportReport, name: str) -> np.ndarray | None:
    """The clip as it is to be written (None: skip it), counting what was removed."""
    empty = zero_frames(clip)
    if empty.all():
        if skip_zero_clips:
            report.skipped.append(name)
            return None
        if drop_zero_frames:
            raise DatasetError(f"{where}: every frame is all zeros, nothing is left after --drop-zero-frames "
                               "(add --skip-zero-clips to leave such clips out)")
        return clip
    if drop_zero_frames and empty.any():
        report.dropped_frames += int(empty.sum())
        report.clips_with_dropped += 1
        return clip[~empty]
    return clip


def _stack(clips: list[np.ndarray], labels: list[int], names: list[str], channels: int, v: int) -> Split:
    t_max = max((len(c) for c in clips), default=1)
    data = np.zeros((len(clips), channels, t_max, v, 1), dtype=np.float32)  # (N, C, T, V, M)
    for i, c in enumerate(clips):
        data[i, :, : len(c), :, 0] = c.transpose(2, 0, 1)
    return Split(data, np.array(labels, dtype=np.int64), np.array([len(c) for c in clips], dtype=np.int64), names)


def import_text(src: str | Path, out: str | Path, layout: Layout, per_line: str = "frame", per_joint: int = 3,
                channels: int | None = None, skip: int = 0, pattern: str = "*.txt", classes: list[str] | None = None,
                centre: str = "first-frame", corpus: str | None = None, name: str | None = None,
                drop_zero_frames: bool = False, skip_zero_clips: bool = False) -> ImportReport:
    """Convert SRC/<split>/<class>/<clip> text files into a native folder (coordinates as given, centred at load).

    `name` is the dataset's name in meta.json (default: SRC's folder name), which runs show in their
    logs, metrics.json and `pcle runs`.
    """
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(f"{src}: not a folder (expected SRC/<split>/<class>/{pattern})")
    split_dirs = sorted(p for p in src.iterdir() if p.is_dir())
    files = {s.name: sorted(f for c in s.iterdir() if c.is_dir() for f in c.glob(pattern)) for s in split_dirs}
    files = {k: v for k, v in files.items() if v}
    if not files:
        raise DatasetError(f"{src}: no {pattern} files in SRC/<split>/<class>/ folders")
    if not {"train", "test"} <= set(files):
        raise DatasetError(f"{src}: needs a train/ and a test/ folder with clips (found: {', '.join(files)})")
    found = sorted({f.parent.name for fs in files.values() for f in fs})
    class_names = list(classes) if classes else found
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise DatasetError(f"{src}: class folders {unknown} are not in the class list")
    c = per_joint if channels is None else channels
    report = ImportReport(Path(out))
    splits = {}
    for split, fs in files.items():
        kept, clips = [], []
        for f in fs:
            clip = _clean(read_text_clip(f, layout.num_joints, per_line, per_joint, c, skip), f, drop_zero_frames,
                          skip_zero_clips, report, f"{split}/{f.parent.name}/{f.stem}")
            if clip is not None:
                kept.append(f)
                clips.append(clip)
        if not clips:
            raise DatasetError(f"{src / split}: every clip is all zeros; nothing to write")
        splits[split] = _stack(clips, [class_names.index(f.parent.name) for f in kept],
                               [f"{f.parent.name}/{f.stem}" for f in kept], c, layout.num_joints)
        report.clips += len(clips)
    source = {"importer": "text", "from": str(src), "per_line": per_line, "per_joint": per_joint}
    if drop_zero_frames or skip_zero_clips:
        source["cleaning"] = {"drop_zero_frames": drop_zero_frames, "skip_zero_clips": skip_zero_clips,
                              "dropped_frames": report.dropped_frames, "skipped_clips": report.skipped}
    meta = make_meta(name or src.name, class_names, layout, list(splits), corpus=corpus, source=source,
                     centre=centre)
    report.path = write_native(out, meta, splits)
    return report
