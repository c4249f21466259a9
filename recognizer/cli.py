"""`pcle train` and `pcle evaluate`: thin typer wrappers that turn errors into one clear line."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, KeyError, OSError)


@contextmanager
def clean_errors():
    """Bad input ends with a one-line message and exit code 2, never a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the last finished epoch is in checkpoint.pt; rerun with --resume")
        raise typer.Exit(130) from None
    except USER_ERRORS as e:
        console.print(f"[red]error:[/red] {e}", soft_wrap=True)
        raise typer.Exit(2) from None


def results_table(title: str, rows: list[dict]) -> Table:
    table = Table(title=title)
    for col in ("method", "dataset", "epochs", "top1", "top5", "train samples/s"):
        table.add_column(col, justify="right" if col not in ("method", "dataset") else "left")
    for m in rows:
        table.add_row(m["method"], m["dataset"], str(m["epochs"]), f"{m['top1']:.2f}", f"{m['top5']:.2f}",
                      f"{m['train_samples_per_s']:.1f}")
    return table


def train_command(
    dataset: str = typer.Option(None, help="synthetic | nw-ucla | ntu60-xsub | ... | native"),
    method: str = typer.Option(None, help="pcle | pcke | gap (default: pcle)"),
    config: Path = typer.Option(None, help="YAML config applied over the dataset preset"),
    data_root: str = typer.Option(None, help="dataset location (file or folder)"),
    prompts: str = typer.Option(None, help="prompt corpus JSONL (default: the dataset's curated corpus)"),
    epochs: int = typer.Option(None, help="override optim.epochs"),
    out: Path = typer.Option(None, help="run folder (default runs/<dataset>-<method>)"),
    set_: list[str] = typer.Option([], "--set", help="override any config key, e.g. --set optim.lr=0.05"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    stop_after: int = typer.Option(None, help="stop after this many epochs (resume later with --resume)"),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Train a recognizer; writes a run folder (config, log, checkpoint, metrics, scores)."""
    from recognizer.config import resolve
    from recognizer.train import train

    with clean_errors():
        overrides = list(set_)
        if data_root:
            overrides.append(f"data.root={data_root}")
        if prompts:
            overrides.append(f"prompt.corpus={prompts}")
        if epochs:
            overrides.append(f"optim.epochs={epochs}")
        cfg = resolve(dataset, method, str(config) if config else None, overrides)
        run = out or Path("runs") / f"{cfg.data.dataset}-{cfg.method}"
        console.print(f"training [bold]{cfg.method}[/bold] on [bold]{cfg.data.dataset}[/bold] -> {run}")
        metrics = train(cfg, run, resume=resume, stop_after=stop_after, progress=progress)
        if metrics.get("stopped"):
            console.print(f"stopped after epoch {metrics['epochs']}; continue with --resume --out {run}")
            return
        console.print(results_table(f"run {run}", [metrics]))


def evaluate_command(
    run: Path = typer.Argument(..., help="run folder"),
    data_root: str = typer.Option(None, help="dataset location, if it moved since training"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
) -> None:
    """Top-1/top-5 and per-class accuracy of a trained run; writes scores_test.npy and eval.json."""
    from recognizer.evaluate import evaluate_run

    with clean_errors():
        result = evaluate_run(run, data_root, device)
        table = Table(title=f"{run}: top-1 {result['top1']:.2f}  top-5 {result['top5']:.2f}  "
                            f"mean class {result['mean_class_accuracy']:.2f}")
        table.add_column("class")
        table.add_column("top-1", justify="right")
        for name, acc in result["per_class_top1"].items():
            table.add_row(name, "-" if acc is None else f"{acc:.1f}")
        console.print(table)
