"""`pcle evaluate RUN` writes a report: accuracies, per-class table, confused pairs, confusion PNG."""

import json

import matplotlib.image as mpimg
import numpy as np
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.report import confused_pairs, confusion_matrix, figure_size, plot_confusion, summarize


def test_evaluate_writes_the_report(tiny_run):
    res = CliRunner().invoke(app, ["evaluate", str(tiny_run)])
    assert res.exit_code == 0, res.output
    assert "most confused class pairs" in res.output
    # what evaluate already wrote stays
    assert (tiny_run / "eval.json").is_file() and (tiny_run / "scores_test.npy").is_file()
    report = tiny_run / "report"
    summary = json.loads((report / "report.json").read_text())
    eval_json = json.loads((tiny_run / "eval.json").read_text())
    assert summary["top1"] == eval_json["top1"] and summary["top5"] == eval_json["top5"]
    assert abs(summary["mean_class_accuracy"] - eval_json["mean_class_accuracy"]) < 1e-9
    assert summary["samples"] == 30 and summary["classes"] == 10
    assert len(summary["per_class"]) == 10 and sum(r["samples"] for r in summary["per_class"]) == 30
    cm = np.array(summary["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 30
    assert abs(np.trace(cm) / 30 * 100 - summary["top1"]) < 1e-9
    md = (report / "report.md").read_text()
    rows = [line.split("|") for line in md.splitlines() if line.startswith("| ")]
    per_class_rows = [r for r in rows if r[1].strip().isdigit()]
    assert len(per_class_rows) == 10
    assert "| top-1 |" in md and "| top-5 |" in md and "| mean class accuracy |" in md
    assert "## Most confused class pairs" in md
    img = mpimg.imread(report / "confusion.png")
    side, _ = figure_size([r["name"] for r in summary["per_class"]])
    assert abs(img.shape[0] - side * 100) <= 1 and img.shape[0] == img.shape[1]


def test_confused_pairs_are_the_largest_off_diagonal_cells():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 2, 0, 0, 0])
    cm = confusion_matrix(pred, labels, 3)
    pairs = confused_pairs(cm, ["a", "b", "c"], k=5)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("c", "a", 3), ("a", "b", 2), ("b", "c", 1)]
    assert pairs[0]["percent_of_true"] == 75.0
    scores = np.eye(3)[pred] + 0.01 * np.arange(3)
    s = summarize(scores, labels, ["a", "b", "c"])
    assert s["per_class"][1]["top1"] == 50.0 and s["top5"] == 100.0


def test_confusion_png_scales_for_120_classes(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(120), 3)
    cm = confusion_matrix(np.where(rng.uniform(size=360) < 0.8, labels, rng.integers(0, 120, 360)), labels, 120)
    names = [f"a long ntu action name {i}" for i in range(120)]
    path = plot_confusion(cm, names, tmp_path / "cm120.png")
    side, font = figure_size(names)
    assert side > figure_size(names[:10])[0] + 10 and font == 4 < figure_size(names[:10])[1]
    img = mpimg.imread(path)
    assert abs(img.shape[0] - side * 100) <= 1 and img.shape[0] == img.shape[1]
