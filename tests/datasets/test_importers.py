"""CTR-GCN npz and PYSKL pickle importers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from recognizer.datasets import DatasetError, build_dataset
from recognizer.datasets.cli import app
from recognizer.datasets.importers import ctrgcn_to_split, import_npz, import_pyskl, read_ctrgcn_npz


def toy_npz(path, n=4, bad=None):
    x = np.zeros((n, 300, 150), dtype=np.float32)
    for i in range(n):
        x[i, : 10 + i] = np.random.default_rng(i).normal(size=(10 + i, 150))
    if bad == "nan":
        x[1, 3, 7] = np.nan
    y = np.eye(60)[np.arange(n) % 60]
    np.savez(path, x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    return x


def test_npz_layout_and_lengths(tmp_path):
    x = toy_npz(tmp_path / "a.npz")
    s = read_ctrgcn_npz(tmp_path / "a.npz", 60)["train"]
    assert s.data.shape == (4, 3, 300, 25, 2) and list(s.lengths) == [10, 11, 12, 13]
    # body 2, joint 4, channel y of frame 5 sits at 75 + 4 * 3 + 1 in CTR-GCN's flat layout
    assert s.data[2, 1, 5, 4, 1] == x[2, 5, 75 + 13]
    out = import_npz(tmp_path / "a.npz", tmp_path / "native", "ntu60")
    b = build_dataset("native", str(out))
    np.testing.assert_array_equal(b.train.data, s.data)
    assert b.corpus.endswith("ntu120.jsonl")


@pytest.mark.parametrize("bad, message", [("nan", "NaN"), ("keys", "missing"), ("trunc", "corrupt"),
                                          ("zero", "length 0"), ("hot", "one-hot")])
def test_npz_problems(tmp_path, bad, message):
    p = tmp_path / "a.npz"
    toy_npz(p, bad=bad)
    if bad == "keys":
        np.savez(p, x_train=np.zeros((1, 300, 150)))
    if bad == "trunc":
        p.write_bytes(p.read_bytes()[:300])
    if bad == "zero":
        np.savez(p, x_train=np.zeros((1, 300, 150)), y_train=np.eye(60)[:1],
                 x_test=np.zeros((0, 300, 150)), y_test=np.zeros((0, 60)))
    if bad == "hot":
        np.savez(p, x_train=np.ones((1, 300, 150)), y_train=np.full((1, 60), 0.5),
                 x_test=np.ones((1, 300, 150)), y_test=np.eye(60)[:1])
    with pytest.raises(DatasetError, match=message):
        read_ctrgcn_npz(p)


def test_ctrgcn_wrong_width():
    with pytest.raises(DatasetError, match="150"):
        ctrgcn_to_split(np.zeros((2, 300, 75)), np.eye(60)[:2], "w")


def pyskl_file(path, label=1):
    rng = np.random.default_rng(0)
    anns = [{"frame_dir": f"v{i}", "label": label if i == 0 else i % 3, "total_frames": 20 + i,
             "keypoint": rng.normal(size=(1, 20 + i, 17, 2)).astype(np.float32),
             "keypoint_score": rng.uniform(size=(1, 20 + i, 17)).astype(np.float32), "img_shape": (480, 640)}
            for i in range(5)]
    with open(path, "wb") as f:
        split = {"xsub_train": ["v0", "v1", "v2"], "xsub_val": ["v3", "v4"]}
        pickle.dump({"split": split, "annotations": anns}, f)


def test_pyskl_needs_explicit_trust(tmp_path):
    pyskl_file(tmp_path / "a.pkl")
    with pytest.raises(DatasetError, match="trust-pickle"):
        import_pyskl(tmp_path / "a.pkl", tmp_path / "out", "nw-ucla")
    res = CliRunner().invoke(app, ["import-pyskl", str(tmp_path / "a.pkl"), "--out", str(tmp_path / "o"),
                                   "--classes", "nw-ucla"])
    assert res.exit_code == 2 and "trust-pickle" in res.output


def test_pyskl_coco_2d_with_scores(tmp_path):
    pyskl_file(tmp_path / "a.pkl")
    out = import_pyskl(tmp_path / "a.pkl", tmp_path / "out", "nw-ucla", trust_pickle=True)
    b = build_dataset("native", str(out))
    assert b.layout.name == "coco17" and b.train.data.shape == (3, 3, 300, 17, 2)
    assert list(b.train.lengths) == [20, 21, 22] and list(b.test.names) == ["v3", "v4"]
    assert b.train.data[0, 2, :20, :, 0].min() >= 0  # the score channel


def test_pyskl_label_out_of_range_and_garbage(tmp_path):
    pyskl_file(tmp_path / "a.pkl", label=99)
    with pytest.raises(DatasetError, match="label 99"):
        import_pyskl(tmp_path / "a.pkl", tmp_path / "out", "nw-ucla", trust_pickle=True)
    (tmp_path / "b.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DatasetError, match="not a readable pickle"):
        import_pyskl(tmp_path / "b.pkl", tmp_path / "out", "nw-ucla", trust_pickle=True)


def test_import_ucla_limit_spreads_over_the_classes_and_the_corpus_path_travels(tmp_path):
    """`--limit 200` of docs/datasets.md gave 2 of 10 classes (the first names in order), and meta.json named
    the curated corpus by this clone's absolute path, so a moved folder lost it."""
    import json
    import shutil
    from pathlib import Path

    from ds_paths import UCLA, need

    from corpus import CURATED
    from recognizer.datasets.native import resolve_corpus

    need(UCLA)
    out = tmp_path / "ucla-small"
    res = CliRunner().invoke(app, ["import-ucla", str(UCLA), "--out", str(out), "--limit", "20"])
    assert res.exit_code == 0, res.output
    labels = np.concatenate([np.load(out / f"{s}_label.npy") for s in ("train", "test")])
    assert np.bincount(labels, minlength=10).tolist() == [2] * 10
    meta = json.loads((out / "meta.json").read_text())
    assert meta["corpus"] == "prompts/nw-ucla.jsonl"
    (tmp_path / "elsewhere").mkdir()
    moved = Path(shutil.move(out, tmp_path / "elsewhere" / "ucla"))
    assert resolve_corpus(meta, moved) == str(CURATED["nw-ucla"])
    old = {**meta, "corpus": "/some/other/clone/prompts/nw-ucla.jsonl"}  # what import-ucla used to write
    assert resolve_corpus(old, moved) == str(CURATED["nw-ucla"])
    own = moved / "mine.jsonl"  # a corpus of the folder's own still wins
    own.write_text(CURATED["nw-ucla"].read_text())
    assert resolve_corpus({**meta, "corpus": "mine.jsonl"}, moved) == str(own)
    bad = CliRunner().invoke(app, ["import-ucla", str(UCLA), "--out", str(tmp_path / "x"), "--limit", "0"])
    assert bad.exit_code != 0 and "--limit: must be at least 1" in bad.output
