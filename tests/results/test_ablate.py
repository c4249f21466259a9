"""`pcle ablate`: the grid as data, one folder per (row, seed), resumable, Markdown + CSV tables."""

import csv

from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.ablate import GRID, to_markdown
from tests.conftest import tiny_overrides


def test_grid_covers_the_paper_rows():
    names = [n for n, _, _ in GRID]
    assert names == ["gap", "pcke", "pcle", "pcle-no-bridger", "pcle-no-interaction", "pcle-no-ranking",
                     "pcle-ctx4", "pcle-ctx8", "pcle-ctx16"]
    rows = {n: (m, o) for n, m, o in GRID}
    assert rows["pcle-no-bridger"] == ("pcle", ["model.bridger=false"])
    assert rows["pcle-ctx8"] == ("pcle", ["prompt.n_ctx=8"])


def test_tiny_grid_runs_resumes_and_tabulates(tiny_cache):
    out = tiny_cache / "grid"
    over = tiny_overrides(tiny_cache, "tiny-clip") + ["data.options={train_per_class: 2, test_per_class: 1, seed: 0}"]
    sets = [a for item in over for a in ("--set", item)]
    args = ["ablate", "--dataset", "synthetic", "--epochs", "1", *sets, "--only", "gap,pcle-no-ranking",
            "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    for name in ("gap", "pcle-no-ranking"):
        assert (out / name / "seed0" / "metrics.json").is_file()
    md = (out / "ablation.md").read_text()
    body = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert [line.split("|")[1].strip() for line in body] == ["gap", "pcle-no-ranking"]
    rows = list(csv.DictReader((out / "ablation.csv").read_text().splitlines()))
    assert [(r["name"], r["seed"], r["epochs"]) for r in rows] == [("gap", "0", "1"), ("pcle-no-ranking", "0", "1")]
    assert all(0 <= float(r["top1"]) <= float(r["top5"]) <= 100 for r in rows)
    # a second call finds both runs finished and only rewrites the tables
    mtime = (out / "gap" / "seed0" / "checkpoint.pt").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("done already") == 2
    assert (out / "gap" / "seed0" / "checkpoint.pt").stat().st_mtime_ns == mtime
    # another config is never taken for a finished run: refused before anything trains, naming the key
    other = [a if a != "1" else "2" for a in args]  # --epochs 2
    res = CliRunner().invoke(app, other)
    assert res.exit_code == 2 and "another config" in res.output and "optim.epochs: 1 -> 2" in res.output
    res = CliRunner().invoke(app, args[:-4] + ["--set", "optim.lr=0.05", "--only", "gap", "--out", str(out)])
    assert res.exit_code == 2 and "optim.lr: 0.1 -> 0.05" in res.output
    assert (out / "gap" / "seed0" / "checkpoint.pt").stat().st_mtime_ns == mtime
    # --only reuses one row, yet the tables still cover every run in the grid folder
    res = CliRunner().invoke(app, args[:-4] + ["--only", "gap", "--out", str(out)])
    assert res.exit_code == 0, res.output
    body = [line for line in (out / "ablation.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert [line.split("|")[1].strip() for line in body] == ["gap", "pcle-no-ranking"]
    rows = list(csv.DictReader((out / "ablation.csv").read_text().splitlines()))
    assert len(rows) == 2 and all(len(r["config_hash"]) == 16 for r in rows)


def test_several_seeds_give_mean_and_std():
    recs = [{"name": n, "method": "x", "seed": s, "top1": t, "top5": 90.0, "mean_class_accuracy": t, "epochs": 2}
            for n, vals in (("gap", (50.0, 60.0)), ("pcle", (70.0, 70.0))) for s, t in zip((0, 1), vals)]
    md = to_markdown(recs, "synthetic", [0, 1])
    assert "| gap | " in md and "55.00 ± 7.07" in md
    assert "70.00 ± 0.00" in md and "+15.00" in md


def test_bad_row_and_seeds_are_clean_errors(tmp_path):
    res = CliRunner().invoke(app, ["ablate", "--dataset", "synthetic", "--only", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown ablation row" in res.output
    res = CliRunner().invoke(app, ["ablate", "--dataset", "synthetic", "--seeds", "a", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--seeds" in res.output
