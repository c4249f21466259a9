"""`pcle evaluate|predict|tsne` on an unfinished run (stopped with --stop-after): its last checkpoint, the class
text computed from the checkpoint's text side (what that epoch's evaluation used), and a note that says so."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.evaluate import load_trained
from recognizer.checkpoint import load_checkpoint
from tests.conftest import tiny_overrides


def flat(res) -> str:
    return " ".join(res.output.split())


@pytest.mark.parametrize("method,encoder", [("pcle", "tiny-clip"), ("pcke", "tiny-bert")])  # learned, corpus
def test_unfinished_run_evaluates_from_its_last_checkpoint(tmp_path, method, encoder):
    run = tmp_path / "run"
    args = ["train", "--dataset", "synthetic", "--method", method, "--out", str(run), "--no-progress",
            "--stop-after", "1"]
    for item in tiny_overrides(tmp_path, encoder) + ["data.val_fraction=0.2"]:
        args += ["--set", item]
    runner = CliRunner()
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "stopped after epoch 1" in flat(res), res.output
    assert not (run / "metrics.json").exists()
    trained = load_trained(run)
    assert trained.unfinished and "epoch 1 of 2" in trained.unfinished
    # best.pt holds the class text training computed at epoch 1: the one computed now is the same
    best = load_checkpoint(run / "best.pt")["model"]["class_text"]
    torch.testing.assert_close(trained.model.class_text, best, rtol=1e-5, atol=1e-6)

    res = runner.invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 0, res.output
    assert "unfinished run (epoch 1 of 2)" in flat(res)
    ev = json.loads((run / "eval.json").read_text())
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert ev["unfinished"] == {"epochs_done": 1, "epochs": 2}
    assert ev["top1"] == pytest.approx(log[0]["test_top1"])  # the epoch's own test number
    assert "unfinished" in (run / "report" / "report.md").read_text()

    clip = tmp_path / "clip.npy"
    cfg = trained.cfg
    from recognizer.datasets import build_dataset

    test = build_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options).test
    np.save(clip, np.asarray(test.data[0, :, : int(test.lengths[0])]))
    res = runner.invoke(app, ["predict", str(run), str(clip)])
    assert res.exit_code == 0 and "unfinished run" in flat(res) and "probability" in flat(res), res.output
    if method == "pcle":  # one t-SNE is enough: the same loading path
        res = runner.invoke(app, ["tsne", str(run), "--classes", "0,1,2", "--out", str(tmp_path / "t.png")])
        assert res.exit_code == 0 and "unfinished run" in flat(res), res.output
        assert "unfinished" in json.loads((tmp_path / "t.json").read_text())["runs"][0]
