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

    def line(self, text: str) -> None:
        """A progress line inside an epoch (StepLog), as plain as an epoch line."""
        self._emit(text)

    def _emit(self, line: str) -> None:
        print(line, file=self.stream or sys.stdout, flush=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:  # a log: appending loses nothing on a crash
            f.write(line + "\n")


class StepLog:
    """What a run says between epoch lines, from the timing of its training steps.

    - once per run, after the first few steps: the expected duration of the whole run (every run, so that a
      person or a scheduler knows at once what it will take);
    - when the output is not a terminal (a log file, a cluster job): a line every `every_s` seconds inside
      an epoch, so that a log is never silent for minutes (a terminal shows a bar instead).

    The first step is left out of the rates (it pays for warm-up: allocation, compilation, worker start).
    """

    WARM_STEPS = 3  # steps after the first one that the expected duration is measured on

    def __init__(self, log: EpochLog, steps_per_epoch: int, total_epochs: int, start_epoch: int,
                 periodic: bool, every_s: float = 30.0, clock=time.perf_counter):
        self.log, self.steps, self.total, self.start = log, max(steps_per_epoch, 1), total_epochs, start_epoch
        self.periodic, self.every_s, self.clock = periodic, every_s, clock
        self.epoch, self.step_in_epoch, self.done = start_epoch, 0, 0  # done: steps of this session
        self.t_first = self.t_last_line = None  # end of the session's first step; time of the last line
        self.samples_after_first = 0
        self.announced = False

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.step_in_epoch = epoch, 0

    def rate(self) -> tuple[float, float] | None:
        """(steps/s, samples/s) over this session's steps after its first, or None before the second."""
        if self.t_first is None or self.done < 2:
            return None
        elapsed = max(self.clock() - self.t_first, 1e-9)
        return (self.done - 1) / elapsed, self.samples_after_first / elapsed

    def remaining_s(self, steps_per_s: float) -> float:
        left = self.steps - self.step_in_epoch + self.steps * (self.total - self.epoch - 1)
        return left / steps_per_s

    def step(self, samples: int) -> None:
        self.done += 1
        self.step_in_epoch += 1
        now = self.clock()
        if self.t_first is None:
            self.t_first = self.t_last_line = now
            if self.steps * (self.total - self.start) == 1:
                self._announce(None)
            return
        self.samples_after_first += samples
        if not self.announced and (self.done > self.WARM_STEPS or self.step_in_epoch == self.steps):
            self._announce(self.rate())
        if self.periodic and now - self.t_last_line >= self.every_s and self.step_in_epoch < self.steps:
            self.t_last_line = now
            steps_per_s, samples_per_s = self.rate()
            self.log.line(f"  epoch {self.epoch + 1}/{self.total}  step {self.step_in_epoch}/{self.steps}  "
                          f"samples/s {samples_per_s:.0f}  "
                          f"epoch eta {duration((self.steps - self.step_in_epoch) / steps_per_s)}  "
                          f"run eta {duration(self.remaining_s(steps_per_s))}")

    def _announce(self, rate: tuple[float, float] | None) -> None:
        self.announced = True
        epochs = self.total - self.start
        if rate is None:
            self.log.note("expected duration: the whole run is a single training step")
            return
        steps_per_s, samples_per_s = rate
        total = self.steps * epochs / steps_per_s
        self.log.note(f"expected duration: about {duration(total)} of training steps for {epochs} epoch(s) of "
                      f"{self.steps} steps ({samples_per_s:.0f} samples/s over steps 2-{self.done}; "
                      "evaluation adds to it)")
