"""The layout travels with the checkpoint; older checkpoints (a layout name only) still load; predict's edge cases."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.evaluate import load_trained
from recognizer.analysis.predict import ClipError, predict_files
from recognizer.checkpoint import load_checkpoint
from recognizer.method.graph import NTU25, layout_from_dict


def test_checkpoint_stores_the_whole_layout(tiny_run):
    ckpt = load_checkpoint(tiny_run / "checkpoint.pt")
    assert ckpt["layout"] == "ntu25" and ckpt["centre"] == "none"
    assert layout_from_dict(ckpt["layout_spec"]) == NTU25


def test_older_checkpoint_with_a_layout_name_loads(tiny_run, tmp_path):
    ckpt = load_checkpoint(tiny_run / "checkpoint.pt")
    old = {k: v for k, v in ckpt.items() if k not in ("layout_spec", "centre")}
    torch.save(old, tmp_path / "old.pt")
    assert load_trained(tmp_path / "old.pt").layout == NTU25
    torch.save({**old, "layout": "msr20"}, tmp_path / "custom.pt")
    with pytest.raises(ValueError, match=r"custom\.pt: unknown skeleton layout 'msr20'.*older checkpoint"):
        load_trained(tmp_path / "custom.pt")


def test_empty_npy_clip_names_the_file(tiny_run, tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((3, 0, 25, 1), np.float32))
    with pytest.raises(ClipError, match=r"empty\.npy: the clip is empty"):
        predict_files(tiny_run, [tmp_path / "empty.npy"])
    res = CliRunner().invoke(app, ["predict", str(tiny_run), str(tmp_path / "empty.npy")])
    assert res.exit_code == 2 and "empty.npy" in res.output and "reshape" not in res.output


def test_uncentred_clip_gets_a_warning(tiny_run, tmp_path):
    x = np.zeros((3, 20, 25, 1), np.float32)
    x[:, :, :, 0] = np.random.default_rng(0).normal(0, 0.3, (3, 20, 25))
    np.save(tmp_path / "centred.npy", x)
    x[2] += 4.0  # 4 m in front of the camera
    np.save(tmp_path / "far.npy", x)
    near, far = predict_files(tiny_run, [tmp_path / "centred.npy", tmp_path / "far.npy"])
    assert "warning" not in near and "from the origin" in far["warning"]
    res = CliRunner().invoke(app, ["predict", str(tiny_run), str(tmp_path / "far.npy")])
    assert res.exit_code == 0 and "warning" in res.output
