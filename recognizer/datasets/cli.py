"""`pcle data ...`: prepare, inspect and check skeleton datasets."""

import typer

app = typer.Typer(help="Prepare, inspect and check skeleton datasets.", no_args_is_help=True)
