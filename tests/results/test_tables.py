"""`pcle tables`: README/docs result tables are regenerated from results/ and may not drift from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.tables import TableError, drifted, regenerate

REPO = Path(__file__).resolve().parents[2]


def test_committed_tables_match_their_run_folders():
    """Every table between markers in README.md and docs/ is what the committed run folders give."""
    assert drifted(REPO) == []


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The Markdown files and the spec copied, results/ linked (the run folders are only read)."""
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.png"))
    (tmp_path / "results").symlink_to(REPO / "results")
    return tmp_path


def test_a_number_edited_by_hand_fails_the_check_naming_the_table(repo_copy: Path):
    readme = repo_copy / "README.md"
    text = readme.read_text(encoding="utf-8")
    assert text.count("| 86.28 ± 1.02 |") == 1  # GAP's row of the first table
    readme.write_text(text.replace("| 86.28 ± 1.02 |", "| 86.38 ± 1.02 |"), encoding="utf-8")
    assert drifted(repo_copy) == ["README.md: table 'readme-results' differs from what its run folders give "
                                  "(run `make tables`)"]

    res = CliRunner().invoke(app, ["tables", "--check", "--root", str(repo_copy)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == ["README.md: table 'readme-results' differs from what its run "
                                               "folders give (run `make tables`)"]
    assert readme.read_text(encoding="utf-8").count("86.38") == 1  # --check changes nothing

    res = CliRunner().invoke(app, ["tables", "--root", str(repo_copy)])
    assert res.exit_code == 0, res.output
    assert readme.read_text(encoding="utf-8") == text  # regenerated: the run folders' number is back
    assert CliRunner().invoke(app, ["tables", "--check", "--root", str(repo_copy)]).exit_code == 0


def test_a_number_edited_in_docs_results_is_caught_too(repo_copy: Path):
    page = repo_copy / "docs" / "results.md"
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("| pcle-no-ranking | 82.76 |", "| pcle-no-ranking | 82.67 |"), encoding="utf-8")
    assert drifted(repo_copy) == ["docs/results.md: table 'cpu-part-removal' differs from what its run folders "
                                  "give (run `make tables`)"]


def fake_run(folder: Path, seed: int, top1: float, top5: float = 99.0) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"top1": top1, "top5": top5, "method": "pcle",
                                                     "inference": {"rule": "fusion", "weight": 0.25,
                                                                   "chosen_on": "validation",
                                                                   "val_top1": top1 + 1.0}}))
    (folder / "config.yaml").write_text(yaml.safe_dump({"run": {"seed": seed}, "optim": {"lr": 0.1}}))


def small_repo(tmp_path: Path, rows: list[dict], columns: list[dict]) -> Path:
    for seed, top1 in enumerate([80.0, 82.0, 84.0]):
        fake_run(tmp_path / "results" / "gap" / f"seed{seed}", seed, top1)
    for seed, top1 in enumerate([83.0, 82.0]):  # seeds 0, 1 only: pairs are over the seeds both have
        fake_run(tmp_path / "results" / "new" / f"seed{seed}", seed, top1)
    spec = {"groups": {"gap": "results/gap/seed*"},
            "tables": [{"name": "t", "file": "page.md", "columns": columns, "rows": rows}]}
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "tables.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    (tmp_path / "page.md").write_text("Intro.\n\n<!-- table:t -->\nold\n<!-- /table:t -->\n\nAfter.\n")
    return tmp_path


COLUMNS = [{"header": "method", "cell": "{label}"},
           {"header": "top-1", "cell": "{top1}", "align": "right", "bold": "max"},
           {"header": "− GAP per seed", "cell": "{paired.top1.seeds}", "align": "right"},
           {"header": "− GAP", "cell": "{paired.top1}", "align": "right"}]


def test_rows_paired_difference_and_published_rows(tmp_path: Path):
    rows = [{"label": "paper", "top1": "95.0", "cite": "Someone et al., 2025"},
            {"label": "GAP", "runs": "gap"},
            {"label": "new", "runs": "results/new/seed*", "paired": "gap"},  # a new row is one line
            {"label": "other", "cells": {"top-1": "see {label}"}}]  # its own template for one column only
    root = small_repo(tmp_path, rows, COLUMNS)
    _, page = regenerate(root)["page.md"]
    table = page.split("<!-- table:t -->\n\n")[1].split("\n<!-- /table:t -->")[0]
    assert table.splitlines() == [
        "| method | top-1 | − GAP per seed | − GAP |",
        "|---|---:|---:|---:|",
        "| paper | 95.0 | – | – |",  # published: as typed, never bold, no paired number
        "| GAP | 82.00 ± 2.00 | – | – |",
        "| new | **82.50 ± 0.71** | +3.00, 0.00 | +1.50 |",  # 83-80, 82-82; mean over seeds 0, 1
        "| other | see other | – | – |"]
    assert page.startswith("Intro.\n\n") and page.endswith("\n\nAfter.\n")


def test_validation_top1_from_the_inference_record_and_paired(tmp_path: Path):
    """A screen decides on validation: {val_top1} reads metrics.json's inference record, pairs like top1."""
    columns = [{"header": "method", "cell": "{label}"}, {"header": "val", "cell": "{val_top1@1}"},
               {"header": "− GAP", "cell": "{paired.val_top1.seeds}"}]
    root = small_repo(tmp_path, [{"label": "new", "runs": "results/new/seed*", "paired": "gap"}], columns)
    table = regenerate(root)["page.md"][1].split("<!-- table:t -->\n\n")[1].split("\n<!-- /table:t -->")[0]
    assert table.splitlines()[2] == "| new | 83.00 | +3.00, 0.00 |"


def test_ensemble_difference_of_the_same_seeds(tmp_path: Path):
    """A 4-stream comparison is like for like: {ens.A.delta.B} is A's top-1 minus B's, refused across seeds."""
    columns = [{"header": "method", "cell": "{label}"}, {"header": "− GAP", "cell": "{ens.new4.delta.gap4}"}]
    root = small_repo(tmp_path, [{"label": "new, 4-stream", "cells": {}}], columns)
    records = {"new4": (91.5, "results/new/seed0"), "gap4": (92.75, "results/gap/seed0"),
               "gap4-seed1": (80.0, "results/gap/seed1")}
    for name, (top1, run) in records.items():
        (root / "results" / f"{name}.json").write_text(json.dumps({"top1": top1, "top5": 99.0,
                                                                   "runs": [{"run": run, "weight": 1.0}]}))
    spec = yaml.safe_load((root / "docs" / "tables.yaml").read_text(encoding="utf-8"))
    spec["ensembles"] = {name: f"results/{name}.json" for name in records}
    (root / "docs" / "tables.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    table = regenerate(root)["page.md"][1].split("<!-- table:t -->\n\n")[1].split("\n<!-- /table:t -->")[0]
    assert table.splitlines()[2] == "| new, 4-stream | \u22121.25 |"
    spec["tables"][0]["columns"][1]["cell"] = "{ens.new4.delta.gap4-seed1}"
    (root / "docs" / "tables.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    with pytest.raises(TableError, match="new4 is of seeds 0, gap4-seed1 of seeds 1; a difference needs the same"):
        regenerate(root)


def test_a_hand_typed_number_in_a_run_row_is_refused(tmp_path: Path):
    root = small_repo(tmp_path, [{"label": "GAP", "runs": "gap", "top1": "90.0"}], COLUMNS)
    with pytest.raises(TableError, match="row 1: 'top1' is computed from the run folders.*'cite'"):
        regenerate(root)


def test_bad_input_is_one_line(tmp_path: Path):
    root = small_repo(tmp_path, [{"label": "x", "runs": "results/none/seed*"}], COLUMNS)
    res = CliRunner().invoke(app, ["tables", "--check", "--root", str(root)])
    assert res.exit_code == 2
    assert "no run folder (with metrics.json) matches 'results/none/seed*'" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1

    root = small_repo(tmp_path / "b", [{"label": "GAP", "runs": "gap"}], COLUMNS)
    (root / "page.md").write_text("no markers here\n")
    with pytest.raises(TableError, match=r"page.md: no region <!-- table:t -->"):
        regenerate(root)
    (root / "page.md").write_text("<!-- table:t -->\n<!-- /table:t -->\n<!-- table:gone -->\n<!-- /table:gone -->\n")
    with pytest.raises(TableError, match="table 'gone' has markers but no entry in the spec"):
        regenerate(root)
