"""Tables that stay readable in an 80-column terminal or a pipe (rich folds every cell of a table that is
too wide into a column of '…'): the columns every row shares move into the title, and a table that still
does not fit is printed transposed (one column per row)."""

from __future__ import annotations

import os

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def fits(console: Console, table: Table) -> bool:
    """The table at its natural width (no cell folded) fits the console."""
    unbounded = console.options.update_width(100_000)  # measured against the console's width, it would fit always
    return Measurement.get(console, unbounded, table).maximum <= console.width


def folder_prefix(names: list[str]) -> str:
    """The folder path every name starts with ('' when none), to show once instead of in every row."""
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    return prefix[: prefix.rfind("/") + 1]


def table_of(title: str, columns: list[str], rows: list[list[str]], right: set[str]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    for row in rows:
        table.add_row(*row)
    return table


def without_shared(title: str, columns: list[str], rows: list[list[str]],
                   keep: set[str]) -> tuple[str, list[str], list[list[str]]]:
    """Drop the columns whose value every row shares (named once in the title instead)."""
    shared = [i for i, c in enumerate(columns) if c not in keep and len(rows) > 1 and len({r[i] for r in rows}) == 1]
    note = ", ".join(f"{columns[i]} {rows[0][i]}" for i in shared if rows[0][i])
    cols = [c for i, c in enumerate(columns) if i not in shared]
    cells = [[v for i, v in enumerate(r) if i not in shared] for r in rows]
    return title + (f"; every row: {note}" if note else ""), cols, cells


def transposed(title: str, columns: list[str], rows: list[list[str]], first: int = 0) -> Table:
    """One column per row (headed by its `first` cell), one line per original column."""
    table = Table(title=title)
    table.add_column("")
    for r in rows:
        table.add_column(r[first], justify="right")
    for i, col in enumerate(columns):
        if i != first:
            table.add_row(col, *(r[i] for r in rows))
    return table


def print_records(console: Console, title: str, columns: list[str], rows: list[list[str]], first: int = 0) -> None:
    """One line per row, `column value` pairs (wrapped at spaces): readable at any width, easy to grep."""
    console.print(title, highlight=False, markup=False)
    for r in rows:
        cells = [(c, " ".join(v.replace(" ± ", "±").split())) for c, v in zip(columns, r, strict=True)]
        pairs = "  ".join(f"{c} {v}" for i, (c, v) in enumerate(cells) if i != first and v)
        console.print(f"{r[first]}:  {pairs}", highlight=False, markup=False)


def print_table(console: Console, title: str, columns: list[str], rows: list[list[str]], right: set[str],
                keep: set[str] = frozenset(), first: int = 0) -> None:
    """The full table when it fits the console; else without the shared columns; else transposed; else one
    line per row."""
    table = table_of(title, columns, rows, right)
    if fits(console, table):
        console.print(table)
        return
    title, columns, rows = without_shared(title, columns, rows, keep)
    for table in (table_of(title, columns, rows, right), transposed(title, columns, rows, first)):
        if fits(console, table):
            console.print(table)
            return
    print_records(console, title, columns, rows, first)
