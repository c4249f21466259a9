"""Seen/unseen class splits for zero-shot evaluation (`data.unseen`).

A spec names the unseen classes; training then sees only the others (their samples in train, test
and the validation hold-out, their prompts on the text side), with labels renumbered 0..S-1 in the
original class order. Spec forms:

- ``""``: no unseen classes (the default: every class is trained);
- a named split: ``ntu60-55/5``, ``ntu60-48/12``, ``ntu120-110/10``, ``ntu120-96/24`` (SynSE's lists, shipped
  in ``data/zeroshot_splits/`` with their source);
- ``random:K:SEED``: K classes drawn without replacement by ``numpy.random.default_rng(SEED)``, for any dataset;
- class names or 0-based ids, comma-separated (``"jump up,salute"`` or ``"2,7"``).

Resolution is deterministic, so `pcle zeroshot` recomputes a run's split from its config.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from recognizer.datasets.base import DatasetBundle, Split

SPLIT_DIR = Path(__file__).resolve().parent / "data" / "zeroshot_splits"
NAMED_SPLITS = {
    "ntu60-55/5": "ntu60-55-5.txt",
    "ntu60-48/12": "ntu60-48-12.txt",
    "ntu120-110/10": "ntu120-110-10.txt",
    "ntu120-96/24": "ntu120-96-24.txt",
}
_RANDOM = re.compile(r"^random:(\d+):(-?\d+)$")
_RANDOM_RANGE = re.compile(r"^random:(\d+):(\d+)-(\d+)$")


class SplitError(ValueError):
    """A `data.unseen` spec that names unknown classes, or a split file that is malformed."""


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


def read_split_file(path: Path) -> list[str]:
    """The unseen class names of a split file (lines 'A<n><tab>name'; '#' starts a comment)."""
    names = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t", 1)
        if len(parts) != 2 or not re.fullmatch(r"A\d+", parts[0]):
            raise SplitError(f"{path}:{lineno}: expected 'A<id><tab><class name>', got {line!r}")
        names.append(parts[1].strip())
    if not names:
        raise SplitError(f"{path}: no classes")
    return names


def _by_names(names: list[str], class_names: list[str], what: str) -> list[int]:
    index = {_norm(n): i for i, n in enumerate(class_names)}
    missing = [n for n in names if _norm(n) not in index]
    if missing:
        raise SplitError(f"{what}: class(es) not in the dataset: {', '.join(missing)} "
                         f"(the dataset has {len(class_names)} classes: {', '.join(class_names[:12])}"
                         f"{', ...' if len(class_names) > 12 else ''})")
    return [index[_norm(n)] for n in names]


def resolve_unseen(spec: str, class_names: list[str]) -> list[int]:
    """Sorted ids (into `class_names`) of the unseen classes named by `spec`."""
    spec = (spec or "").strip()
    if not spec:
        return []
    n = len(class_names)
    if spec in NAMED_SPLITS:
        ids = _by_names(read_split_file(SPLIT_DIR / NAMED_SPLITS[spec]), class_names, f"data.unseen={spec}")
    elif m := _RANDOM.match(spec):
        k, seed = int(m.group(1)), int(m.group(2))
        if not 0 < k <= n - 2:
            raise SplitError(f"data.unseen={spec}: K must be between 1 and {n - 2} (the dataset has {n} classes; "
                             "at least 2 must stay seen)")
        ids = np.random.default_rng(seed).choice(n, size=k, replace=False).tolist()
    elif spec.startswith("random"):
        raise SplitError(f"data.unseen={spec}: expected random:K:SEED, e.g. random:2:0")
    else:
        items = [s.strip() for s in spec.split(",") if s.strip()]
        ids = []
        for item in items:
            if item.isdigit():
                if not 0 <= int(item) < n:
                    raise SplitError(f"data.unseen={spec}: class id {item} outside 0..{n - 1}")
                ids.append(int(item))
            else:
                ids += _by_names([item], class_names, f"data.unseen={spec}")
    ids = sorted(set(int(i) for i in ids))
    if len(ids) > n - 2:
        raise SplitError(f"data.unseen={spec}: {len(ids)} unseen of {n} classes leaves fewer than 2 seen")
    return ids


def expand_specs(items: list[str]) -> list[str]:
    """`random:K:A-B` -> random:K:A ... random:K:B (several random splits); other specs pass through."""
    out = []
    for item in items:
        if m := _RANDOM_RANGE.match(item.strip()):
            k, a, b = (int(g) for g in m.groups())
            if b < a:
                raise SplitError(f"{item}: empty seed range")
            out += [f"random:{k}:{s}" for s in range(a, b + 1)]
        elif item.strip():
            out.append(item.strip())
    if not out:
        raise SplitError("give at least one split (e.g. random:2:0-4 or ntu60-55/5)")
    return out


def slug(spec: str) -> str:
    """A folder name for a split spec: random:2:3 -> random-2-3, ntu60-55/5 -> ntu60-55-5."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-") or "all"


def keep_classes(split: Split, keep: list[int]) -> Split:
    """The samples of classes `keep`, labels renumbered to positions in `keep`."""
    remap = np.full(int(max(split.labels.max(initial=0), max(keep, default=0))) + 1, -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    kept = split.take(np.flatnonzero(np.isin(split.labels, keep)))
    kept.labels = remap[kept.labels]
    return kept


def seen_bundle(bundle: DatasetBundle, spec: str) -> DatasetBundle:
    """The bundle restricted to the seen classes of `spec` (unchanged when nothing is unseen)."""
    unseen = resolve_unseen(spec, bundle.class_names)
    if not unseen:
        return bundle
    seen = [i for i in range(len(bundle.class_names)) if i not in set(unseen)]
    return dataclasses.replace(bundle, class_names=[bundle.class_names[i] for i in seen],
                               train=keep_classes(bundle.train, seen), test=keep_classes(bundle.test, seen))


def build_run_dataset(cfg, data_root: str | None = None) -> DatasetBundle:
    """The dataset a run trains and is evaluated on: `cfg.data`'s dataset minus its unseen classes."""
    from recognizer.datasets import build_dataset

    bundle = build_dataset(cfg.data.dataset, data_root or cfg.data.root, **cfg.data.options)
    return seen_bundle(bundle, cfg.data.unseen)
