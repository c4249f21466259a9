"""NW-UCLA (Northwestern-UCLA Multiview Action3D) from CTR-GCN's `all_sqe` JSON layout.

One file per clip: {"file_name": "a01_s01_e00_v01", "skeletons": [T][20][3], "label": 1..10}.
Standard split: train = views 1 and 2, test = view 3. Each clip is centred on the spine joint of its
first frame; sampling (52 frames) and the random view rotation come from `configs/nw-ucla.yaml`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from corpus import CURATED, PROMPTS_DIR
from recognizer.datasets import DatasetError, register
from recognizer.datasets.base import DatasetBundle, Split
from recognizer.method.graph import UCLA20

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "nw-ucla" / "all_sqe"
CLASS_NAMES = [n.strip() for n in (PROMPTS_DIR / "classes" / "nw-ucla.txt").read_text().splitlines() if n.strip()]
NAME = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_v(\d+)$")


def read_clip(path: Path) -> tuple[np.ndarray, int, int]:
    """One JSON file -> (T, 20, 3) float32 skeleton, 0-based label, view. Errors name the file."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(rec, dict) or "skeletons" not in rec or "label" not in rec:
        raise DatasetError(f"{path}: expected an object with 'skeletons' and 'label'")
    try:
        sk = np.asarray(rec["skeletons"], dtype=np.float32)
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: 'skeletons' is not a [T][20][3] array of numbers") from None
    if sk.ndim != 3 or sk.shape[1:] != (20, 3) or len(sk) == 0:
        raise DatasetError(f"{path}: 'skeletons' has shape {sk.shape}, expected (T>=1, 20, 3)")
    if not np.isfinite(sk).all():
        raise DatasetError(f"{path}: 'skeletons' holds NaN or infinite coordinates")
    label = rec["label"]
    if not isinstance(label, int) or not 1 <= label <= len(CLASS_NAMES):
        raise DatasetError(f"{path}: label {label!r} outside 1..{len(CLASS_NAMES)}")
    m = NAME.match(path.stem)
    if m is None:
        raise DatasetError(f"{path}: file name does not follow aXX_sXX_eXX_vXX")
    return sk, label - 1, int(m.group(4))


def _stack(clips: list[tuple[str, np.ndarray, int]]) -> Split:
    t_max = max(len(c) for _, c, _ in clips)
    data = np.zeros((len(clips), 3, t_max, 20, 1), dtype=np.float32)  # (N, C, T, V, M)
    for i, (_, sk, _) in enumerate(clips):
        sk = sk - sk[0, UCLA20.center]  # centre on the spine joint of frame 0
        data[i, :, : len(sk), :, 0] = sk.transpose(2, 0, 1)
    return Split(data, np.array([lab for _, _, lab in clips], dtype=np.int64),
                 np.array([len(c) for _, c, _ in clips], dtype=np.int64), [n for n, _, _ in clips])


@register("nw-ucla")
def build(root: str | None = None, train_views: tuple[int, ...] = (1, 2), test_views: tuple[int, ...] = (3,),
          strict: bool = True) -> DatasetBundle:
    folder = Path(root) if root else DEFAULT_ROOT
    if not folder.is_dir():
        raise DatasetError(f"{folder}: NW-UCLA folder not found (pass --data-root DIR/all_sqe)")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DatasetError(f"{folder}: no *.json clips in the NW-UCLA folder")
    train, test = [], []
    for f in files:
        try:
            sk, label, view = read_clip(f)
        except DatasetError:
            if strict:
                raise
            continue
        if view in train_views:
            train.append((f.stem, sk, label))
        elif view in test_views:
            test.append((f.stem, sk, label))
    if not train or not test:
        raise DatasetError(f"{folder}: the split is empty (train views {train_views}, test views {test_views})")
    return DatasetBundle("nw-ucla", list(CLASS_NAMES), UCLA20, _stack(train), _stack(test), str(CURATED["nw-ucla"]))
