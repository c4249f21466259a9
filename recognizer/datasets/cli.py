"""`pcle data ...`: prepare, import, inspect and check skeleton datasets.

PATH for `info` / `check` may be a native folder (meta.json), a `prepare-ntu` output folder (one
native folder per benchmark), a CTR-GCN `.npz`, a raw NTU tree (`*.skeleton`) or an NW-UCLA
`all_sqe` folder (`*.json`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from recognizer.datasets import DatasetError
from recognizer.datasets.base import Split
from recognizer.datasets.native import META, Problem

app = typer.Typer(help="Prepare, inspect and check skeleton datasets.", no_args_is_help=True)
console = Console()
SAMPLE_CLIPS = 1000  # value ranges are measured on at most this many clips per split


OVERWRITE = typer.Option(False, "--overwrite", help="replace the dataset that --out holds already (without it, only a "
                         "rerun of the same import may replace its own output)")


def _made_by(command: str, src: Path, **options) -> dict:
    """What this call is, as meta.json records it: a rerun of the same call may replace its own output."""
    return {"command": command, "source": str(Path(src).resolve()), **options}


def _guard(out: Path, made_by: dict, overwrite: bool) -> None:
    from corpus.overwrite import refuse_other_dataset

    refuse_other_dataset(out, made_by, overwrite)


def _stamp(out: Path, made_by: dict) -> Path:
    """Record `made_by` in the meta.json the importer has just written."""
    import json

    from recognizer.datasets.native import save_json

    meta = json.loads((out / META).read_text(encoding="utf-8"))
    save_json(out / META, {**meta, "made_by": made_by})
    return out


def _fail(e: Exception) -> None:
    if isinstance(e, OSError) and e.strerror:  # e.g. an output folder that is read-only
        e = f"{e.filename or 'output folder'}: {e.strerror}"
    console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command("prepare-ntu")
def prepare_ntu_command(
    raw: Path = typer.Option(..., help="folder with the raw .skeleton files (searched recursively)"),
    out: Path = typer.Option(..., help="output folder: one native folder per benchmark protocol"),
    benchmark: str = typer.Option("ntu60", help="ntu60 (X-Sub, X-View) or ntu120 (X-Sub, X-Set)"),
    workers: int = typer.Option(0, help="parallel parsers (0 = all cores)"),
    strict: bool = typer.Option(False, help="exit 1 when any sample was bad (they are skipped either way)"),
    limit: int = typer.Option(None, help="parse at most this many files now; run again to resume"),
    quiet: bool = typer.Option(False, help="no progress bar"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Parse, denoise, centre and split raw NTU RGB+D files; resumes an interrupted run."""
    from recognizer.datasets.ntu import prepare_ntu

    try:
        r = prepare_ntu(raw, out, benchmark, workers or None, progress=not quiet, limit=limit, overwrite=overwrite)
    except (DatasetError, OSError) as e:
        _fail(e)
    if not r.complete:
        console.print(f"parsed {r.parsed} files ({r.resumed} done before); run again to continue")
        return
    table = Table("dataset", "train", "test", title=f"{benchmark} in {out}")
    for name, c in r.counts.items():
        table.add_row(name, str(c["train"]), str(c["test"]))
    console.print(table)
    console.print(f"{r.parsed} parsed now, {r.resumed} before, {r.missing} on the missing-skeleton list, "
                  f"{len(r.bad)} bad ({r.seconds:.1f} s); report: {r.report}", highlight=False)
    for name, err in list(r.bad.items())[:10]:
        console.print(f"  [yellow]skipped[/yellow] {name}: {err}", highlight=False)
    if r.bad and strict:
        raise typer.Exit(1)


@app.command("generate-ntu")
def generate_ntu_command(
    out: Path = typer.Argument(..., help="folder for the generated .skeleton files"),
    benchmark: str = typer.Option("ntu60", help="ntu60 or ntu120: which names to cover"),
    seed: int = typer.Option(0),
) -> None:
    """Write a small raw tree in the official format with every split represented (for trying things)."""
    from recognizer.datasets.ntu_generate import covering_names, generate_tree

    paths = generate_tree(out, covering_names(benchmark), seed)
    console.print(f"wrote {len(paths)} files to {out}")


@app.command("import-npz")
def import_npz_command(
    src: Path = typer.Argument(..., help="CTR-GCN .npz (x_train, y_train, x_test, y_test)"),
    out: Path = typer.Option(..., help="native output folder"),
    classes: str = typer.Option("ntu60", help="class names: ntu60, ntu120 or a file with one per line"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Convert CTR-GCN's processed NTU file into the (memory-mappable) native format."""
    from recognizer.datasets.importers import import_npz

    try:
        made_by = _made_by("import-npz", src, classes=classes)
        _guard(out, made_by, overwrite)
        console.print(f"wrote {_stamp(import_npz(src, out, classes), made_by)}")
    except (DatasetError, OSError) as e:
        _fail(e)


@app.command("import-pyskl")
def import_pyskl_command(
    src: Path = typer.Argument(..., help="PYSKL annotation pickle"),
    out: Path = typer.Option(..., help="native output folder"),
    classes: str = typer.Option(..., help="class names: ntu60, ntu120, nw-ucla or a file with one per line"),
    trust_pickle: bool = typer.Option(False, help="required: unpickling can run code from the file"),
    splits: str = typer.Option(None, help="e.g. train=xsub_train,test=xsub_val (default: guessed)"),
    layout: str = typer.Option(None, help="joint layout (default by joint count: ntu25, ucla20, coco17)"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Convert a PYSKL annotation pickle into the native format."""
    from recognizer.datasets.importers import import_pyskl

    mapping = dict(part.split("=", 1) for part in splits.split(",")) if splits else None
    try:
        made_by = _made_by("import-pyskl", src, classes=classes, splits=splits, layout=layout)
        _guard(out, made_by, overwrite)
        console.print(f"wrote {_stamp(import_pyskl(src, out, classes, trust_pickle, mapping, layout), made_by)}")
    except (DatasetError, OSError) as e:
        _fail(e)


@app.command("import-ucla")
def import_ucla_command(
    src: Path = typer.Argument(..., help="NW-UCLA all_sqe folder"),
    out: Path = typer.Option(..., help="native output folder"),
    limit: int = typer.Option(None, help="convert only N clips, spread evenly over the classes (a small example)"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Convert NW-UCLA JSON clips into the native format."""
    from recognizer.datasets.importers import import_ucla

    try:
        made_by = _made_by("import-ucla", src, limit=limit)
        _guard(out, made_by, overwrite)
        console.print(f"wrote {_stamp(import_ucla(src, out, limit), made_by)}")
    except (DatasetError, OSError) as e:
        _fail(e)


# ---- info / check --------------------------------------------------------------------------------

def _kind(path: Path) -> str:
    if path.is_file() and path.suffix == ".npz":
        return "npz"
    if not path.is_dir():
        raise DatasetError(f"{path}: not a dataset folder or .npz file")
    if (path / META).is_file():
        return "native"
    if any((p / META).is_file() for p in path.iterdir() if p.is_dir()):
        return "prepared"
    if next(path.rglob("*.skeleton"), None) is not None:
        return "ntu-raw"
    if next(path.glob("*.json"), None) is not None:
        return "nw-ucla"
    raise DatasetError(f"{path}: no meta.json, .skeleton or .json files: not a dataset this tool reads")


def _open(path: Path, kind: str) -> tuple[str, list[str], str, dict[str, Split]]:
    """(name, class names, layout name, splits) of a native folder, .npz or NW-UCLA folder."""
    if kind == "native":
        from recognizer.datasets.native import load_native

        meta, layout, splits = load_native(path, verify=False)
        return meta.get("name", path.name), meta["class_names"], layout.name, splits
    if kind == "npz":
        from recognizer.datasets.importers import read_ctrgcn_npz

        splits = read_ctrgcn_npz(path)
        k = int(max(s.labels.max(initial=0) for s in splits.values())) + 1
        names = _ntu_names(k)
        return path.stem, names, "ntu25", splits
    from recognizer.datasets.nw_ucla import build

    b = build(str(path), strict=False)
    return b.name, b.class_names, b.layout.name, {"train": b.train, "test": b.test}


def _ntu_names(k: int) -> list[str]:
    from recognizer.datasets.importers import read_class_names

    if k > 120:
        return [f"class {i}" for i in range(k)]
    return read_class_names("ntu60" if k <= 60 else "ntu120")


def _split_row(name: str, s: Split, num_classes: int) -> list[str]:
    n = len(s)
    if n == 0:
        return [name, "0", "-", "-", "-", "-"]
    d = s.data
    head = np.asarray(d[: min(n, SAMPLE_CLIPS)], dtype=np.float32)
    counts = np.bincount(s.labels, minlength=num_classes)
    c, t, v, m = d.shape[1:]
    return [name, str(n), f"C={c} T={t} V={v} M={m}",
            f"{s.lengths.min()} / {int(np.median(s.lengths))} / {s.lengths.max()}",
            f"{np.nanmin(head):.3g} .. {np.nanmax(head):.3g}" + ("*" if n > SAMPLE_CLIPS else ""),
            f"{counts.min()} .. {counts.max()} ({int((counts > 0).sum())} classes)"]


def _info_one(path: Path, kind: str) -> None:
    name, classes, layout, splits = _open(path, kind)
    shown = ", ".join(classes[:6]) + (f", ... ({len(classes)})" if len(classes) > 6 else "")
    console.print(f"[bold]{name}[/bold] ({kind}, {path}): layout {layout}; {len(classes)} classes: {shown}",
                  highlight=False)
    table = Table("split", "clips", "shape", "length min/median/max", "values", "clips per class")
    for split, s in splits.items():
        table.add_row(*_split_row(split, s, len(classes)))
    console.print(table)
    if any(len(s) > SAMPLE_CLIPS for s in splits.values()):
        console.print(f"* value range over the first {SAMPLE_CLIPS} clips")
    if kind == "nw-ucla":  # the loader leaves unreadable files out: say which, never drop them silently
        skipped = [p for p in _raw_problems(path, kind) if p.level == "error"]
        for p in skipped:
            console.print(f"[yellow]skipped[/yellow] {p.where}: {p.message}", highlight=False, soft_wrap=True)
        if skipped:
            console.print(f"{len(skipped)} file(s) skipped; `pcle data check {path}` lists every problem",
                          highlight=False)


def _info_raw(path: Path) -> None:
    from recognizer.datasets.ntu import BENCHMARKS, scan_raw, split_counts

    files = list(path.rglob("*.skeleton"))
    bench = "ntu120" if any(f.stem[:4] > "S017" for f in files) else "ntu60"
    tree = scan_raw(path, bench)
    console.print(f"raw NTU tree {path}: {len(files)} .skeleton files; {bench}: {len(tree.files)} to "
                  f"prepare, {len(tree.missing)} on the missing-skeleton list, {len(tree.foreign)} not NTU "
                  "names", highlight=False)
    table = Table("benchmark", "train", "test")
    for name, c in split_counts([p.stem for p in tree.files], bench).items():
        table.add_row(name, str(c["train"]), str(c["test"]))
    console.print(table)
    console.print(f"protocols: {', '.join(BENCHMARKS[bench])}; run `pcle data prepare-ntu` to build them")


@app.command("info")
def info_command(path: Path = typer.Argument(..., help="dataset folder or file")) -> None:
    """What a dataset holds: classes, clips per split, shapes, lengths, value ranges, joints."""
    try:
        kind = _kind(path)
        if kind == "ntu-raw":
            _info_raw(path)
        elif kind == "prepared":
            for sub in sorted(p for p in path.iterdir() if (p / META).is_file()):
                _info_one(sub, "native")
        else:
            _info_one(path, kind)
    except (DatasetError, OSError) as e:
        _fail(e)


def native_problems(folder: Path, prompts: Path | None = None) -> list[Problem]:
    """Everything wrong with a native folder, including a full pass over the data.

    `prompts` is the corpus to check the class names against (default: meta.json's "corpus").
    """
    from corpus import CorpusError, load_corpus
    from recognizer.datasets.checks import geometry_warnings
    from recognizer.datasets.native import (
        centring,
        layout_from_meta,
        meta_problems,
        nonfinite_clips,
        read_meta,
        read_split,
        resolve_corpus,
        split_problems,
    )

    try:
        meta = read_meta(folder)
        layout = layout_from_meta(meta["layout"], str(folder / META))
    except DatasetError as e:
        return [Problem("error", str(folder / META), str(e).split(": ", 1)[-1])]
    out = [p for p in meta_problems(meta, str(folder / META)) if p.level == "warning"]
    corpus = str(prompts) if prompts else resolve_corpus(meta, folder)
    if corpus:
        try:
            load_corpus(corpus, meta["class_names"])
        except CorpusError as e:
            out.append(Problem("error", corpus, f"does not match the class names: {e}"))
    else:
        out.append(Problem("warning", str(folder / META), "no prompt corpus: `pcle train` will need --prompts FILE "
                           "(check one with `pcle data check PATH --prompts FILE`)"))
    for name in meta["splits"]:
        try:
            s = read_split(folder, name)
        except DatasetError as e:
            out.append(Problem("error", str(folder / name), str(e)))
            continue
        found = split_problems(s, name, folder, layout, len(meta["class_names"]))
        out += found
        if any(p.level == "error" for p in found):
            continue
        out += _data_problems(s, folder / f"{name}_data.npy", nonfinite_clips)
        if not any(p.level == "error" for p in out):
            centre = centring(meta, str(folder / META)) == "first-frame"
            out += [Problem("warning", str(folder / f"{name}_data.npy"), msg)
                    for msg in geometry_warnings(s.data, s.lengths, layout, centre, meta.get("coordinates"))]
        absent = np.flatnonzero(np.bincount(s.labels, minlength=len(meta["class_names"])) == 0)
        if len(absent) and len(s):
            out.append(Problem("warning", str(folder / name), f"{len(absent)} classes have no clip, e.g. "
                               f"'{meta['class_names'][absent[0]]}'"))
    return out


def _clips(s: Split, idx, shown: int = 5) -> str:
    """Clips by sample name where the split has names (else by index), the first `shown` of them."""
    names = [f"'{s.names[i]}'" if s.names else f"clip {i}" for i in list(idx)[:shown]]
    return ", ".join(names) + (", ..." if len(idx) > shown else "")


def _data_problems(s: Split, where: Path, nonfinite_clips) -> list[Problem]:
    out = []
    bad = nonfinite_clips(s.data)
    if len(bad):
        out.append(Problem("error", str(where), f"{len(bad)} clips hold NaN/inf values: {_clips(s, bad)}"))
    short = np.flatnonzero(s.lengths == 1)
    if len(short):
        out.append(Problem("warning", str(where), f"{len(short)} clips have a single frame (no motion): "
                           f"{_clips(s, short)}"))
    empty_frames, zero_clips = 0, []
    for i in range(0, len(s), 256):
        chunk = np.asarray(s.data[i : i + 256])  # (n, C, T, V, M)
        used = np.any(chunk != 0, axis=(1, 3, 4))  # (n, T)
        inside = np.arange(chunk.shape[2])[None] < s.lengths[i : i + 256, None]
        empty_frames += int((~used & inside).sum())
        zero_clips += [i + k for k in np.flatnonzero(~used.any(1))]
    if zero_clips:
        msg = f"{len(zero_clips)} clips are all zeros: {_clips(s, zero_clips)}"
        out.append(Problem("error", str(where), msg))
    if empty_frames:
        msg = f"{empty_frames} all-zero frames inside the clips' lengths"
        out.append(Problem("warning", str(where), msg))
    return out


def _raw_problems(path: Path, kind: str) -> list[Problem]:
    if kind == "ntu-raw":
        from recognizer.datasets.ntu import _results, default_workers

        files = sorted(path.rglob("*.skeleton"))
        tasks = [(i, str(f), 300) for i, f in enumerate(files)]
        return [Problem("error", str(files[i]), err.split(": ", 1)[-1])
                for i, _, err in sorted(_results(tasks, default_workers()), key=lambda r: r[0]) if err]
    from recognizer.datasets.nw_ucla import read_clip

    out = []
    for f in sorted(path.glob("*.json")):
        try:
            sk, _, _ = read_clip(f)
        except DatasetError as e:
            out.append(Problem("error", str(f), str(e).split(": ", 1)[-1]))
            continue
        if len(sk) == 1:  # as the native check warns after import
            out.append(Problem("warning", str(f), f"'{f.stem}' has a single frame (no motion)"))
    return out


@app.command("check")
def check_command(
    path: Path = typer.Argument(..., help="dataset folder or file"),
    prompts: Path = typer.Option(None, help="prompt corpus to check the class names against (default: meta.json's)"),
) -> None:
    """List what is wrong with a dataset (exit 1 if anything is an error)."""
    try:
        kind = _kind(path)
        if prompts is not None and not prompts.is_file():
            raise DatasetError(f"{prompts}: --prompts corpus not found")
        if kind == "native":
            problems = native_problems(path, prompts)
        elif kind == "prepared":
            subs = sorted(sub for sub in path.iterdir() if (sub / META).is_file())
            problems = [p for sub in subs for p in native_problems(sub, prompts)]
        elif kind == "npz":
            _open(path, kind)  # every check happens while reading
            problems = []
        else:
            problems = _raw_problems(path, kind)
    except DatasetError as e:
        problems = [Problem("error", str(path), str(e))]
    for p in problems:
        colour = "red" if p.level == "error" else "yellow"
        console.print(f"[{colour}]{p.level}[/{colour}] {p.where}: {p.message}", highlight=False, soft_wrap=True)
    errors = sum(p.level == "error" for p in problems)
    # soft_wrap: a long path is never broken inside the line (logs and greps see one line per finding)
    console.print(f"{path}: {errors} errors, {len(problems) - errors} warnings", soft_wrap=True)
    if errors:
        raise typer.Exit(1)


# ---- layouts -------------------------------------------------------------------------------------

def _layout_source(name: str) -> tuple:
    """(layout, pose or None, title) for a shipped layout's name, a native folder or a JSON layout file."""
    import json

    from recognizer.datasets.layout_figure import pose_from_clip
    from recognizer.datasets.native import layout_from_meta, read_meta, read_split
    from recognizer.method.graph import LAYOUTS

    if name in LAYOUTS:
        return LAYOUTS[name], None, None
    path = Path(name)
    if path.is_dir():
        meta = read_meta(path)
        layout = layout_from_meta(meta["layout"], str(path / META))
        pose = None
        for split in meta["splits"]:
            try:
                s = read_split(path, split)
            except DatasetError:
                continue
            if len(s) and s.data.ndim == 5 and s.data.shape[3] == layout.num_joints:
                pose = pose_from_clip(s.data[0], int(s.lengths[0]))
                title = f"{layout.name} ({layout.num_joints} joints), first {split} clip of {path.name}"
                return layout, pose, title if pose is not None else None
        return layout, None, None
    if path.is_file():
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DatasetError(f"{path}: not readable JSON ({e})") from None
        spec = spec.get("layout", spec) if isinstance(spec, dict) else spec
        return layout_from_meta(spec, str(path)), None, None
    raise DatasetError(f"{name}: not a shipped layout ({', '.join(sorted(LAYOUTS))}), a native dataset folder "
                       "or a JSON file with a layout")


@app.command("show-layout")
def show_layout_command(
    name: str = typer.Argument(..., help="ntu25 | ucla20 | coco17, a native dataset folder, or a layout JSON file"),
    out: Path = typer.Option(None, help="PNG to draw: joints numbered, part groups coloured, centre joint ringed"),
    rest_pose: bool = typer.Option(False, help="for a dataset folder: draw the rest pose, not its first clip"),
) -> None:
    """Joint order of a layout (index, name, parent, part group), and optionally a picture of it."""
    from recognizer.datasets.layout_figure import draw_layout, joint_rows

    try:
        layout, pose, title = _layout_source(name)
    except DatasetError as e:
        _fail(e)
    table = Table("#", "joint", "parent", "part group", title=f"layout {layout.name}: {layout.num_joints} joints, "
                  f"centre joint {layout.center}")
    for row in joint_rows(layout):
        table.add_row(*row)
    console.print(table)
    if out is not None:
        path = draw_layout(layout, out, None if rest_pose else pose, None if rest_pose else title)
        console.print(f"wrote {path}")


@app.command("import-text")
def import_text_command(
    src: Path = typer.Argument(..., help="folder SRC/<split>/<class name>/<clip>.txt (train/ and test/ at least)"),
    out: Path = typer.Option(..., help="native output folder"),
    layout: str = typer.Option(..., help="joint order: ntu25 | ucla20 | coco17, or a JSON file with a layout"),
    per_line: str = typer.Option("frame", help="frame: one frame per line | joint: one joint per line"),
    per_joint: int = typer.Option(3, help="numbers per joint in the file"),
    channels: int = typer.Option(None, help="keep the first N numbers of each joint (default: all)"),
    skip: int = typer.Option(0, help="header lines to drop at the top of each file"),
    pattern: str = typer.Option("*.txt", help="file name pattern inside the class folders"),
    classes: Path = typer.Option(None, help="file with one class name per line (default: the folder names, sorted)"),
    centre: str = typer.Option("first-frame", help="first-frame (as the built-in datasets) | none"),
    corpus: str = typer.Option(None, help="prompt corpus for these classes (written to meta.json)"),
    name: str = typer.Option(None, help="dataset name in meta.json, run logs and `pcle runs` (default: SRC's "
                                        "folder name)"),
    drop_zero_frames: bool = typer.Option(False, help="remove frames whose numbers are all zero (a lost body)"),
    skip_zero_clips: bool = typer.Option(False, help="leave out clips that hold only zeros (listed when done)"),
    overwrite: bool = OVERWRITE,
) -> None:
    """Convert plain-text skeleton files (one frame or one joint per line) into the native format."""
    from recognizer.datasets.base import CENTRINGS
    from recognizer.datasets.text_import import import_text

    try:
        if centre not in CENTRINGS:
            raise DatasetError(f"--centre {centre!r}: choose one of {', '.join(CENTRINGS)}")
        lay, _, _ = _layout_source(layout)
        names = None
        if classes is not None:
            if not classes.is_file():
                raise DatasetError(f"{classes}: class list not found")
            names = [n.strip() for n in classes.read_text(encoding="utf-8").splitlines() if n.strip()]
        made_by = _made_by("import-text", src, layout=layout, per_line=per_line, per_joint=per_joint, channels=channels,
                           skip=skip, pattern=pattern, classes=str(classes) if classes else None, centre=centre,
                           corpus=corpus, name=name, drop_zero_frames=drop_zero_frames, skip_zero_clips=skip_zero_clips)
        _guard(out, made_by, overwrite)
        r = import_text(src, out, lay, per_line, per_joint, channels, skip, pattern, names, centre, corpus, name,
                        drop_zero_frames, skip_zero_clips)
        _stamp(r.path, made_by)
        if drop_zero_frames:
            console.print(f"dropped {r.dropped_frames} all-zero frames from {r.clips_with_dropped} clips",
                          highlight=False)
        if r.skipped:
            shown = ", ".join(r.skipped[:5]) + (", ..." if len(r.skipped) > 5 else "")
            console.print(f"skipped {len(r.skipped)} all-zero clips: {shown}", highlight=False)
        console.print(f"wrote {r.clips} clips to {r.path}; check it with `pcle data check {r.path}`",
                      highlight=False)
    except (DatasetError, OSError) as e:
        _fail(e)
