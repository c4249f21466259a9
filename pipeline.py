"""`pcle`: the command line of both stages (typer).

    pcle train --dataset nw-ucla --method pcle      # stage 2: train a recognizer
    pcle evaluate runs/nw-ucla-pcle                 # top-1/top-5, per-class accuracy, scores, report/
    pcle tsne runs/nw-ucla-gap runs/nw-ucla-pcle    # t-SNE figure (paper Fig. 2) with silhouette scores
    pcle ablate --dataset nw-ucla --out runs/ablate # the ablation grid, Markdown + CSV table
    pcle predict runs/nw-ucla-pcle clip.json        # top-k classes for new clips
    pcle runs runs/                                 # compare run folders side by side
    pcle tables --check                             # README/docs tables against results/
    pcle zeroshot runs/nw-ucla-pcle-u2              # unseen classes: ZSL, GZSL, base-to-new
    pcle prompts generate --dataset nw-ucla         # stage 1: LLM-written prompt corpora
    pcle data info PATH                             # datasets
"""

from __future__ import annotations

import os

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from knowledge_engine.cli import app as prompts_app  # noqa: E402
from recognizer.analysis.ensemble import ensemble_cli  # noqa: E402
from recognizer.analysis.tables import tables_command  # noqa: E402
from recognizer.cli import (  # noqa: E402
    ablate_command,
    curves_command,
    evaluate_command,
    predict_command,
    reproduce_command,
    runs_command,
    train_command,
    tsne_command,
)
from recognizer.datasets.cli import app as data_app  # noqa: E402
from recognizer.zeroshot.cli import zeroshot_command, zeroshot_grid_command  # noqa: E402

app = typer.Typer(help="PCKE / PCLE: language-guided skeleton action recognition.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)
app.command("ensemble")(ensemble_cli)
app.command("tsne")(tsne_command)
app.command("ablate")(ablate_command)
app.command("predict")(predict_command)
app.command("runs")(runs_command)
app.command("reproduce")(reproduce_command)
app.command("curves")(curves_command)
app.command("tables")(tables_command)
app.command("zeroshot")(zeroshot_command)
app.command("zeroshot-grid")(zeroshot_grid_command)
app.add_typer(prompts_app, name="prompts")
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"pcle {version('pcle')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("pcle (not installed: version unknown)")
        raise typer.Exit()


@app.callback()
def _options(show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                               help="print the version and exit")) -> None:
    """PCKE / PCLE: language-guided skeleton action recognition."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
