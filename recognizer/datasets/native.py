"""The native dataset format: any skeleton dataset as a folder of memory-mappable arrays.

    DATASET/
      meta.json              class names, joint layout, split names, optional corpus (below)
      <split>_data.npy       (N, C, T, V, M) float, zero-padded after each clip's length
      <split>_label.npy      (N,) int, 0-based index into class_names
      <split>_length.npy     (N,) int, valid frames per clip, 1..T
      <split>_names.txt      optional, one sample name per line

meta.json: {"format": "pcle-skeleton", "version": 1, "name": str, "class_names": [str],
"layout": "ntu25" | "ucla20" | "coco17" | {"name", "edges": [[a, b], ...], "center", "parts":
{"head": [...], "hands_arms": [...], "hips": [...], "legs_feet": [...]}, "root"?, "joint_names"?,
"num_joints"?}, "splits": ["train", "test", ...], "corpus"?: path (relative to the folder, or `prompts/NAME` for a
corpus shipped with pcle),
"centre"?: "none" | "first-frame", "coordinates"?: int, "source"?: {...}}.
Spec and a worked example: docs/datasets.md. meta.json is written last, so a folder with it is
complete; every file is written to a temporary name and moved into place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus import PROMPTS_DIR
from recognizer.checkpoint import atomic_save_array, atomic_write_text
from recognizer.datasets import DatasetError, register
from recognizer.datasets.base import CENTRINGS, DatasetBundle, Split, centre_clip
from recognizer.method.graph import LAYOUTS, Layout, layout_from_spec, layout_to_dict

FORMAT = "pcle-skeleton"
VERSION = 1
META = "meta.json"
VERIFY_BYTES = 512 * 2**20  # scan arrays up to this size for NaN/inf when loading ("auto")


class NativeFormatError(DatasetError):
    """A native dataset folder is incomplete or inconsistent; the message names the file."""


@dataclass(frozen=True)
class Problem:
    level: str  # "error" | "warning"
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


# ---- atomic writes -------------------------------------------------------------------------------

save_array = atomic_save_array
save_text = atomic_write_text


def save_json(path: str | Path, obj: object) -> None:
    save_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


# ---- layout --------------------------------------------------------------------------------------

def layout_to_meta(layout: Layout) -> str | dict:
    """Named layouts by name; anything else as an edge list with part groups."""
    if LAYOUTS.get(layout.name) == layout:
        return layout.name
    return layout_to_dict(layout)


def layout_from_meta(spec: object, where: str) -> Layout:
    if not isinstance(spec, (str, dict)):
        raise NativeFormatError(f"{where}: 'layout' must be a layout name or an object with edges and parts")
    try:
        return layout_from_spec(spec)
    except (KeyError, TypeError, ValueError) as e:
        raise NativeFormatError(f"{where}: bad 'layout': {e}") from None


# ---- writing -------------------------------------------------------------------------------------

def make_meta(name: str, class_names: list[str], layout: Layout, splits: list[str],
              corpus: str | None = None, source: dict | None = None, centre: str | None = None) -> dict:
    meta = {"format": FORMAT, "version": VERSION, "name": name, "class_names": list(class_names),
            "layout": layout_to_meta(layout), "splits": list(splits)}
    if corpus:
        meta["corpus"] = corpus_ref(corpus)
    if centre:
        meta["centre"] = centre
    if source:
        meta["source"] = source
    return meta


def write_split(folder: str | Path, split: str, data: Split) -> None:
    folder = Path(folder)
    save_array(folder / f"{split}_data.npy", np.asarray(data.data, dtype=np.float32))
    save_array(folder / f"{split}_label.npy", np.asarray(data.labels, dtype=np.int64))
    save_array(folder / f"{split}_length.npy", np.asarray(data.lengths, dtype=np.int64))
    if data.names:
        save_text(folder / f"{split}_names.txt", "\n".join(data.names) + "\n")


def write_native(folder: str | Path, meta: dict, splits: dict[str, Split]) -> Path:
    """Write a complete dataset; meta.json goes last."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, split in splits.items():
        write_split(folder, name, split)
    save_json(folder / META, {**meta, "splits": list(splits)})
    return folder


# ---- reading -------------------------------------------------------------------------------------

def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META
    if not path.is_file():
        raise NativeFormatError(f"{path}: not found (a native dataset folder holds meta.json)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NativeFormatError(f"{path}: not readable JSON ({e})") from None
    for p in meta_problems(meta, str(path)):
        raise NativeFormatError(f"{p.where}: {p.message}")
    return meta


def meta_problems(meta: object, where: str) -> list[Problem]:
    if not isinstance(meta, dict):
        return [Problem("error", where, "the top level must be a JSON object")]
    out = []
    if meta.get("format", FORMAT) != FORMAT or meta.get("version", VERSION) != VERSION:
        out.append(Problem("error", where, f"format {meta.get('format')!r} version {meta.get('version')!r}, "
                           f"expected {FORMAT!r} version {VERSION}"))
    names = meta.get("class_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        out.append(Problem("error", where, "'class_names' must be a non-empty list of non-empty strings"))
    elif len({n.strip().lower() for n in names}) != len(names):
        out.append(Problem("error", where, "'class_names' has duplicates"))
    splits = meta.get("splits")
    if not isinstance(splits, list) or not splits or not all(isinstance(s, str) and s.isidentifier()
                                                             for s in splits):
        out.append(Problem("error", where, "'splits' must be a non-empty list of names ('train', 'test')"))
    if "layout" not in meta:
        out.append(Problem("error", where, "'layout' is missing"))
    if meta.get("centre", "none") not in CENTRINGS:
        out.append(Problem("error", where, f"'centre' must be one of {', '.join(CENTRINGS)}"))
    coords = meta.get("coordinates")
    if coords is not None and (not isinstance(coords, int) or isinstance(coords, bool) or coords < 1):
        out.append(Problem("error", where, "'coordinates' must be a positive integer (channels that are coordinates)"))
    return out


def _load(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise NativeFormatError(f"{path}: not found")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise NativeFormatError(f"{path}: not a readable .npy array, truncated or corrupt ({e})") from None


def read_split(folder: Path, split: str, mmap: bool = True) -> Split:
    data = _load(folder / f"{split}_data.npy", mmap)  # (N, C, T, V, M)
    labels = np.asarray(_load(folder / f"{split}_label.npy", False))
    lengths = np.asarray(_load(folder / f"{split}_length.npy", False))
    names_path = folder / f"{split}_names.txt"
    names = names_path.read_text(encoding="utf-8").splitlines() if names_path.is_file() else []
    return Split(data, labels, lengths, names)


def split_problems(split: Split, name: str, folder: Path, layout: Layout, num_classes: int) -> list[Problem]:
    """Cheap structural checks (no pass over the data)."""
    where = str(folder / f"{name}_*")
    d, n = split.data, len(split.labels)
    if d.ndim != 5:
        return [Problem("error", where, f"data has shape {d.shape}, expected (N, C, T, V, M)")]
    out = []
    if not np.issubdtype(d.dtype, np.floating):
        out.append(Problem("error", where, f"data has dtype {d.dtype}, expected a float type"))
    if d.shape[3] != layout.num_joints:
        out.append(Problem("error", where, f"data has {d.shape[3]} joints, layout '{layout.name}' has "
                           f"{layout.num_joints}"))
    if split.labels.shape != (d.shape[0],) or split.lengths.shape != (d.shape[0],):
        out.append(Problem("error", where, f"{d.shape[0]} clips but labels {split.labels.shape} and lengths "
                           f"{split.lengths.shape}"))
        return out
    if n and not np.issubdtype(split.labels.dtype, np.integer):
        out.append(Problem("error", where, f"labels have dtype {split.labels.dtype}, expected integers"))
    elif n and (split.labels.min() < 0 or split.labels.max() >= num_classes):
        bad = int(np.flatnonzero((split.labels < 0) | (split.labels >= num_classes))[0])
        msg = f"label {split.labels[bad]} of clip {bad} outside 0..{num_classes - 1}"
        out.append(Problem("error", where, msg))
    if n and not np.issubdtype(split.lengths.dtype, np.integer):
        out.append(Problem("error", where, f"lengths have dtype {split.lengths.dtype}, expected integers"))
    elif n and (split.lengths.min() < 1 or split.lengths.max() > d.shape[2]):
        bad = int(np.flatnonzero((split.lengths < 1) | (split.lengths > d.shape[2]))[0])
        msg = f"clip {bad} has length {split.lengths[bad]}, expected 1..{d.shape[2]}"
        out.append(Problem("error", where, msg))
    if split.names and len(split.names) != n:
        out.append(Problem("error", f"{folder / name}_names.txt", f"{len(split.names)} names for {n} clips"))
    if n == 0:
        out.append(Problem("warning", where, "the split is empty"))
    return out


def nonfinite_clips(data: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Indices of clips with NaN or infinite values, reading `chunk` clips at a time."""
    bad = [i + np.flatnonzero(~np.isfinite(data[i : i + chunk]).reshape(len(data[i : i + chunk]), -1).all(1))
           for i in range(0, len(data), chunk)]
    return np.concatenate(bad) if bad else np.zeros(0, dtype=int)


def load_native(folder: str | Path, splits: list[str] | None = None, mmap: bool = True,
                verify: bool | str = "auto") -> tuple[dict, Layout, dict[str, Split]]:
    """(meta, layout, splits) with structural checks; NaN/inf scan when small or asked."""
    folder = Path(folder)
    meta = read_meta(folder)
    layout = layout_from_meta(meta["layout"], str(folder / META))
    wanted = splits or meta["splits"]
    out = {}
    for name in wanted:
        if name not in meta["splits"]:
            raise NativeFormatError(f"{folder / META}: no split '{name}' (has {', '.join(meta['splits'])})")
        split = read_split(folder, name, mmap)
        errors = [p for p in split_problems(split, name, folder, layout, len(meta["class_names"]))
                  if p.level == "error"]
        if errors:
            raise NativeFormatError(f"{errors[0].where}: {errors[0].message}")
        if verify is True or (verify == "auto" and split.data.nbytes <= VERIFY_BYTES):
            bad = nonfinite_clips(split.data)
            if len(bad):
                raise NativeFormatError(f"{folder / name}_data.npy: clip {bad[0]} holds NaN or infinite "
                                        f"values ({len(bad)} clips in all)")
        out[name] = split
    return meta, layout, out


def corpus_ref(corpus: str | Path) -> str:
    """What meta.json stores for a corpus: one shipped in prompts/ as `prompts/NAME` (found in whichever
    checkout or install reads the folder, so a dataset folder moves between machines; an absolute path
    named this clone), any other as given."""
    try:
        rel = Path(corpus).resolve().relative_to(PROMPTS_DIR.resolve())
    except ValueError:
        return str(corpus)
    return (Path("prompts") / rel).as_posix()


def _shipped(path: Path) -> Path | None:
    """`prompts/NAME` (or an older meta.json's absolute `/other/clone/prompts/NAME`) -> this install's file."""
    parts = path.parts
    if "prompts" not in parts:
        return None
    tail = parts[len(parts) - 1 - parts[::-1].index("prompts") + 1:]
    shipped = PROMPTS_DIR.joinpath(*tail)
    return shipped if tail and shipped.is_file() else None


def resolve_corpus(meta: dict, folder: Path) -> str | None:
    """meta.json's corpus: absolute, relative to the folder, or a corpus shipped in prompts/ (`corpus_ref`)."""
    corpus = meta.get("corpus")
    if not corpus:
        return None
    path = Path(corpus)
    given = path if path.is_absolute() else (folder / path).resolve()
    if given.is_file():
        return str(given)
    shipped = _shipped(path)
    return str(shipped if shipped is not None else given)


def centring(meta: dict, where: str, override: str | None = None) -> str:
    """The centring to apply: the config's `data.options.centre`, else meta.json's "centre", else none."""
    centre = override if override is not None else meta.get("centre", "none")
    if centre not in CENTRINGS:
        raise NativeFormatError(f"{where}: centre {centre!r} is not one of {', '.join(CENTRINGS)}")
    return centre


def centre_split(split: Split, layout: Layout, channels: int | None = None) -> Split:
    """A centred in-memory copy (the centring of the built-in datasets: centre joint, first frame)."""
    data = np.empty(split.data.shape, dtype=np.float32)
    for i in range(len(split)):
        data[i] = centre_clip(split.data[i], layout.center, int(split.lengths[i]), channels)
    return Split(data, split.labels, split.lengths, split.names)


@register("native")
def build(root: str | None = None, train_split: str = "train", test_split: str = "test",
          verify: bool | str = "auto", centre: str | None = None) -> DatasetBundle:
    """Any dataset in the native format (docs/datasets.md); `centre` overrides meta.json's "centre"."""
    if not root:
        raise NativeFormatError("the native dataset needs a folder (pass --data-root DIR)")
    folder = Path(root)
    meta, layout, splits = load_native(folder, [train_split, test_split], verify=verify)
    how = centring(meta, str(folder / META), centre)
    if how == "first-frame":  # in memory: meant for small datasets; centre large ones when writing them
        splits = {k: centre_split(v, layout, meta.get("coordinates")) for k, v in splits.items()}
    return DatasetBundle(meta.get("name", folder.name), list(meta["class_names"]), layout,
                         splits[train_split], splits[test_split], resolve_corpus(meta, folder), how)
