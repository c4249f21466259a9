"""Ensembles of saved run scores."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from recognizer.analysis.ensemble import (
    EnsembleError,
    check_aligned,
    combine,
    ensemble_cli,
    load_run,
    search_weights,
    topk,
)

STREAMS = ("joint", "bone", "joint_motion", "bone_motion")


def make_run(root, stream, scores, labels, names=None, val=None):
    root.mkdir(parents=True)
    np.save(root / "scores_test.npy", scores.astype(np.float32))
    np.save(root / "labels_test.npy", labels.astype(np.int64))
    (root / "samples_test.txt").write_text("\n".join(names or [f"s{i}" for i in range(len(labels))]) + "\n")
    (root / "config.yaml").write_text(f"data:\n  clip:\n    stream: {stream}\n")
    if val is not None:
        np.save(root / "scores_val.npy", val[0].astype(np.float32))
        np.save(root / "labels_val.npy", val[1].astype(np.int64))
        (root / "samples_val.txt").write_text("\n".join(f"v{i}" for i in range(len(val[1]))) + "\n")
    return root


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    vlabels = rng.integers(0, 5, 100)
    out = []
    for k, s in enumerate(STREAMS):
        def noisy(lab, k=k):
            return np.eye(5)[lab] * (2.0 if k == 0 else 0.3) + rng.normal(0, 1, (len(lab), 5))
        out.append(make_run(tmp_path / s, s, noisy(labels), labels, val=(noisy(vlabels), vlabels)))
    return out


def test_combination_is_a_weighted_softmax_sum(runs):
    loaded = [load_run(r) for r in runs]
    assert [r.stream for r in loaded] == list(STREAMS)
    fused = combine(loaded, [0.6, 0.6, 0.4, 0.4])
    np.testing.assert_allclose(fused.sum(1), 2.0, rtol=1e-6)
    assert topk(fused, loaded[0].labels, 5) == 100.0
    assert topk(np.eye(3)[[0, 1, 2]], np.array([0, 1, 1]), 1) == pytest.approx(200 / 3)


def test_search_uses_validation_and_favours_the_good_stream(runs):
    w = search_weights([load_run(r, "val") for r in runs])
    assert w[0] == max(w) and w[0] > 0


def test_misaligned_runs_are_refused(runs, tmp_path):
    other = make_run(tmp_path / "x", "joint", np.zeros((200, 5)), load_run(runs[0]).labels,
                     names=[f"t{i}" for i in range(200)])
    with pytest.raises(EnsembleError, match="samples differ"):
        check_aligned([load_run(runs[0]), load_run(other)])


def test_cli(runs, tmp_path):
    app = typer.Typer()
    app.command("ensemble")(ensemble_cli)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    res = runner.invoke(app, ["ensemble", *map(str, runs)])
    assert res.exit_code == 0 and "ensemble" in res.output and "bone_motion" in res.output
    assert runner.invoke(app, ["ensemble", *map(str, runs), "--weights", "1,0,0,0"]).exit_code == 0
    assert runner.invoke(app, ["ensemble", *map(str, runs), "--weights", "1,0"]).exit_code == 2
    out = tmp_path / "ens" / "ensemble.json"
    assert runner.invoke(app, ["ensemble", *map(str, runs), "--search-val", "--out", str(out)]).exit_code == 0
    record = __import__("json").loads(out.read_text())
    w = search_weights([load_run(r, "val") for r in runs])
    fused = combine([load_run(r) for r in runs], w)
    assert record["weights_from"] == "validation" and [r["weight"] for r in record["runs"]] == w
    assert record["top1"] == pytest.approx(topk(fused, load_run(runs[0]).labels, 1))
    plain = make_run(tmp_path / "plain", "joint", np.zeros((200, 5)), load_run(runs[0]).labels)
    res = runner.invoke(app, ["ensemble", str(runs[0]), str(plain), "--search-val"])
    assert res.exit_code == 2 and "scores_val.npy" in res.output
