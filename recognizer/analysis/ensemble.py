"""`pcle ensemble RUN_DIR...`: sum of weighted softmax scores of several runs (e.g. four streams).

Run-folder contract (written by the trainer): scores_<split>.npy (N, C) raw class scores,
labels_<split>.npy (N,), samples_<split>.txt (one sample name per line; must agree across runs),
config.yaml with data.clip.stream. <split> is `test`, and optionally `val` for weight search:
weights are only ever searched on validation scores, never on the test split.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer
import yaml
from rich.console import Console
from rich.table import Table

STREAM_WEIGHTS = {"joint": 0.6, "bone": 0.6, "joint_motion": 0.4, "bone_motion": 0.4}
GRID = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
console = Console()


class EnsembleError(ValueError):
    """Runs that cannot be combined; the message names the run and the file."""


@dataclass
class RunScores:
    run: Path
    stream: str
    scores: np.ndarray  # (N, C)
    labels: np.ndarray  # (N,)
    samples: list[str]


def read_stream(run: Path) -> str:
    path = run / "config.yaml"
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
        stream = ((cfg or {}).get("data") or {}).get("clip", {}).get("stream", "joint")
    except (OSError, yaml.YAMLError, AttributeError) as e:
        raise EnsembleError(f"{path}: unreadable config ({e})") from None
    return str(stream)


def load_run(run: str | Path, split: str = "test") -> RunScores:
    run = Path(run)
    files = [run / f"scores_{split}.npy", run / f"labels_{split}.npy", run / f"samples_{split}.txt"]
    absent = [f.name for f in files if not f.is_file()]
    if absent:
        raise EnsembleError(f"{run}: no {', '.join(absent)}")
    try:
        scores = np.load(files[0], allow_pickle=False).astype(np.float64)
        labels = np.load(files[1], allow_pickle=False).astype(np.int64)
    except (OSError, ValueError, EOFError) as e:
        raise EnsembleError(f"{run}: unreadable scores or labels for '{split}' ({e})") from None
    samples = files[2].read_text(encoding="utf-8").splitlines()
    if scores.ndim != 2 or labels.shape != (len(scores),) or len(samples) != len(scores):
        raise EnsembleError(f"{run}: scores {scores.shape}, labels {labels.shape}, {len(samples)} sample "
                            f"names for '{split}' do not agree")
    if not np.isfinite(scores).all():
        raise EnsembleError(f"{files[0]}: NaN or infinite scores")
    return RunScores(run, read_stream(run), scores, labels, samples)


def check_aligned(runs: list[RunScores]) -> None:
    ref = runs[0]
    for r in runs[1:]:
        if r.samples != ref.samples:
            raise EnsembleError(f"{r.run}: its samples differ from {ref.run} (names or order); refusing")
        if r.scores.shape != ref.scores.shape or not np.array_equal(r.labels, ref.labels):
            raise EnsembleError(f"{r.run}: scores {r.scores.shape} or labels differ from {ref.run}")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def combine(runs: list[RunScores], weights: list[float]) -> np.ndarray:
    """sum_k w_k softmax(scores_k) -> (N, C)."""
    return sum(w * softmax(r.scores) for w, r in zip(weights, runs, strict=True))


def topk(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float((best == labels[:, None]).any(1).mean() * 100)


def search_weights(runs: list[RunScores]) -> list[float]:
    """Best top-1 over a grid (exhaustive up to 4 runs; coordinate ascent beyond)."""
    probs = [softmax(r.scores) for r in runs]
    labels = runs[0].labels

    def acc(w: tuple[float, ...]) -> float:
        return float((sum(p * x for p, x in zip(probs, w, strict=True)).argmax(1) == labels).mean())

    if len(runs) <= 4:
        combos = (w for w in itertools.product(GRID, repeat=len(runs)) if any(w))
        return list(max(combos, key=acc))
    w = [1.0] * len(runs)
    for _ in range(3):
        for i in range(len(w)):
            w[i] = max(GRID, key=lambda g, i=i: acc(tuple(w[:i] + [g] + w[i + 1 :])))
    return w


def default_weights(runs: list[RunScores]) -> list[float]:
    return [STREAM_WEIGHTS.get(r.stream, 1.0) for r in runs]


def parse_weights(text: str) -> list[float]:
    """--weights 1,0.5: one finite number per run."""
    out = []
    for item in text.split(","):
        try:
            out.append(float(item))
        except ValueError:
            raise EnsembleError(f"--weights {text}: {item.strip()!r} is not a number (give one number per run, "
                                "e.g. --weights 0.6,0.4)") from None
        if not np.isfinite(out[-1]):
            raise EnsembleError(f"--weights {text}: {item.strip()!r} must be a finite number")
    return out


def ensemble_cli(
    run_dirs: list[Path] = typer.Argument(..., help="run folders (scores_test.npy, ...)"),
    weights: str = typer.Option(None, help="comma-separated, one per run (default by stream)"),
    search_val: bool = typer.Option(False, help="search weights on the runs' validation scores (never test)"),
    out: Path = typer.Option(None, help="also write the result as JSON (runs, weights, top-1/top-5)"),
) -> None:
    """Combine saved test scores of several runs; print top-1/top-5 per run and for the ensemble."""
    from corpus.overwrite import OverwriteError, refuse_output

    try:
        if out is not None:
            refuse_output(out, "--out")
        runs = [load_run(r, "test") for r in run_dirs]
        check_aligned(runs)
        if search_val and weights:
            raise EnsembleError("give either --weights or --search-val, not both")
        if search_val:
            val = [load_run(r, "val") for r in run_dirs]
            check_aligned(val)
            w = search_weights(val)
        elif weights:
            w = parse_weights(weights)
            if len(w) != len(runs):
                raise EnsembleError(f"{len(w)} weights for {len(runs)} runs")
        else:
            w = default_weights(runs)
    except (EnsembleError, ValueError, OverwriteError) as e:
        console.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2) from None
    table = Table("run", "stream", "weight", "top-1 %", "top-5 %", title=f"ensemble of {len(runs)} runs")
    for r, x in zip(runs, w, strict=True):
        table.add_row(str(r.run), r.stream, f"{x:g}", f"{topk(r.scores, r.labels, 1):.2f}",
                      f"{topk(r.scores, r.labels, 5):.2f}")
    fused = combine(runs, w)
    labels = runs[0].labels
    table.add_row("[bold]ensemble[/bold]", "", "searched on val" if search_val else "",
                  f"[bold]{topk(fused, labels, 1):.2f}[/bold]", f"{topk(fused, labels, 5):.2f}")
    console.print(table)
    if out is not None:
        write_result(out, runs, w, fused, "validation" if search_val else "given" if weights else "stream defaults")


def write_result(path: Path, runs: list[RunScores], weights: list[float], fused: np.ndarray, source: str) -> None:
    """The ensemble as a small JSON file, so a table can cite it (written atomically)."""
    import json

    from recognizer.checkpoint import atomic_write_text

    labels = runs[0].labels
    record = {"runs": [{"run": str(r.run), "stream": r.stream, "weight": float(x),
                        "top1": topk(r.scores, r.labels, 1), "top5": topk(r.scores, r.labels, 5)}
                       for r, x in zip(runs, weights, strict=True)],
              "weights_from": source, "top1": topk(fused, labels, 1), "top5": topk(fused, labels, 5),
              "samples": len(labels)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
