"""`pcle prompts ...`: generate, inspect and hand-edit prompt corpora."""

import typer

app = typer.Typer(help="Stage 1: generate, inspect and edit prompt corpora.", no_args_is_help=True)
