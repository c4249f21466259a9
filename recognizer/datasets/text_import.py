"""`pcle data import-text`: plain-text skeleton files -> a native dataset folder.

    SRC/<split>/<class name>/<clip>.txt      e.g. SRC/train/hand waving/a01_s01.txt

One clip per file, one person. Numbers are separated by spaces, tabs or commas; empty lines and
lines starting with '#' are ignored, and `skip` header lines are dropped. Two arrangements:

- `frame`: one frame per line, V x K numbers (joint 0's K values, then joint 1's, ...);
- `joint`: one joint per line, K numbers; V consecutive lines make a frame.

K (`per_joint`) is the numbers each joint has in the file; the first `channels` of them are kept
(e.g. MSR-Action3D's "x y z confidence": per_joint 4, channels 3). Joint order is the layout's.
"""

from __future__ import annotations

import re
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


def _stack(clips: list[np.ndarray], labels: list[int], names: list[str], channels: int, v: int) -> Split:
    t_max = max((len(c) for c in clips), default=1)
    data = np.zeros((len(clips), channels, t_max, v, 1), dtype=np.float32)  # (N, C, T, V, M)
    for i, c in enumerate(clips):
        data[i, :, : len(c), :, 0] = c.transpose(2, 0, 1)
    return Split(data, np.array(labels, dtype=np.int64), np.array([len(c) for c in clips], dtype=np.int64), names)


def import_text(src: str | Path, out: str | Path, layout: Layout, per_line: str = "frame", per_joint: int = 3,
                channels: int | None = None, skip: int = 0, pattern: str = "*.txt", classes: list[str] | None = None,
                centre: str = "first-frame", corpus: str | None = None, name: str | None = None) -> Path:
    """Convert SRC/<split>/<class>/<clip> text files into a native folder (coordinates as given, centred at load)."""
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
    splits = {}
    for split, fs in files.items():
        clips = [read_text_clip(f, layout.num_joints, per_line, per_joint, c, skip) for f in fs]
        splits[split] = _stack(clips, [class_names.index(f.parent.name) for f in fs],
                               [f"{f.parent.name}/{f.stem}" for f in fs], c, layout.num_joints)
    meta = make_meta(name or src.name, class_names, layout, list(splits), corpus=corpus,
                     source={"importer": "text", "from": str(src), "per_line": per_line, "per_joint": per_joint},
                     centre=centre)
    return write_native(out, meta, splits)
