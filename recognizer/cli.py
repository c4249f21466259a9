"""`pcle train|evaluate|tsne|ablate|predict`: thin typer wrappers that turn errors into one clear line."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from corpus.overwrite import refuse_output

console = Console()
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, KeyError, OSError)


@contextmanager
def clean_errors(interrupted: Callable[[], str] = lambda: "interrupted"):
    """Bad input ends with a one-line message and exit code 2, never a traceback.

    `interrupted` says, at the moment of a Ctrl-C or SIGTERM, what was kept (it looks at the run folder then).
    """
    from corpus.interrupt import exit_code, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (corpus/interrupt.py)
        console.print(f"[yellow]{interrupted()}", highlight=False, soft_wrap=True)
        raise typer.Exit(exit_code(e)) from None
    except USER_ERRORS as e:
        console.print(f"[red]error:[/red] {e}", soft_wrap=True)
        raise typer.Exit(2) from None


def interrupted_run(run: Path) -> str:
    """The Ctrl-C message of a training run: resumable only when a checkpoint exists."""
    if (Path(run) / "checkpoint.pt").is_file():
        return f"interrupted: the last finished epoch is in {run}/checkpoint.pt; continue with --resume --out {run}"
    return ("interrupted before the first epoch finished: nothing to resume, and nothing of this run was kept in "
            f"{run}; rerun the same command to start again")


def results_table(title: str, rows: list[dict]) -> Table:
    table = Table(title=title)
    for col in ("method", "dataset", "epochs", "top1", "top5", "train samples/s"):
        table.add_column(col, justify="right" if col not in ("method", "dataset") else "left")
    for m in rows:
        table.add_row(m["method"], m["dataset"], str(m["epochs"]), f"{m['top1']:.2f}", f"{m['top5']:.2f}",
                      f"{m['train_samples_per_s']:.1f}")
    return table


def infer_dataset(root: str) -> str:
    """`--data-root` without `--dataset`: a native folder says what it is (meta.json); anything else is refused."""
    path = Path(root)
    if (path / "meta.json").is_file():
        return "native"
    if not path.exists():
        raise FileNotFoundError(f"{path}: --data-root not found")
    raise ValueError(f"{path}: not a native dataset folder (no meta.json); say which dataset it is with --dataset "
                     "(nw-ucla, ntu60-xsub, ntu60-xview, ntu120-xsub, ntu120-xset, native)")


def with_root(dataset: str | None, config: Path | None, sets: list[str], data_root: str | None
              ) -> tuple[str | None, list[str]]:
    """`--data-root` as every command takes it (train, ablate, reproduce, zeroshot-grid): the dataset it
    names (--dataset, else the one a --config/--set names, else what the folder says it is) and the --set
    items with `data.root` added, so a grid's runs read the data where it is."""
    from recognizer.config import dataset_named

    overrides = [*sets, f"data.root={data_root}"] if data_root else list(sets)
    return dataset or dataset_named(config, sets) or (infer_dataset(data_root) if data_root else None), overrides


def check_corpus(cfg) -> None:
    """A native dataset without a corpus in meta.json needs --prompts: say so before anything is built."""
    if cfg.prompt.corpus or cfg.data.dataset != "native" or not cfg.data.root:
        return
    from recognizer.datasets.native import read_meta

    meta = read_meta(cfg.data.root)
    if not meta.get("corpus"):
        raise ValueError(f"{Path(cfg.data.root) / 'meta.json'}: names no prompt corpus for its classes; give one "
                         "with --prompts FILE (or \"corpus\" in meta.json, or --set prompt.corpus=FILE)")


def train_command(
    dataset: str = typer.Option(None, help="synthetic | nw-ucla | ntu60-xsub | ... | native"),
    method: str = typer.Option(None, help="pcle | pcke | gap (default: pcle)"),
    config: Path = typer.Option(None, help="YAML config applied over the dataset preset"),
    data_root: str = typer.Option(None, help="dataset location (file or folder)"),
    prompts: str = typer.Option(None, help="prompt corpus JSONL (default: the dataset's curated corpus)"),
    epochs: int = typer.Option(None, help="override optim.epochs; with --resume: extend the run to this many epochs"),
    out: Path = typer.Option(None, help="run folder (default runs/<dataset>-<method>)"),
    set_: list[str] = typer.Option([], "--set", help="override any config key, e.g. --set optim.lr=0.05"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    stop_after: int = typer.Option(None, help="stop after this many epochs (resume later with --resume)"),
    progress: bool = typer.Option(True, help="show progress bars (on interactive terminals)"),
    progress_every: float = typer.Option(30.0, help="output not a terminal: seconds between progress lines inside "
                                                    "an epoch"),
    print_config: bool = typer.Option(False, "--print-config", help="print the resolved config and exit"),
) -> None:
    """Train a recognizer; writes a run folder (config, log, checkpoint, metrics, scores, provenance)."""
    from recognizer.config import resolve, to_yaml
    from recognizer.train import train
    from recognizer.training.run_log import quiet_library_bars
    from recognizer.training.run_setup import (
        check_config,
        discard_unstarted,
        method_overrides,
        resumed_config,
        with_data_root,
    )

    main = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 speaks for all
    say = console.print if main else (lambda *a, **k: None)
    run = out
    with clean_errors(lambda: interrupted_run(run)):
        if stop_after is not None and stop_after < 1:
            raise ValueError(f"--stop-after {stop_after}: must be at least 1 (the epochs to train before stopping)")
        dataset, overrides = with_root(dataset, config, list(set_), data_root)
        if prompts:
            overrides.append(f"prompt.corpus={prompts}")
        if epochs is not None:
            overrides.append(f"optim.epochs={epochs}")
        cfg = resolve(dataset, method, str(config) if config else None, overrides)
        if not resume:
            check_corpus(cfg)
        run = out or Path("runs") / f"{cfg.data.dataset}-{cfg.method}"
        if resume:  # the run's own config governs it; only --epochs (extend) may change it
            ignored = [n for n, v in (("--dataset", dataset), ("--method", method), ("--config", config),
                                      ("--data-root", data_root), ("--prompts", prompts), ("--set", set_)) if v]
            if ignored:
                say(f"[yellow]warning:[/yellow] --resume uses the run's own config; ignoring {', '.join(ignored)}")
            cfg, _ = resumed_config(run, epochs)
        else:
            for line in method_overrides(list(set_), cfg):
                say(f"[yellow]warning:[/yellow] {line}", highlight=False, soft_wrap=True)
            cfg = with_data_root(cfg)
            check_config(cfg)
        if print_config:
            if cfg.optim.steps and not resume:  # YAML comment: the printed text still loads as a config
                typer.echo(f"# optim.steps {cfg.optim.steps}: optim.epochs is set from the training split's size "
                           "when the run starts")
            typer.echo(to_yaml(cfg), nl=False)
            return
        if not progress or not console.is_terminal:
            quiet_library_bars()
        say(f"training [bold]{cfg.method}[/bold] on [bold]{cfg.data.dataset}[/bold] -> {run}")
        with discard_unstarted(run, keep=resume or not main):  # a failure before epoch 1 leaves no leftovers
            metrics = train(cfg, run, resume=resume, stop_after=stop_after, progress=progress,
                            extend_to=epochs if resume else None, progress_every=progress_every)
        if not main:
            return
        if metrics.get("stopped"):
            console.print(f"stopped after epoch {metrics['epochs']}; continue with --resume --out {run}")
            return
        console.print(results_table(f"run {run}", [metrics]))


def evaluate_command(
    run: Path = typer.Argument(..., help="run folder"),
    data_root: str = typer.Option(None, help="dataset location, if it moved since training"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    report: bool = typer.Option(True, help="also write RUN/report/ (report.md, report.json, confusion.png)"),
) -> None:
    """Top-1/top-5, per-class accuracy and a report; writes scores_test.npy, eval.json and RUN/report/."""
    from recognizer.analysis.evaluate import edited_config_note, evaluate_run
    from recognizer.analysis.report import report_run

    with clean_errors():
        note = edited_config_note(run)
        if note:
            console.print(f"[yellow]warning:[/yellow] {note}", highlight=False, soft_wrap=True)
        if report:
            result, summary = report_run(run, data_root, device)
        else:
            result, summary = evaluate_run(run, data_root, device), None
        if "unfinished" in result:
            done = result["unfinished"]
            console.print(f"[yellow]note:[/yellow] {run} is an unfinished run (epoch {done['epochs_done']} of "
                          f"{done['epochs']}): evaluated from its last checkpoint, class text computed now, scores "
                          "from the classification head", highlight=False, soft_wrap=True)
        table = Table(title=f"{run}: top-1 {result['top1']:.2f}  top-5 {result['top5']:.2f}  "
                            f"mean class {result['mean_class_accuracy']:.2f}")
        table.add_column("class")
        table.add_column("top-1", justify="right")
        for name, acc in result["per_class_top1"].items():
            table.add_row(name, "-" if acc is None else f"{acc:.1f}")
        console.print(table)
        if summary is not None:
            pairs = Table(title="most confused class pairs")
            for col in ("true class", "predicted as", "clips", "% of true"):
                pairs.add_column(col, justify="right" if col in ("clips", "% of true") else "left")
            for p in summary["confused_pairs"][:5]:
                pairs.add_row(p["true"], p["predicted"], str(p["count"]), f"{p['percent_of_true']:.1f}")
            console.print(pairs)
            console.print(f"report: {Path(run) / 'report'} (report.md, report.json, confusion.png)")


def tsne_command(
    runs: list[Path] = typer.Argument(..., help="one or more run folders (drawn side by side)"),
    classes: list[str] = typer.Option(None, "--classes", help="class names or ids, comma-separated or repeated "
                                                              "(default: the first 9)"),
    out: Path = typer.Option(None, help="PNG to write (default: RUN/report/tsne.png of the first run)"),
    per_class: int = typer.Option(100, help="at most this many test clips per class"),
    seed: int = typer.Option(0, help="t-SNE and subsampling seed"),
    data_root: str = typer.Option(None, help="dataset location, if it moved since training"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    embedding: str = typer.Option("global", help="global: skel_global (before the interaction) | after: the "
                                                 "skeleton tokens after bridger + cross-modality attention"),
) -> None:
    """The paper's Fig. 2: t-SNE of skeleton embeddings (dots) and class text embeddings (diamonds)."""
    from recognizer.analysis.tsne import tsne_figure

    with clean_errors():
        if out:
            refuse_output(out, "--out")
        target = out or Path(runs[0]) / "report" / "tsne.png"
        summary = tsne_figure([str(r) for r in runs], classes, target, per_class, seed, data_root, device,
                              embedding)
        table = Table(title=f"t-SNE of {len(summary['classes'])} classes -> {summary['figure']}")
        for col in ("run", "method", "clips", "acc. on shown", "silhouette (embedding, cosine)",
                    "silhouette (t-SNE 2-D)"):
            table.add_column(col, justify="left" if col in ("run", "method") else "right")
        for r in summary["runs"]:
            fmt = [("-" if v is None else f"{v:.3f}") for v in (r["silhouette_embedding"], r["silhouette_tsne"])]
            table.add_row(r["name"], r["method"], str(r["samples"]), f"{r['accuracy_on_shown']:.1f}", *fmt)
        console.print(table)
        for r in summary["runs"]:
            if "unfinished" in r:
                console.print(f"[yellow]note:[/yellow] {r['unfinished']}", highlight=False, soft_wrap=True)
        console.print(f"numbers: {Path(summary['figure']).with_suffix('.json')}")


def ablate_command(
    config: Path = typer.Option(None, help="YAML config applied over the dataset preset"),
    dataset: str = typer.Option(None, help="synthetic | nw-ucla | ntu60-xsub | ... | native"),
    seeds: str = typer.Option("0", help="comma-separated seeds, e.g. 0,1,2"),
    epochs: int = typer.Option(None, help="override optim.epochs for every run"),
    set_: list[str] = typer.Option([], "--set", help="override any config key for every run"),
    data_root: str = typer.Option(None, help="dataset location (file or folder) for every run"),
    only: list[str] = typer.Option(None, "--only", help="run only these rows (names, comma-separated)"),
    out: Path = typer.Option(..., help="grid folder: OUT/<row>/seed<k>/, OUT/ablation.md, OUT/ablation.csv"),
    progress: bool = typer.Option(False, help="show progress bars"),
) -> None:
    """Run the ablation grid (GAP, PCKE, PCLE and PCLE without each part, context 4/8/16); resumes."""
    from recognizer.analysis.ablate import parse_seeds, run_grid

    with clean_errors(lambda: "interrupted: finished runs are kept and the current one resumes from its last "
                              "epoch; rerun the same command to continue"):
        dataset, overrides = with_root(dataset, config, list(set_), data_root)
        records = run_grid(out, dataset, str(config) if config else None, parse_seeds(seeds), epochs, overrides,
                           only, progress, log=console.print)
        console.print((out / "ablation.md").read_text(), markup=False)
        console.print(f"tables: {out / 'ablation.md'}, {out / 'ablation.csv'} ({len(records)} runs)")


def predict_command(
    checkpoint: Path = typer.Argument(..., help="checkpoint.pt or a run folder"),
    files: list[Path] = typer.Argument(..., help="clips: NTU .skeleton, NW-UCLA .json, .npy, native dataset folder"),
    top_k: int = typer.Option(5, "--top-k", help="classes to show per clip"),
    json_out: Path = typer.Option(None, "--json", help="also write the predictions to this JSON file"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
) -> None:
    """Top-k classes with probabilities for new clips; needs only the checkpoint."""
    import json

    from recognizer.analysis.predict import predict_files
    from recognizer.checkpoint import atomic_write_text

    failed: list[str] = []

    def report(message: str) -> None:
        failed.append(message)
        console.print(f"[red]skipped:[/red] {message}", highlight=False, soft_wrap=True)

    with clean_errors():
        if json_out:
            refuse_output(json_out, "--json")
        results = predict_files(checkpoint, [str(f) for f in files], top_k, device, on_error=report,
                                on_note=lambda m: console.print(f"[yellow]note:[/yellow] {m}", highlight=False,
                                                                soft_wrap=True))
        for r in results:
            table = Table(title=r["source"] + (f"  (true: {r['true']})" if "true" in r else ""), title_justify="left")
            table.add_column("#", justify="right")
            table.add_column("class")
            table.add_column("probability", justify="right")
            for i, t in enumerate(r["top"], 1):
                table.add_row(str(i), t["class"], f"{t['probability']:.3f}")
            console.print(table)
            if "warning" in r:
                console.print(f"[yellow]warning:[/yellow] {r['source']}: {r['warning']}", soft_wrap=True)
        if results:
            console.print(f"probability: {results[0]['scores']} over all classes; the "
                          "model's confidence, not calibrated (an overfit model is sure of wrong answers too)",
                          highlight=False, soft_wrap=True)
        if json_out:
            atomic_write_text(json_out, json.dumps(results, indent=1) + "\n")
            console.print(f"wrote {json_out}")
    if failed:  # 2: nothing could be predicted (bad input); 1: some clips were skipped
        console.print(f"{len(failed)} clip(s) skipped, {len(results)} predicted")
        raise typer.Exit(2 if not results else 1)


def runs_command(
    runs: list[Path] = typer.Argument(..., help="run folders, or folders searched for them (e.g. an ablation grid)"),
    sort: str = typer.Option(None, help="sort rows by run|method|dataset|stream|epochs|top1|top5|samples|seeds"),
    csv_out: bool = typer.Option(False, "--csv", help="print CSV instead of a table"),
    markdown: bool = typer.Option(False, "--markdown", help="print a Markdown table"),
) -> None:
    """Compare runs side by side: top-1/top-5 (mean ± std over seeds), speed, config differences."""
    from recognizer.analysis.runs import compare_runs, to_csv, to_markdown

    with clean_errors():
        if csv_out and markdown:
            raise ValueError("give --csv or --markdown, not both")
        rows = compare_runs([str(r) for r in runs], sort)
        if csv_out or markdown:
            typer.echo(to_csv(rows) if csv_out else to_markdown(rows), nl=False)
            return
        n = sum(r["runs"] for r in rows)
        print_runs(f"{n} runs in {len(rows)} rows (differences: from the first row)", rows)


def print_runs(title: str, rows: list[dict]) -> None:
    """The comparison table; narrower than its natural width (80 columns, a pipe), the run folders lose their
    common prefix, shared columns move into the title and the differences go under the table."""
    from recognizer.analysis.narrow import fits, folder_prefix, print_table, table_of
    from recognizer.analysis.runs import COLUMNS, NUMERIC_COLUMNS, display_row

    numeric = set(NUMERIC_COLUMNS)  # the last column is "differences"
    cells = [display_row(r) for r in rows]
    table = table_of(title, list(COLUMNS), cells, numeric)
    if fits(console, table):
        console.print(table)
        return
    prefix = folder_prefix([c[0] for c in cells])
    short = [[c[0][len(prefix):] or c[0], *c[1:-1]] for c in cells]  # without "differences"
    print_table(console, title + (f"; runs in {prefix}" if prefix else ""), list(COLUMNS[:-1]), short, numeric,
                keep={"run"})
    for c, full in zip(short, cells, strict=True):
        if full[-1]:
            console.print(f"{c[0]} differs in: {full[-1]}", highlight=False)


def reproduce_command(
    dataset: str = typer.Option(..., help="nw-ucla | ntu60-xsub | ntu60-xview | ntu120-xsub | ntu120-xset | ..."),
    out: Path = typer.Option(None, help="output folder (default results/reproduce-DATASET)"),
    config: Path = typer.Option(None, help="YAML config applied over the dataset preset"),
    set_: list[str] = typer.Option([], "--set", help="override any config key for every run"),
    data_root: str = typer.Option(None, help="dataset location (file or folder) for every run"),
    streams: str = typer.Option("joint,bone,joint_motion,bone_motion", help="streams to train"),
    methods: str = typer.Option("gap,pcke,pcle", help="methods to train"),
    seed: int = typer.Option(0, help="run.seed of every run"),
    epochs: int = typer.Option(None, help="override optim.epochs (a smoke test; the paper schedule by default)"),
    progress: bool = typer.Option(False, help="show progress bars"),
) -> None:
    """The paper protocol: every stream x method, the ensembles, and a Table-3-style Markdown table."""
    from recognizer.analysis.reproduce import reproduce

    with clean_errors():
        target = out or Path("results") / f"reproduce-{dataset}"
        _, overrides = with_root(dataset, config, list(set_), data_root)
        reproduce(dataset, target, str(config) if config else None, overrides, streams, methods, seed, epochs,
                  progress, log=lambda m: console.print(m, highlight=False))
        console.print((target / "table.md").read_text(), highlight=False)


def curves_command(
    runs: list[Path] = typer.Argument(..., help="run folders (each with log.jsonl)"),
    out: Path = typer.Option(..., help="PNG to write (the numbers go to OUT.json)"),
    labels: str = typer.Option(None, help="comma-separated legend labels, one per run (default: the "
                                          "shortest path tails that tell the runs apart)"),
    diagnostics: Path = typer.Option(None, help="also a PNG of the per-epoch diagnostics: contrastive loss after "
                                                "interaction against chance, class text cosine, after scale"),
) -> None:
    """Test/validation top-1 per epoch and per training minute, one line per run."""
    from recognizer.analysis.curves import plot_curves, plot_diagnostics

    with clean_errors():
        refuse_output(out, "--out")
        refuse_output(Path(out).with_suffix(".json"), "--out (its numbers file)")
        names = [x.strip() for x in labels.split(",")] if labels else None
        if names is not None and len(names) != len(runs):
            raise ValueError(f"--labels: {len(names)} labels for {len(runs)} runs")
        data = plot_curves([str(r) for r in runs], out, names)
        if diagnostics is not None:
            plot_diagnostics([str(r) for r in runs], diagnostics, names)
            console.print(f"wrote {diagnostics}")
        for name, c in data.items():
            best = max(c["test_top1"], default=float("nan"))
            console.print(f"{name}: {len(c['epoch'])} evaluated epochs, last top-1 {c['test_top1'][-1]:.2f}, "
                          f"best {best:.2f}, {c['minutes'][-1]:.1f} training minutes", highlight=False)
        console.print(f"wrote {out}")
