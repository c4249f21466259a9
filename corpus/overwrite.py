"""The one rule every command that writes follows: it never replaces user data it did not create in this call.

Each writer asks here before it replaces an existing file or folder:

- a curated corpus shipped in prompts/ is never replaced (`pcle prompts edit` is how it changes;
  `corpus.files.refuse_curated`, which every corpus write calls);
- a file a run folder owns (config.yaml, checkpoint.pt, metrics.json, scores, ...) is written by
  `pcle train` / `evaluate` / `zeroshot` only; any other output path naming one is refused;
- a corpus with hand-edited records (`edited: true` or a changed content hash) is replaced only with
  `--overwrite-edits` (`generate` keeps the edited records instead);
- a dataset folder that holds another dataset (a different source or options, or files this tool does
  not write) is replaced only with `--overwrite`; rerunning the same import replaces its own output.

Refusals are `OverwriteError`, a FileExistsError (the curated guard: a CorpusError): every command's
error handler prints them as one line. Both stages import this module (it imports neither).
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

RUN_MARKERS = ("config.yaml", "checkpoint.pt", "log.jsonl")  # a folder holding one of these is a run folder
RUN_FILES = ("config.yaml", "log.jsonl", "train.log", "checkpoint.pt", "best.pt", "metrics.json", "provenance.json",
             "eval.json", "zeroshot.json", "scores_*.npy", "labels_*.npy", "samples_*.txt")
RUN_DIRS = ("report", "tb")  # everything below these belongs to the run too
DATASET_FILES = ("meta.json", "*_data.npy", "*_label.npy", "*_length.npy", "*_names.txt", ".*.tmp", "report.json")


class OverwriteError(FileExistsError):
    """A command was about to replace data it did not create."""


def _is_run_folder(folder: Path) -> bool:
    return any((folder / name).is_file() for name in RUN_MARKERS)


def run_owner(path: str | Path) -> Path | None:
    """The run folder that owns `path` (a run file, or anything under its report/ or tb/), else None."""
    path = Path(path).absolute()
    if _is_run_folder(path.parent) and any(fnmatch.fnmatch(path.name, p) for p in RUN_FILES):
        return path.parent
    for up in path.parents:
        if up.name in RUN_DIRS and _is_run_folder(up.parent):
            return up.parent
    return None


def refuse_run_file(path: str | Path, option: str) -> None:
    """An output path (`option` names where it came from) must not name a file a run folder owns."""
    owner = run_owner(path)
    if owner is not None:
        raise OverwriteError(f"{option} {path}: that file belongs to the run in {owner} and is never replaced by "
                             "this command; write the output elsewhere")


def refuse_output(path: str | Path, option: str) -> None:
    """What every user-named output file is checked against: curated corpora (corpus.files.refuse_curated) and
    files a run owns."""
    from corpus.files import refuse_curated

    refuse_curated(path)
    refuse_run_file(path, option)


def refuse_edited_corpus(path: str | Path, overwrite_edits: bool) -> None:
    """A corpus holding hand-edited records (corpus.edits.is_edited) is replaced only when the user says so."""
    from corpus.edits import is_edited
    from corpus.files import read_records

    if overwrite_edits or not Path(path).is_file():
        return
    edited = [str(r.get("name")) for r in read_records(Path(path)) if is_edited(r)]
    if edited:
        shown = ", ".join(edited[:5]) + (f", ... ({len(edited)})" if len(edited) > 5 else "")
        raise OverwriteError(f"{path}: holds {len(edited)} hand-edited record(s) ({shown}); they would be lost. "
                             "Write to another --out, or pass --overwrite-edits to replace them")


def refuse_other_dataset(folder: str | Path, made_by: dict, overwrite: bool) -> None:
    """A dataset folder is replaced only by the same import that made it (same `made_by`), or with --overwrite.

    `made_by` describes this call (command, source, options); the importer stores it in meta.json.
    """
    folder = Path(folder)
    if overwrite or not folder.is_dir():
        return
    entries = [p.name for p in folder.iterdir()]
    if not entries:
        return
    foreign = [n for n in entries if not any(fnmatch.fnmatch(n, p) for p in DATASET_FILES)]
    meta = folder / "meta.json"
    if not foreign and not meta.is_file():
        return  # the data files of an interrupted import (meta.json is written last): nothing usable to lose
    if not foreign:
        try:
            earlier = json.loads(meta.read_text(encoding="utf-8")).get("made_by")
        except (OSError, ValueError, AttributeError):
            earlier = None
        if earlier == made_by:
            return
        what = f"another dataset ({_describe(earlier)})"
    else:
        what = f"files this command did not write ({', '.join(sorted(foreign)[:3])})"
    raise OverwriteError(f"{folder}: holds {what}; choose another --out, or pass --overwrite to replace it")


def _describe(made_by: dict | None) -> str:
    if not isinstance(made_by, dict):
        return "made by another command or by hand"
    opts = ", ".join(f"{k} {v}" for k, v in made_by.items() if k not in ("command", "source") and v is not None)
    return f"made by {made_by.get('command')} from {made_by.get('source')}" + (f", {opts}" if opts else "")
