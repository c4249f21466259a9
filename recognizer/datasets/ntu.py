"""NTU RGB+D 60/120: benchmarks, split rules, `prepare-ntu` and the registered datasets.

`prepare_ntu` turns a tree of raw `.skeleton` files into one native-format folder per benchmark
(`OUT/ntu60-xsub`, `OUT/ntu60-xview` or `OUT/ntu120-xsub`, `OUT/ntu120-xset`): parsing runs on all
cores, each parsed clip goes straight into pre-allocated memory-mapped split arrays, and a progress
log (written only after the arrays are flushed) lets an interrupted run resume where it stopped.
The datasets `ntu60-xsub`, ... read such a folder (memory-mapped) or CTR-GCN's processed `.npz`.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from corpus import CURATED, PROMPTS_DIR
from corpus.files import errors_name
from recognizer.datasets import DatasetError, register
from recognizer.datasets.base import DatasetBundle
from recognizer.datasets.native import (
    META,
    NativeFormatError,
    load_native,
    make_meta,
    save_array,
    save_json,
    save_text,
)
from recognizer.datasets.ntu_raw import T_MAX, load_sequence, pad
from recognizer.method.graph import NTU25

DATA_DIR = Path(__file__).resolve().parent / "data"
MISSING_LISTS = {
    "ntu60": DATA_DIR / "NTU_RGBD_samples_with_missing_skeletons.txt",  # 302 names
    "ntu120": DATA_DIR / "NTU_RGBD120_samples_with_missing_skeletons.txt",  # 535 names (includes NTU60's)
}
NTU60_XSUB_TRAIN = frozenset({1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38})
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN | {45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80,
                                        81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103}
XVIEW_TRAIN_CAMERAS = frozenset({2, 3})
BENCHMARKS = {"ntu60": ("xsub", "xview"), "ntu120": ("xsub", "xset")}
LIMITS = {"ntu60": (17, 60), "ntu120": (32, 120)}  # (last setup, last action)
NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")
SPLITS = ("train", "test")
FLUSH_EVERY = 64  # clips between flushes of the arrays and the progress log


@dataclass(frozen=True)
class SampleId:
    setup: int
    camera: int
    subject: int
    replication: int
    action: int  # 1-based

    @classmethod
    def parse(cls, name: str) -> SampleId:
        m = NAME.match(name)
        if m is None:
            raise DatasetError(f"{name}: not an NTU sample name (SsssCcccPpppRrrrAaaa)")
        return cls(*(int(g) for g in m.groups()))

    def split(self, protocol: str) -> str:
        """'train' or 'test' under xsub / xview / xset (DESIGN.md: data facts)."""
        if protocol == "xsub":
            train = self.subject in NTU120_XSUB_TRAIN  # a superset of NTU60's; added subjects are >= 45
        elif protocol == "xview":
            train = self.camera in XVIEW_TRAIN_CAMERAS
        elif protocol == "xset":
            train = self.setup % 2 == 0
        else:
            raise DatasetError(f"unknown NTU protocol '{protocol}' (xsub, xview, xset)")
        return "train" if train else "test"


def missing_samples(benchmark: str) -> frozenset[str]:
    return frozenset(n.strip() for n in MISSING_LISTS[benchmark].read_text().splitlines() if n.strip())


def class_names(benchmark: str) -> list[str]:
    """From prompts/classes/<benchmark>.txt (read at run time: people edit them)."""
    path = PROMPTS_DIR / "classes" / f"{benchmark}.txt"
    if not path.is_file():
        raise DatasetError(f"{path}: class-name list not found")
    names = [n.strip() for n in path.read_text(encoding="utf-8").splitlines() if n.strip()]
    if len(names) != LIMITS[benchmark][1]:
        raise DatasetError(f"{path}: {len(names)} class names, expected {LIMITS[benchmark][1]}")
    return names


# ---- which files go where ------------------------------------------------------------------------

@dataclass
class RawTree:
    files: list[Path]  # samples to parse, sorted by name
    missing: list[str] = field(default_factory=list)  # on the public missing-skeleton list: skipped
    foreign: list[str] = field(default_factory=list)  # files whose name is not an NTU sample name
    outside: int = 0  # valid names outside the benchmark (NTU120-only samples for ntu60)


def scan_raw(raw: str | Path, benchmark: str) -> RawTree:
    raw = Path(raw)
    if not raw.is_dir():
        raise DatasetError(f"{raw}: raw NTU folder not found")
    last_setup, last_action = LIMITS[benchmark]
    skip = missing_samples(benchmark)
    tree = RawTree([])
    seen: dict[str, Path] = {}
    for path in sorted(raw.rglob("*.skeleton"), key=lambda p: p.name):
        name = path.stem
        m = NAME.match(name)
        if m is None:
            tree.foreign.append(str(path))
        elif name in seen:
            raise DatasetError(f"{path}: duplicate sample (also {seen[name]})")
        elif int(m.group(1)) > last_setup or int(m.group(5)) > last_action:
            tree.outside += 1
        elif name in skip:
            tree.missing.append(name)
        else:
            seen[name] = path
            tree.files.append(path)
    if not tree.files:
        raise DatasetError(f"{raw}: no {benchmark} .skeleton files found")
    return tree


def assign_slots(names: list[str], benchmark: str) -> dict[tuple[str, str], list[int]]:
    """(protocol, split) -> indices into `names`, in order: the row of each clip in that split."""
    slots: dict[tuple[str, str], list[int]] = {(p, s): [] for p in BENCHMARKS[benchmark] for s in SPLITS}
    for i, name in enumerate(names):
        sid = SampleId.parse(name)
        for p in BENCHMARKS[benchmark]:
            slots[(p, sid.split(p))].append(i)
    return slots


# ---- prepare -------------------------------------------------------------------------------------

@dataclass
class PrepareResult:
    out: Path
    counts: dict[str, dict[str, int]]  # "ntu60-xsub" -> {"train": n, "test": n}
    bad: dict[str, str]  # sample name -> problem
    missing: int  # skipped: public missing-skeleton list
    parsed: int  # files parsed in this run
    resumed: int  # files already done by an earlier run
    complete: bool
    seconds: float
    report: Path | None = None


def _parse_one(task: tuple[int, str, int]) -> tuple[int, np.ndarray | None, str | None]:
    """Worker: (index, path, t_max) -> (index, (3, L, 25, 2) or None, error or None)."""
    i, path, t_max = task
    try:
        return i, load_sequence(path, t_max), None
    except DatasetError as e:
        return i, None, str(e)
    except Exception as e:  # a worker must never take the run down; the report says what happened
        return i, None, f"{path}: unexpected {type(e).__name__}: {e}"


class _Work:
    """The `.partial-<benchmark>` folder: plan, pre-allocated split arrays and the progress log."""

    def __init__(self, out: Path, benchmark: str, names: list[str], t_max: int):
        self.dir = out / f".partial-{benchmark}"
        self.benchmark, self.names, self.t_max = benchmark, names, t_max
        self.slots = assign_slots(names, benchmark)
        self.row = {key: {i: r for r, i in enumerate(idx)} for key, idx in self.slots.items()}
        plan = {"benchmark": benchmark, "t_max": t_max, "names_sha1": names_digest(names)}
        plan_path = self.dir / "plan.json"
        if plan_path.is_file() and _read_json(plan_path) != plan:
            shutil.rmtree(self.dir)  # a different file set or settings: earlier work does not apply
        self.dir.mkdir(parents=True, exist_ok=True)
        self.arrays = {key: self._open(key, len(idx)) for key, idx in self.slots.items()}
        if not plan_path.is_file():
            save_json(plan_path, plan)
        self.log_path = self.dir / "progress.jsonl"
        self.done: dict[int, dict] = self._read_log()
        self.log = open(self.log_path, "a", encoding="utf-8")

    def _open(self, key: tuple[str, str], n: int) -> np.ndarray:
        path = self.dir / f"{key[0]}_{key[1]}_data.npy"
        shape = (n, 3, self.t_max, 25, 2)  # (N, C, T, V, M)
        if path.is_file():
            try:
                arr = np.load(path, mmap_mode="r+")
                if arr.shape == shape and arr.dtype == np.float32:
                    return arr
            except (OSError, ValueError):
                pass
            (self.dir / "progress.jsonl").unlink(missing_ok=True)  # the arrays no longer back the log
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)

    def _read_log(self) -> dict[int, dict]:
        done = {}
        if self.log_path.is_file():
            for line in self.log_path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    done[int(rec["i"])] = rec
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash: that clip is parsed again
        return done

    def put(self, i: int, seq: np.ndarray) -> None:
        full = pad(seq, self.t_max)
        for key, rows in self.row.items():
            if i in rows:
                self.arrays[key][rows[i]] = full

    def commit(self, records: list[dict]) -> None:
        """Flush the arrays, then log: a logged clip is always on disk."""
        if not records:
            return
        for arr in self.arrays.values():
            arr.flush()
        self.log.write("".join(json.dumps(r) + "\n" for r in records))
        self.log.flush()
        os.fsync(self.log.fileno())
        for r in records:
            self.done[r["i"]] = r

    def close(self) -> None:
        self.log.close()
        for arr in self.arrays.values():
            arr.flush()
        self.arrays.clear()


def names_digest(names: list[str]) -> str:
    return hashlib.sha1("\n".join(names).encode()).hexdigest()


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _progress(total: int, done: int, enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("parsing .skeleton files"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]} files/s"), TimeRemainingColumn(), disable=not enabled)
    task = bar.add_task("parse", total=total, completed=done, rate="-")
    return bar, task


def _results(tasks: list[tuple[int, str, int]], workers: int):
    if workers <= 1:
        yield from map(_parse_one, tasks)
        return
    with mp.get_context("fork" if hasattr(os, "fork") else "spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_parse_one, tasks, chunksize=4)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def prepare_ntu(raw: str | Path, out: str | Path, benchmark: str, workers: int | None = None,
                progress: bool = True, limit: int | None = None, t_max: int = T_MAX,
                on_parsed: Callable[[int], None] | None = None, overwrite: bool = False) -> PrepareResult:
    """Parse, denoise and split a raw tree; resumable. `limit` parses at most that many files now.

    Benchmark folders already in `out` that another raw tree (or other settings) made are refused unless
    `overwrite` (recognizer/overwrite.py)."""
    if benchmark not in BENCHMARKS:
        raise DatasetError(f"unknown benchmark '{benchmark}' (ntu60, ntu120)")
    start = time.perf_counter()
    out = Path(out)
    classes = class_names(benchmark)
    tree = scan_raw(raw, benchmark)
    names = [p.stem for p in tree.files]
    if _is_complete(out, benchmark, names):
        return _finished(out, benchmark, names, tree, 0, start)
    _refuse_others(out, benchmark, names, t_max, overwrite)
    work = _Work(out, benchmark, names, t_max)
    resumed = len(work.done)
    todo = [i for i in range(len(names)) if i not in work.done][:limit]
    parsed = 0
    bar, task = _progress(len(names), resumed, progress)
    pending: list[dict] = []
    try:
        with bar:
            tasks = [(i, str(tree.files[i]), t_max) for i in todo]
            for i, seq, err in _results(tasks, workers or default_workers()):
                if seq is not None:
                    work.put(i, seq)
                    pending.append({"i": i, "len": int(min(seq.shape[1], t_max))})
                else:
                    pending.append({"i": i, "error": err})
                parsed += 1
                if len(pending) >= FLUSH_EVERY:
                    work.commit(pending)
                    pending = []
                rate = parsed / max(time.perf_counter() - start, 1e-9)
                bar.update(task, advance=1, rate=f"{rate:.0f}")
                if on_parsed:
                    on_parsed(parsed)
    finally:
        work.commit(pending)
        work.close()
    if len(work.done) < len(names):
        seconds = time.perf_counter() - start
        return PrepareResult(out, {}, {}, len(tree.missing), parsed, resumed, False, seconds)
    _assemble(work, classes, str(raw))
    shutil.rmtree(work.dir)
    return _finished(out, benchmark, names, tree, parsed, start, resumed, work.done)


def _assemble(work: _Work, classes: list[str], raw: str) -> None:
    """Move (or compact, when clips were bad) each split array into its benchmark folder."""
    for protocol in BENCHMARKS[work.benchmark]:
        dest = work.dir.parent / f"{work.benchmark}-{protocol}"
        dest.mkdir(parents=True, exist_ok=True)
        (dest / META).unlink(missing_ok=True)  # incomplete until the new meta.json lands
        for split in ("train", "test"):
            idx = work.slots[(protocol, split)]
            good = [r for r, i in enumerate(idx) if "len" in work.done[i]]
            src = work.dir / f"{protocol}_{split}_data.npy"
            target = dest / f"{split}_data.npy"
            if len(good) == len(idx):
                os.replace(src, target)
            else:
                _compact(src, target, good)
            keep = [idx[r] for r in good]
            save_array(dest / f"{split}_label.npy",
                       np.array([SampleId.parse(work.names[i]).action - 1 for i in keep], dtype=np.int64))
            lengths = np.array([work.done[i]["len"] for i in keep], dtype=np.int64)
            save_array(dest / f"{split}_length.npy", lengths)
            save_text(dest / f"{split}_names.txt", "".join(work.names[i] + "\n" for i in keep))
        meta = make_meta(f"{work.benchmark}-{protocol}", classes, NTU25, ["train", "test"],
                         source={"raw": raw, "benchmark": work.benchmark, "protocol": protocol,
                                 "names_sha1": names_digest(work.names), "t_max": work.t_max})
        save_json(dest / META, {**meta, "made_by": _made_by(work.benchmark, work.names, work.t_max)})


def _compact(src: Path, target: Path, rows: list[int], chunk: int = 256) -> None:
    data = np.load(src, mmap_mode="r")
    tmp = target.with_name(f".{target.name}.tmp")
    with errors_name(target):  # an errno error names the array asked for, not its temporary file
        dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(rows), *data.shape[1:]))
        for k in range(0, len(rows), chunk):
            dst[k : k + chunk] = data[rows[k : k + chunk]]
        dst.flush()
        del dst
        os.replace(tmp, target)


def _made_by(benchmark: str, names: list[str], t_max: int) -> dict:
    return {"command": "prepare-ntu", "benchmark": benchmark, "names_sha1": names_digest(names), "t_max": t_max}


def _refuse_others(out: Path, benchmark: str, names: list[str], t_max: int, overwrite: bool) -> None:
    """`out` must not be a dataset itself, nor hold benchmark folders made from other files."""
    from corpus.overwrite import OverwriteError, refuse_other_dataset

    if (out / META).is_file() and not overwrite:
        raise OverwriteError(f"{out}: holds a native dataset (meta.json); prepare-ntu writes one folder per "
                             "benchmark inside --out: choose another --out, or pass --overwrite")
    for protocol in BENCHMARKS[benchmark]:
        refuse_other_dataset(out / f"{benchmark}-{protocol}", _made_by(benchmark, names, t_max), overwrite)


def _report_path(out: Path, benchmark: str) -> Path:
    return out / f"{benchmark}_report.json"


def _is_complete(out: Path, benchmark: str, names: list[str]) -> bool:
    report = _read_json(_report_path(out, benchmark))
    return (isinstance(report, dict) and report.get("names_sha1") == names_digest(names)
            and all((out / f"{benchmark}-{p}" / META).is_file() for p in BENCHMARKS[benchmark]))


def _finished(out: Path, benchmark: str, names: list[str], tree: RawTree, parsed: int, start: float,
              resumed: int = 0, done: dict[int, dict] | None = None) -> PrepareResult:
    """Write (or, for a finished run, re-read) the report."""
    path = _report_path(out, benchmark)
    if done is None:
        report = _read_json(path)
        counts, bad = report["counts"], report["bad"]
        resumed = len(names)
    else:
        bad = {names[i]: rec["error"] for i, rec in sorted(done.items()) if "error" in rec}
        counts = {}
        for p in BENCHMARKS[benchmark]:
            folder = out / f"{benchmark}-{p}"
            counts[folder.name] = {s: len(np.load(folder / f"{s}_label.npy")) for s in SPLITS}
        save_json(path, {"benchmark": benchmark, "names_sha1": names_digest(names), "counts": counts,
                         "bad": bad, "missing_skeletons_skipped": tree.missing, "not_ntu_names": tree.foreign,
                         "outside_benchmark": tree.outside})
        save_text(out / f"{benchmark}_bad_samples.txt", "".join(f"{n}\t{e}\n" for n, e in bad.items()))
    return PrepareResult(out, counts, bad, len(tree.missing), parsed, resumed, True,
                         time.perf_counter() - start, path)


# ---- registered datasets -------------------------------------------------------------------------

def _build(name: str, root: str | None = None, verify: bool | str = "auto") -> DatasetBundle:
    """`root`: the prepared folder (OUT/<name> or OUT) or a CTR-GCN `.npz` (NTU60_CS.npz, ...)."""
    benchmark = name.split("-")[0]
    if not root:
        raise DatasetError(f"{name}: pass --data-root (a `pcle data prepare-ntu` folder or a CTR-GCN .npz)")
    path = Path(root)
    corpus = str(CURATED[benchmark])
    if path.suffix == ".npz":
        from recognizer.datasets.importers import read_ctrgcn_npz

        splits = read_ctrgcn_npz(path, num_classes=LIMITS[benchmark][1])
        return DatasetBundle(name, class_names(benchmark), NTU25, splits["train"], splits["test"], corpus)
    folder = path if (path / META).is_file() else path / name
    if not (folder / META).is_file():
        raise DatasetError(f"{path}: neither a prepared {name} folder (no meta.json here or in {name}/) "
                           f"nor a CTR-GCN .npz; run `pcle data prepare-ntu`")
    meta, layout, splits = load_native(folder, ["train", "test"], verify=verify)
    if layout != NTU25 or len(meta["class_names"]) != LIMITS[benchmark][1]:
        raise NativeFormatError(f"{folder / META}: not {name} data (layout {layout.name}, "
                                f"{len(meta['class_names'])} classes)")
    return DatasetBundle(name, list(meta["class_names"]), NTU25, splits["train"], splits["test"], corpus)


for _benchmark, _protocols in BENCHMARKS.items():
    for _protocol in _protocols:
        register(f"{_benchmark}-{_protocol}")(partial(_build, f"{_benchmark}-{_protocol}"))


def split_counts(names: list[str], benchmark: str) -> dict[str, dict[str, int]]:
    """Clips per split from names alone (what `prepare_ntu` will produce for clean files)."""
    slots = assign_slots(names, benchmark)
    return {f"{benchmark}-{p}": {s: len(slots[(p, s)]) for s in SPLITS} for p in BENCHMARKS[benchmark]}
