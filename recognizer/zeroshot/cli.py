"""`pcle zeroshot` and `pcle zeroshot-grid`: thin typer wrappers (errors become one clear line)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from recognizer.cli import clean_errors, console, with_root
from recognizer.zeroshot.evaluate import HEADERS, METRICS, aggregate


def _table(title: str, records: list[dict]) -> Table:
    table = Table(title=title)
    for col in ("method", "text", "runs", *HEADERS):
        table.add_column(col, justify="left" if col in ("method", "text") else "right")
    for row in aggregate(records):
        cells = [f"{row[m]:.1f}" + ("" if row[f"{m}_std"] is None else f" ± {row[f'{m}_std']:.1f}") for m in METRICS]
        table.add_row(row["method"], row["text"], str(row["runs"]), *cells)
    return table


def _print_table(title: str, records: list[dict]) -> None:
    """The table; too wide for the console (80 columns, a pipe): one column per evaluation instead."""
    from recognizer.analysis.narrow import fits, print_table

    table = _table(title, records)
    if fits(console, table):
        console.print(table)
        return
    rows = [[f"{row['method']} {row['text']}", str(row["runs"]),
             *(f"{row[m]:.1f}" + ("" if row[f"{m}_std"] is None else f" ± {row[f'{m}_std']:.1f}") for m in METRICS)]
            for row in aggregate(records)]
    print_table(console, title, ["evaluation", "runs", *HEADERS], rows, right=set(HEADERS) | {"runs"})


def zeroshot_command(
    runs: list[Path] = typer.Argument(..., help="run folders trained with data.unseen (or folders holding several)"),
    prompts: str = typer.Option(None, help="prompt corpus for the unseen classes (default: the run's corpus)"),
    classes: list[str] = typer.Option(None, "--classes", help="evaluate only these unseen classes (names or ids)"),
    text: list[str] = typer.Option(None, "--text", help="mean | best | name | learned, repeatable "
                                                        "(default: learned for PCLE runs, mean otherwise)"),
    gamma: float = typer.Option(0.0, help="GZSL calibrated stacking: subtract this from seen-class cosine scores"),
    parts: float = typer.Option(0.0, help="weight of the part-description scores (0 = global embedding only)"),
    template: str = typer.Option("a person is {}.", help="template of text mode 'name'"),
    out: Path = typer.Option(None, help="also write OUT/zeroshot.{md,csv,json} (mean ± std over the runs)"),
    data_root: str = typer.Option(None, help="dataset location, if it moved since training"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
) -> None:
    """ZSL top-1/top-5 on unseen classes, GZSL seen/unseen/H and base-to-new accuracy of trained runs."""
    from corpus.overwrite import refuse_output
    from recognizer.training.run_log import quiet_library_bars
    from recognizer.zeroshot.evaluate import evaluate_or_reuse, find_runs, write_tables
    from recognizer.zeroshot.text import TEXT_MODES

    with clean_errors():
        bad = [m for m in text or [] if m not in TEXT_MODES]
        if bad:  # before any encoder is loaded
            raise ValueError(f"--text {bad[0]}: unknown text mode (choose from {', '.join(TEXT_MODES)})")
        if not console.is_terminal:
            quiet_library_bars()  # no "Loading weights" bar in a log
        if out:
            refuse_output(Path(out) / "zeroshot.json", "--out")
        records = []
        for run in find_runs([str(r) for r in runs]):
            records += evaluate_or_reuse(run, list(text or []) or None, gamma, parts, template, log=console.print,
                                         corpus=prompts, classes=list(classes or []), data_root=data_root,
                                         device=device)
        unseen = sorted({n for r in records for n in r["unseen_classes"]})
        _print_table(f"zero-shot, {len(records)} evaluation(s); unseen: {', '.join(unseen)}", records)
        if out:
            console.print(f"tables: {write_tables(out, records)}")


def zeroshot_grid_command(
    dataset: str = typer.Option(None, help="synthetic | nw-ucla | ntu60-xsub | ... | native"),
    config: Path = typer.Option(None, help="YAML config applied over the dataset preset"),
    methods: str = typer.Option("pcke,pcle,gap", help="comma-separated methods"),
    splits: list[str] = typer.Option(["random:2:0-4"], "--splits", help="unseen specs, repeatable; "
                                     "random:K:A-B = seeds A..B (e.g. random:2:0-4, ntu60-55/5)"),
    epochs: int = typer.Option(None, help="override optim.epochs for every run"),
    set_: list[str] = typer.Option([], "--set", help="override any config key for every run"),
    data_root: str = typer.Option(None, help="dataset location (file or folder) for every run"),
    gamma: float = typer.Option(0.0, help="GZSL calibrated stacking gamma"),
    parts: float = typer.Option(0.0, help="weight of the part-description scores"),
    out: Path = typer.Option(..., help="grid folder: OUT/<method>/<split>/, OUT/zeroshot.{md,csv,json}"),
    progress: bool = typer.Option(False, help="show progress bars"),
) -> None:
    """Train one run per (method, split) with data.unseen, evaluate all, write mean ± std tables; resumes."""
    from recognizer.zeroshot.grid import parse_methods, run_zeroshot_grid

    with clean_errors():
        dataset, overrides = with_root(dataset, config, list(set_), data_root)
        records = run_zeroshot_grid(out, dataset, str(config) if config else None, parse_methods(methods),
                                    list(splits), epochs, overrides, gamma, parts, progress, log=console.print)
        console.print((out / "zeroshot.md").read_text(), markup=False)
        console.print(f"tables: {out / 'zeroshot.md'}, {out / 'zeroshot.csv'} ({len(records)} evaluations)")
