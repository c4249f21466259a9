"""Outputs of predict / evaluate / ensemble / zeroshot / curves around a run folder: nothing a run owns is
replaced, bad options are named, and the numbers printed say what they are."""

from __future__ import annotations

import json
import shutil

import numpy as np
from typer.testing import CliRunner

from pipeline import app

runner = CliRunner()


def _clip(tmp_path, run, zeros=False):
    from recognizer.checkpoint import load_checkpoint

    c, t, v, m = load_checkpoint(run / "checkpoint.pt")["input_shape"]
    x = np.zeros((c, 20, v, m), dtype=np.float32)
    if not zeros:
        x[:] = np.random.default_rng(0).normal(size=x.shape)
    path = tmp_path / ("zeros.npy" if zeros else "clip.npy")
    np.save(path, x)
    return path


def test_predict_json_never_replaces_a_run_file(tiny_run, tmp_path):
    """The issue: `predict RUN clip --json RUN/metrics.json` overwrote metrics.json (exit 0)."""
    clip = _clip(tmp_path, tiny_run)
    for name in ("metrics.json", "config.yaml", "report/report.json"):
        target = tiny_run / name
        before = target.read_bytes() if target.is_file() else None
        res = runner.invoke(app, ["predict", str(tiny_run), str(clip), "--json", str(target)])
        assert res.exit_code == 2 and "belongs to the run" in res.output and "Traceback" not in res.output, res.output
        assert (target.read_bytes() if target.is_file() else None) == before
    res = runner.invoke(app, ["predict", str(tiny_run), str(clip), "--json", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "p.json").read_text())[0]
    assert rec["scores"].startswith("softmax of") and "score" in rec["top"][0]
    assert "not calibrated" in res.output
    probs = [t["probability"] for t in rec["top"]]
    assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)


def test_predict_options_and_empty_clips(tiny_run, tmp_path):
    clip, zeros = _clip(tmp_path, tiny_run), _clip(tmp_path, tiny_run, zeros=True)
    res = runner.invoke(app, ["predict", str(tiny_run), str(clip), "--top-k", "0"])
    assert res.exit_code == 2 and "--top-k 0: must be at least 1" in res.output
    res = runner.invoke(app, ["predict", str(tiny_run), str(zeros), str(clip)])
    assert res.exit_code == 1 and "every coordinate is zero" in res.output and "1 predicted" in res.output


def test_outputs_of_other_commands_are_guarded(tiny_run, tmp_path):
    before = (tiny_run / "metrics.json").read_bytes()
    res = runner.invoke(app, ["curves", str(tiny_run), "--out", str(tiny_run / "metrics.png")])
    assert res.exit_code == 2 and "metrics.json" in res.output  # its numbers file would be RUN/metrics.json
    res = runner.invoke(app, ["zeroshot", str(tiny_run), "--out", str(tiny_run)])
    assert res.exit_code == 2 and "zeroshot.json" in res.output and "belongs to the run" in res.output
    res = runner.invoke(app, ["ensemble", str(tiny_run), str(tiny_run), "--out", str(tiny_run / "eval.json")])
    assert res.exit_code == 2 and "belongs to the run" in res.output
    assert (tiny_run / "metrics.json").read_bytes() == before


def test_ensemble_weights_name_the_option(tiny_run):
    res = runner.invoke(app, ["ensemble", str(tiny_run), str(tiny_run), "--weights", "a,b"])
    assert res.exit_code == 2 and "--weights a,b: 'a' is not a number" in res.output
    res = runner.invoke(app, ["ensemble", str(tiny_run), str(tiny_run), "--weights", "1,0.5"])
    assert res.exit_code == 0, res.output


def test_evaluate_says_an_edited_config_is_not_used(tiny_run, tmp_path):
    """The issue: editing data.root in RUN/config.yaml and running evaluate silently used the checkpoint's."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("window: 16", "window: 12"))
    res = runner.invoke(app, ["evaluate", str(run), "--no-report"])
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "differs from the config stored in checkpoint.pt in data.clip.window" in flat
    assert "the checkpoint's config is used" in flat
    (run / "config.yaml").write_text(text)
    res = runner.invoke(app, ["evaluate", str(run), "--no-report"])
    assert res.exit_code == 0 and "differs" not in res.output
