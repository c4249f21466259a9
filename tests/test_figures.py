"""Figures a person reads: joint numbers that never print over each other, whole epochs on the x axis."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recognizer.analysis.curves import curve, curves_figure, read_log
from recognizer.datasets.layout_figure import layout_figure, rest_pose
from recognizer.method.graph import LAYOUTS


def _overlaps(fig) -> list[tuple[str, str]]:
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = fig.axes[0].texts
    boxes = [t.get_window_extent(r) for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
            if boxes[i].overlaps(boxes[j])]


def test_joint_labels_of_a_dense_hand_do_not_overlap():
    """As in a real NTU clip: both hands' joints (7, 11, 21-24) a few millimetres apart."""
    layout = LAYOUTS["ntu25"]
    pose = rest_pose(layout).astype(float)
    rng = np.random.default_rng(0)
    for wrist, joints in ((6, (7, 21, 22)), (10, (11, 23, 24))):
        pose[list(joints)] = pose[wrist] + rng.normal(scale=0.01, size=(3, 2)) * np.ptp(pose, axis=0).max()
    fig = layout_figure(layout, pose)
    assert sorted(int(t.get_text()) for t in fig.axes[0].texts) == list(range(25))
    assert _overlaps(fig) == []
    for name in ("ucla20", "coco17"):
        assert _overlaps(layout_figure(LAYOUTS[name])) == []


def test_curves_have_whole_epoch_ticks(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    log = [{"epoch": e, "test_top1": 10.0 * e, "epoch_seconds": 30.0} for e in (1, 2, 3)]
    (run / "log.jsonl").write_text("".join(json.dumps(h) + "\n" for h in log))
    fig = curves_figure({"run": curve(read_log(run))})
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_curves_draw_the_training_loss_of_every_epoch_scored_or_not(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    log = [{"epoch": e, "loss": 5.0 - e, "epoch_seconds": 30.0, **({"test_top1": 10.0 * e} if e % 2 == 0 else {})}
           for e in (1, 2, 3, 4)]  # scored every 2nd epoch (run.eval_every=2)
    (run / "log.jsonl").write_text("".join(json.dumps(h) + "\n" for h in log))
    c = curve(read_log(run))
    assert c["epoch"] == [2, 4] and c["loss_epoch"] == [1, 2, 3, 4] and c["loss"] == [4.0, 3.0, 2.0, 1.0]
    fig = curves_figure({"run": c})
    loss_ax = fig.axes[2]
    assert loss_ax.get_ylabel().startswith("training loss")
    assert [list(line.get_xdata()) for line in loss_ax.lines] == [[1, 2, 3, 4]]
    assert [list(line.get_ydata()) for line in loss_ax.lines] == [[4.0, 3.0, 2.0, 1.0]]


def test_runs_with_different_passes_per_epoch_are_drawn_per_pass(tmp_path):
    """The long CPU protocol scores every 2 passes (optim.repeat 2), the CPU protocol every pass: drawn per epoch,
    the long run's epoch 8 (16 passes) would sit beside the short run's epoch 8 (8 passes)."""
    from recognizer.analysis.curves import plot_curves

    runs = []
    for name, repeat, epochs in (("short", 1, 4), ("long", 2, 3)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(f"optim:\n  repeat: {repeat}\n")
        log = [{"epoch": e, "test_top1": 10.0 * e, "epoch_seconds": 30.0 * repeat} for e in range(1, epochs + 1)]
        (run / "log.jsonl").write_text("".join(json.dumps(h) + "\n" for h in log))
        runs.append(run)
    data = plot_curves(runs, tmp_path / "c.png", labels=["short", "long"])
    assert data["long"]["passes"] == [2, 4, 6] and data["short"]["passes"] == [1, 2, 3, 4]
    fig = curves_figure(data)
    assert [list(line.get_xdata()) for line in fig.axes[0].lines] == [[1, 2, 3, 4], [2, 4, 6]]
    assert fig.axes[0].get_xlabel() == "passes over the training split"
    same = curves_figure({"a": data["short"], "b": data["short"]})  # equal repeats: per epoch, as before
    assert same.axes[0].get_xlabel() == "epoch"
    (runs[1] / "config.yaml").write_text("optim:\n  repeat: two\n")
    with pytest.raises(ValueError, match="config.yaml: optim.repeat must be"):
        plot_curves(runs, tmp_path / "d.png", labels=["short", "long"])
