"""`pcle runs` and `pcle zeroshot` at 80 columns or piped (CliRunner: not a terminal, 80 columns): no cell
folded into '…', every number readable."""

from __future__ import annotations

from typer.testing import CliRunner

from pipeline import app
from tests.conftest import REPO

runner = CliRunner()


def test_runs_table_is_readable_at_80_columns():
    res = runner.invoke(app, ["runs", str(REPO / "results" / "nw-ucla-cpu")])
    assert res.exit_code == 0, res.output
    assert "…" not in res.output and all(len(line) <= 80 for line in res.output.splitlines())
    assert "pcle-bone/seed0:" in res.output and "top-1 83.62" in res.output and "differs in" in res.output


def test_zeroshot_table_is_readable_at_80_columns():
    runs = [str(REPO / "results" / "nw-ucla-zs" / "pcle" / f"random-2-{k}") for k in (0, 1)]
    res = runner.invoke(app, ["zeroshot", *runs])
    assert res.exit_code == 0, res.output
    assert "…" not in res.output and "ZSL top-1" in res.output and "GZSL AUSUC" in res.output
