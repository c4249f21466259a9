"""What a person follows while a run trains: one plain line per epoch, on the console and in RUN_DIR/train.log.

    epoch 3/10  loss 1.234  ce 0.456  train 61.2  top1 58.0  lr 0.1000  samples/s 412  eta 2m10s

Progress bars are for interactive terminals only: redirected to a file, a run prints these lines and
nothing else (no blank lines left behind by bars).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console


def bars_wanted(progress: bool, console: Console) -> bool:
    """Bars only when asked for and the console is an interactive terminal."""
    return progress and console.is_terminal


def quiet_library_bars() -> None:
    """Silence third-party bars (transformers' "Loading weights") when the run shows none of its own."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        return
    hf_logging.disable_progress_bar()


def duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def epoch_line(stats: dict, total: int, eta_s: float | None) -> str:
    """One epoch's numbers as the console and train.log show them (keys of a log.jsonl entry)."""
    parts = [f"epoch {stats['epoch']}/{total}", f"loss {stats['loss']:.4f}"]
    if "ce" in stats:
        parts.append(f"ce {stats['ce']:.4f}")
    parts.append(f"train {stats['train_top1']:.1f}")
    if "val_top1" in stats:
        parts.append(f"val {stats['val_top1']:.1f}")
    if "test_top1" in stats:
        parts.append(f"top1 {stats['test_top1']:.1f}")
    parts += [f"lr {stats['lr']:.4g}", f"samples/s {stats['samples_per_s']:.0f}"]
    if eta_s is not None:
        parts.append(f"eta {duration(eta_s)}")
    return "  ".join(parts)


class EpochLog:
    """Prints and appends one line per epoch; the ETA is the mean wall time of this session's epochs."""

    def __init__(self, run: Path, total: int, start: int, stream=None):
        self.path, self.total, self.start = Path(run) / "train.log", total, start
        self.stream = stream
        self.t0 = time.perf_counter()

    def note(self, text: str) -> None:
        """A line in train.log and on the console that is not an epoch (start, resume)."""
        self._emit(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {text}")

    def epoch(self, stats: dict) -> str:
        done = stats["epoch"] - self.start
        per_epoch = (time.perf_counter() - self.t0) / max(done, 1)
        line = epoch_line(stats, self.total, per_epoch * (self.total - stats["epoch"]))
        self._emit(line)
        return line

    def _emit(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:  # a log: appending loses nothing on a crash
            f.write(line + "\n")
