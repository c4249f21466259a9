"""Other people's processed files -> Splits or native-format folders.

- CTR-GCN's `.npz` (NTU60_CS.npz, ...: x_train (N, 300, 150), one-hot y_train, x_test, y_test).
- PYSKL's annotation pickle ({"split": {...}, "annotations": [{"frame_dir", "label", "keypoint"
  (M, T, V, C), "keypoint_score"?, "total_frames"}]}). Unpickling can run arbitrary code, so it
  happens only when the caller says it trusts the file (`--trust-pickle`).
- NW-UCLA `all_sqe` JSON (reusing `nw_ucla.read_clip`).
Large arrays are filled in place in a memory map, never held whole in memory.
"""

from __future__ import annotations

import itertools
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from corpus import CURATED, PROMPTS_DIR
from corpus.files import errors_name
from recognizer.datasets import DatasetError
from recognizer.datasets.base import Split
from recognizer.datasets.native import META, make_meta, save_array, save_json, save_text
from recognizer.method.graph import LAYOUTS, NTU25, UCLA20, Layout, get_layout

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
LAYOUT_BY_JOINTS = {25: "ntu25", 20: "ucla20", 17: "coco17"}


# ---- CTR-GCN npz ---------------------------------------------------------------------------------

def _labels(y: np.ndarray, where: str, num_classes: int | None) -> np.ndarray:
    if y.ndim == 2:  # one-hot
        if not np.all((y == 0) | (y == 1)) or np.any(y.sum(1) != 1):
            raise DatasetError(f"{where}: labels are not one-hot rows")
        k = y.shape[1]
        labels = y.argmax(1)
    elif y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        k, labels = (num_classes or int(y.max(initial=-1)) + 1), y
    else:
        raise DatasetError(f"{where}: labels have shape {y.shape}, expected one-hot (N, K) or ints (N,)")
    if num_classes is not None and k != num_classes:
        raise DatasetError(f"{where}: {k} classes, expected {num_classes}")
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise DatasetError(f"{where}: label {labels.max()} outside 0..{k - 1}")
    return labels.astype(np.int64)


def ctrgcn_to_split(x: np.ndarray, y: np.ndarray, where: str, num_classes: int | None = None,
                    prefix: str = "clip") -> Split:
    """x (N, T, 150) -> (N, 3, T, 25, 2); lengths from the last non-zero frame."""
    if x.ndim != 3 or x.shape[2] != 150:
        raise DatasetError(f"{where}: data has shape {x.shape}, expected (N, T, 150): 2 x 25 joints x 3")
    if len(y) != len(x):
        raise DatasetError(f"{where}: {len(x)} clips but {len(y)} labels")
    labels = _labels(np.asarray(y), where, num_classes)
    n, t = x.shape[:2]
    data = np.empty((n, 3, t, 25, 2), dtype=np.float32)  # (N, C, T, V, M)
    lengths = np.zeros(n, dtype=np.int64)
    for i in range(0, n, 512):
        chunk = np.asarray(x[i : i + 512], dtype=np.float32)
        if not np.isfinite(chunk).all():
            bad = i + int(np.flatnonzero(~np.isfinite(chunk).reshape(len(chunk), -1).all(1))[0])
            raise DatasetError(f"{where}: clip {bad} holds NaN or infinite values")
        data[i : i + 512] = chunk.reshape(len(chunk), t, 2, 25, 3).transpose(0, 4, 1, 3, 2)
        used = (chunk != 0).any(axis=2)  # (n, T)
        lengths[i : i + 512] = np.where(used.any(1), t - np.argmax(used[:, ::-1], axis=1), 0)
    if n and lengths.min() < 1:
        raise DatasetError(f"{where}: clip {int(np.argmin(lengths))} is all zeros (length 0)")
    return Split(data, labels, lengths, [f"{prefix}{i:06d}" for i in range(n)])


def read_ctrgcn_npz(path: str | Path, num_classes: int | None = None) -> dict[str, Split]:
    """CTR-GCN's processed NTU file -> {"train", "test"} Splits (in memory: npz cannot be mapped)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in NPZ_KEYS if k not in z.files]
            if missing:
                raise DatasetError(f"{path}: keys {missing} missing (has {z.files})")
            return {s: ctrgcn_to_split(z[f"x_{s}"], z[f"y_{s}"], f"{path}[x_{s}]", num_classes, f"{s}_")
                    for s in ("train", "test")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise DatasetError(f"{path}: not a readable .npz file, truncated or corrupt ({e})") from None


# ---- writing native folders from a sequence of clips -------------------------------------------

def write_streamed(folder: Path, split: str, n: int, shape: tuple[int, ...],
                   fill: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, list[str]]]) -> None:
    """Pre-allocate (n, *shape) on disk, let `fill` write rows, then move files into place."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp, target = folder / f".{split}_data.npy.tmp", folder / f"{split}_data.npy"
    with errors_name(target):  # an errno error names the array asked for, not its temporary file
        data = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *shape))
        labels, lengths, names = fill(data)
        data.flush()
        del data
        os.replace(tmp, target)
    save_array(folder / f"{split}_label.npy", np.asarray(labels, dtype=np.int64))
    save_array(folder / f"{split}_length.npy", np.asarray(lengths, dtype=np.int64))
    save_text(folder / f"{split}_names.txt", "".join(f"{s}\n" for s in names))


def read_class_names(spec: str) -> list[str]:
    """A class-list file, or a shipped list by name (ntu60, ntu120, nw-ucla)."""
    path = Path(spec) if Path(spec).is_file() else PROMPTS_DIR / "classes" / f"{spec}.txt"
    if not path.is_file():
        raise DatasetError(f"{spec}: no such class-name file (one name per line) or shipped list")
    names = [n.strip() for n in path.read_text(encoding="utf-8").splitlines() if n.strip()]
    if not names:
        raise DatasetError(f"{path}: no class names")
    return names


def import_npz(path: str | Path, out: str | Path, classes: str, name: str | None = None) -> Path:
    """CTR-GCN `.npz` -> native folder (memory-mappable from then on)."""
    class_names = read_class_names(classes)
    splits = read_ctrgcn_npz(path, num_classes=len(class_names))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / META).unlink(missing_ok=True)
    for split, s in splits.items():
        write_streamed(out, split, len(s), s.data.shape[1:], lambda d, s=s: _copy(d, s))
    corpus = str(CURATED["ntu120"]) if len(class_names) in (60, 120) else None
    save_json(out / META, make_meta(name or Path(path).stem, class_names, NTU25, list(splits), corpus,
                                    {"imported_from": str(path), "format": "ctr-gcn npz"}))
    return out


def _copy(dst: np.ndarray, s: Split) -> tuple[np.ndarray, np.ndarray, list[str]]:
    dst[:] = s.data
    return s.labels, s.lengths, s.names


# ---- PYSKL pickle --------------------------------------------------------------------------------

def load_pyskl(path: str | Path, trust_pickle: bool = False) -> dict:
    path = Path(path)
    if not trust_pickle:
        raise DatasetError(f"{path}: refusing to unpickle; a pickle can run code when loaded. Pass "
                           f"--trust-pickle (trust_pickle=True) only for files from a source you trust")
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f)  # noqa: S301 - explicit opt-in above
    except Exception as e:  # unpickling raises anything; all of it means "not this file"
        raise DatasetError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("annotations"), list) or not isinstance(
            obj.get("split"), dict):
        raise DatasetError(f"{path}: expected PYSKL's {{'split': {{...}}, 'annotations': [...]}}")
    return obj


def _pyskl_clip(ann: object, where: str, channels: int, t_max: int,
               m_max: int) -> tuple[np.ndarray, int, int]:
    """One annotation -> ((C, T, V, M) clip, label, length)."""
    if not isinstance(ann, dict) or "keypoint" not in ann or "label" not in ann:
        raise DatasetError(f"{where}: annotation without 'keypoint' or 'label'")
    try:
        kp = np.asarray(ann["keypoint"], dtype=np.float32)  # (M, T, V, C)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'keypoint' is not a numeric array") from None
    if kp.ndim != 4 or kp.shape[1] < 1:
        raise DatasetError(f"{where}: 'keypoint' has shape {kp.shape}, expected (M, T>=1, V, C)")
    if "keypoint_score" in ann and channels == kp.shape[3] + 1:
        kp = np.concatenate([kp, np.asarray(ann["keypoint_score"], dtype=np.float32)[..., None]], -1)
    if kp.shape[3] != channels:
        raise DatasetError(f"{where}: {kp.shape[3]} channels, expected {channels}")
    if not np.isfinite(kp).all():
        raise DatasetError(f"{where}: NaN or infinite coordinates")
    kp = kp[:m_max, :t_max]
    return kp.transpose(3, 1, 2, 0), int(ann["label"]), kp.shape[1]


def import_pyskl(path: str | Path, out: str | Path, classes: str, trust_pickle: bool = False,
                 splits: dict[str, str] | None = None, layout: str | None = None, t_max: int = 300,
                 max_bodies: int = 2, name: str | None = None) -> Path:
    """PYSKL annotations -> native folder. `splits` maps ours to PYSKL's ({"train": "xsub_train", ...})."""
    obj = load_pyskl(path, trust_pickle)
    class_names = read_class_names(classes)
    anns = {a.get("frame_dir"): a for a in obj["annotations"] if isinstance(a, dict)}
    mapping = splits or _guess_splits(obj["split"], path)
    first = next(iter(anns.values()), None)
    if first is None:
        raise DatasetError(f"{path}: no annotations")
    kp = np.asarray(first.get("keypoint"))
    if kp.ndim != 4:
        raise DatasetError(f"{path}: 'keypoint' has shape {kp.shape}, expected (M, T, V, C)")
    v, c = kp.shape[2], kp.shape[3] + (1 if "keypoint_score" in first else 0)
    lay = _pick_layout(layout or LAYOUT_BY_JOINTS.get(v), v, path)
    out = Path(out)
    (out / META).unlink(missing_ok=True)
    for ours, theirs in mapping.items():
        ids = obj["split"].get(theirs)
        if not isinstance(ids, list):
            raise DatasetError(f"{path}: no split '{theirs}' (has {sorted(obj['split'])})")
        unknown = [i for i in ids if i not in anns]
        if unknown:
            raise DatasetError(f"{path}: split '{theirs}' names unknown sample {unknown[0]!r}")

        def fill(d: np.ndarray, ids: list = ids) -> tuple[list[int], list[int], list[str]]:
            labels, lengths = [], []
            for r, sid in enumerate(ids):
                clip, label, length = _pyskl_clip(anns[sid], f"{path}[{sid}]", c, t_max, max_bodies)
                if not 0 <= label < len(class_names):
                    raise DatasetError(f"{path}[{sid}]: label {label} outside 0..{len(class_names) - 1}")
                d[r] = 0
                d[r, :, :length, :, : clip.shape[3]] = clip
                labels.append(label)
                lengths.append(length)
            return labels, lengths, [str(i) for i in ids]

        write_streamed(out, ours, len(ids), (c, t_max, v, max_bodies), fill)
    corpus = str(CURATED["ntu120"]) if lay.name == "ntu25" and len(class_names) in (60, 120) else None
    save_json(out / META, make_meta(name or Path(path).stem, class_names, lay, list(mapping), corpus,
                                    {"imported_from": str(path), "format": "pyskl pickle"}))
    return out


def _pick_layout(name: str | None, v: int, path: str | Path) -> Layout:
    if name not in LAYOUTS or LAYOUTS[name].num_joints != v:
        raise DatasetError(f"{path}: {v} joints; pass --layout with a {v}-joint layout "
                           f"({', '.join(sorted(LAYOUTS))})")
    return get_layout(name)


def _guess_splits(split: dict, path: str | Path) -> dict[str, str]:
    """PYSKL names splits <protocol>_train / <protocol>_val; take the first such pair."""
    for key in sorted(split):
        if key.endswith("_train") and key[: -len("_train")] + "_val" in split:
            return {"train": key, "test": key[: -len("_train")] + "_val"}
    if "train" in split and ("val" in split or "test" in split):
        return {"train": "train", "test": "val" if "val" in split else "test"}
    raise DatasetError(f"{path}: cannot tell train from test in splits {sorted(split)}; pass --splits")


# ---- NW-UCLA -------------------------------------------------------------------------------------

def spread_over_classes(files: list[Path], limit: int | None) -> list[Path]:
    """At most `limit` clips taken in turn from each action (the `aXX` of `aXX_sXX_eXX_vXX`; name order within
    one), so that a small example has every class: the first 200 names in order were 2 of the 10."""
    from recognizer.datasets.nw_ucla import NAME

    if limit is None:
        return files
    if limit < 1:
        raise DatasetError(f"--limit: must be at least 1 (got {limit})")
    by_action: dict[str, list[Path]] = {}
    for f in files:
        m = NAME.match(f.stem)
        by_action.setdefault(m.group(1) if m else "", []).append(f)  # a bad name is reported by read_clip
    turns = itertools.zip_longest(*by_action.values())
    return sorted(itertools.islice((f for turn in turns for f in turn if f is not None), limit))


def import_ucla(src: str | Path, out: str | Path, limit: int | None = None) -> Path:
    """NW-UCLA `all_sqe` JSON -> native folder (train = views 1, 2; test = view 3); `limit` clips spread
    evenly over the classes."""
    from recognizer.datasets.nw_ucla import CLASS_NAMES, read_clip

    files = spread_over_classes(sorted(Path(src).glob("*.json")), limit)
    if not files:
        raise DatasetError(f"{src}: no NW-UCLA *.json clips")
    clips = {"train": [], "test": []}
    for f in files:
        sk, label, view = read_clip(f)  # (T, 20, 3)
        clips["train" if view in (1, 2) else "test"].append((f.stem, sk - sk[0, UCLA20.center], label))
    out = Path(out)
    (out / META).unlink(missing_ok=True)
    t_max = max(len(sk) for part in clips.values() for _, sk, _ in part)
    for split, part in clips.items():
        def fill(d: np.ndarray, part: list = part) -> tuple[list[int], list[int], list[str]]:
            for r, (_, sk, _) in enumerate(part):
                d[r] = 0
                d[r, :, : len(sk), :, 0] = sk.transpose(2, 0, 1)
            return [lab for _, _, lab in part], [len(sk) for _, sk, _ in part], [n for n, _, _ in part]

        write_streamed(out, split, len(part), (3, t_max, 20, 1), fill)
    save_json(out / META, make_meta("nw-ucla", list(CLASS_NAMES), UCLA20, ["train", "test"],
                                    str(CURATED["nw-ucla"]), {"imported_from": str(src)}))
    return out
