"""`pcle predict CHECKPOINT FILE...`: top-k classes for new clips from the checkpoint alone."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pipeline import app
from recognizer.analysis.evaluate import load_trained
from recognizer.analysis.predict import ClipError, predict_files
from recognizer.datasets import SkeletonDataset, build_dataset
from recognizer.datasets.native import make_meta, write_native
from recognizer.datasets.ntu_generate import GenBody, render
from recognizer.method.graph import NTU25


@pytest.fixture(scope="module")
def right_clip(tiny_run):
    """A training clip that the test-split pipeline classifies correctly, with its probability."""
    trained = load_trained(tiny_run)
    cfg = trained.cfg
    bundle = build_dataset(cfg.data.dataset, cfg.data.root, **cfg.data.options)
    ds = SkeletonDataset(bundle.train, bundle.layout, cfg.data.clip, train=False)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        prob = torch.softmax(trained.model.scores(trained.model(x)), 1).numpy()
    right = np.flatnonzero(prob.argmax(1) == bundle.train.labels)
    assert len(right), "the tiny model got no training clip right"
    i = int(right[np.argmax(prob[right].max(1))])  # the most confident correct one
    length = int(bundle.train.lengths[i])
    return {"data": np.asarray(bundle.train.data[i, :, :length]), "label": bundle.class_names[bundle.train.labels[i]],
            "prob": float(prob[i].max()), "bundle": bundle, "index": i}


def test_npy_clip_gets_its_training_class(tiny_run, right_clip, tmp_path):
    np.save(tmp_path / "clip.npy", right_clip["data"])
    [rec] = predict_files(tiny_run / "checkpoint.pt", [tmp_path / "clip.npy"], top_k=3)
    assert rec["top"][0]["class"] == right_clip["label"]
    assert rec["top"][0]["probability"] == pytest.approx(right_clip["prob"], abs=1e-5)
    assert len(rec["top"]) == 3 and rec["top"][0]["probability"] >= rec["top"][1]["probability"]
    # zero-padded frames at the end are padding, not motion
    padded = np.concatenate([right_clip["data"], np.zeros((3, 40, 25, 1), np.float32)], axis=1)
    np.save(tmp_path / "padded.npy", padded)
    [rec2] = predict_files(tiny_run, [tmp_path / "padded.npy"], top_k=3)
    assert rec2["top"] == rec["top"]


def test_ntu_skeleton_file(tiny_run, right_clip, tmp_path):
    xyz = right_clip["data"][..., 0].transpose(1, 2, 0) + np.array([0.1, 0.2, 3.0], np.float32)  # camera space
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(render(len(xyz), [GenBody(1, 0, xyz, True)], seed=0, gaps=0), newline="")
    [rec] = predict_files(tiny_run, [path], top_k=5)  # two-person NTU layout, second person empty
    assert rec["top"][0]["class"] == right_clip["label"]
    assert rec["top"][0]["probability"] == pytest.approx(right_clip["prob"], abs=1e-3)


def test_native_folder_and_cli_json(tiny_run, right_clip, tmp_path):
    bundle = right_clip["bundle"]
    folder = write_native(tmp_path / "native", make_meta("mine", bundle.class_names, NTU25, ["test"]),
                          {"test": bundle.test})
    out = tmp_path / "pred.json"
    res = CliRunner().invoke(app, ["predict", str(tiny_run), str(folder), "--top-k", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    recs = json.loads(out.read_text())
    assert len(recs) == len(bundle.test) == 30
    assert all(len(r["top"]) == 2 and "true" in r for r in recs)
    assert recs[0]["source"].endswith(bundle.test.names[0])
    scores = np.load(tiny_run / "scores_test.npy")
    assert [r["top"][0]["id"] for r in recs] == scores.argmax(1).tolist()  # same as evaluation


def test_wrong_layout_is_refused_naming_the_file(tiny_run, tmp_path):
    ucla = tmp_path / "a01_s01_e00_v03.json"
    ucla.write_text(json.dumps({"file_name": ucla.stem, "skeletons": np.ones((10, 20, 3)).tolist(), "label": 1}))
    res = CliRunner().invoke(app, ["predict", str(tiny_run), str(ucla)])
    assert res.exit_code == 2
    assert "a01_s01_e00_v03.json" in res.output and "20 joints" in res.output and "25 joints" in res.output
    two = np.ones((3, 10, 25, 2), np.float32)
    np.save(tmp_path / "two.npy", two)
    with pytest.raises(ClipError, match=r"two\.npy: the clip has 2 non-empty persons"):
        predict_files(tiny_run, [tmp_path / "two.npy"])
    np.save(tmp_path / "xy.npy", np.ones((2, 10, 25), np.float32))
    with pytest.raises(ClipError, match=r"xy\.npy: the clip has 2 channels"):
        predict_files(tiny_run, [tmp_path / "xy.npy"])
    (tmp_path / "clip.txt").write_text("x")
    with pytest.raises(ClipError, match="unknown clip type"):
        predict_files(tiny_run, [tmp_path / "clip.txt"])
