"""The native format: round trip, custom layouts, NW-UCLA conversion, info/check, bad folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ds_paths import UCLA, need
from typer.testing import CliRunner

from recognizer.datasets import DatasetError, build_dataset
from recognizer.datasets.base import Split
from recognizer.datasets.cli import app
from recognizer.datasets.importers import import_ucla
from recognizer.datasets.native import META, NativeFormatError, load_native, make_meta, write_native
from recognizer.method.graph import COCO17, NTU25, layout_from_edges


def coco_split(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    data = np.zeros((n, 2, 40, 17, 1), dtype=np.float32)  # (N, C=2, T, V, M): 2D keypoints
    lengths = rng.integers(2, 41, n)
    for i, t in enumerate(lengths):
        data[i, :, :t] = rng.normal(size=(2, t, 17, 1))
    return Split(data, rng.integers(0, 3, n), lengths, [f"clip{i}" for i in range(n)])


@pytest.fixture
def coco_dir(tmp_path):
    custom = layout_from_edges("my-coco", [(c, p) for c, p in COCO17.inward], COCO17.parts, center=0)
    meta = make_meta("toy", ["wave", "jump", "sit"], custom, [])
    return write_native(tmp_path / "toy", meta, {"train": coco_split(12, 0), "test": coco_split(6, 1)})


def test_round_trip_with_an_edge_list_layout(coco_dir):
    meta = json.loads((coco_dir / META).read_text())
    assert meta["layout"]["edges"] and meta["splits"] == ["train", "test"]
    b = build_dataset("native", str(coco_dir))
    assert b.class_names == ["wave", "jump", "sit"] and b.layout.parents == COCO17.parents
    assert isinstance(b.train.data, np.memmap) and b.train.data.shape == (12, 2, 40, 17, 1)
    assert b.train.names[0] == "clip0" and b.corpus is None


def test_layout_from_edges_rejects_non_trees():
    with pytest.raises(ValueError, match="tree"):
        layout_from_edges("x", [(0, 1), (1, 2), (2, 0)], COCO17.parts, num_joints=3)
    with pytest.raises(ValueError, match="not connected"):
        layout_from_edges("x", [(0, 1), (1, 2), (2, 0)], {}, num_joints=4)
    ntu = layout_from_edges("n", [(c, p) for c, p in NTU25.inward], NTU25.parts, 1, 20)
    assert ntu.parents == NTU25.parents


@pytest.mark.parametrize("breaks, message", [
    (lambda d: (d / META).write_text("{not json"), "not readable JSON"),
    (lambda d: (d / "train_data.npy").write_bytes((d / "train_data.npy").read_bytes()[:500]), "truncated"),
    (lambda d: np.save(d / "train_label.npy", np.array([0] * 11 + [7])), "label 7"),
    (lambda d: np.save(d / "test_length.npy", np.zeros(6, dtype=int)), "length 0"),
    (lambda d: np.save(d / "train_data.npy", np.full((12, 2, 40, 17, 1), np.nan, np.float32)), "NaN"),
    (lambda d: np.save(d / "train_data.npy", np.zeros((12, 2, 40, 25, 1), np.float32)), "25 joints"),
    (lambda d: (d / "test_label.npy").unlink(), "not found"),
])
def test_broken_folders_give_clean_errors(coco_dir, breaks, message):
    breaks(coco_dir)
    with pytest.raises(NativeFormatError, match=message):
        load_native(coco_dir)
    res = CliRunner().invoke(app, ["check", str(coco_dir)])
    assert res.exit_code == 1 and "error" in res.output


def test_unknown_class_names_against_the_corpus(coco_dir):
    meta = json.loads((coco_dir / META).read_text())
    from corpus import CURATED
    meta["corpus"] = str(CURATED["nw-ucla"])
    (coco_dir / META).write_text(json.dumps(meta))
    res = CliRunner().invoke(app, ["check", str(coco_dir)])
    assert res.exit_code == 1 and "wave" in res.output


def test_ucla_conversion_and_info(tmp_path):
    out = import_ucla(need(UCLA), tmp_path / "ucla", limit=60)
    b = build_dataset("native", str(out))
    ref = build_dataset("nw-ucla", str(UCLA))
    name = b.train.names[0]
    j = ref.train.names.index(name)
    t = b.train.lengths[0]
    assert t == ref.train.lengths[j]
    np.testing.assert_allclose(b.train.data[0, :, :t], ref.train.data[j, :, :t], atol=1e-6)
    assert b.corpus.endswith("nw-ucla.jsonl") and b.layout.name == "ucla20"
    runner = CliRunner()
    res = runner.invoke(app, ["info", str(out)])
    assert res.exit_code == 0 and "ucla20" in res.output
    assert runner.invoke(app, ["check", str(out)]).exit_code == 0


def test_unknown_dataset_and_missing_root():
    with pytest.raises(DatasetError, match="unknown dataset"):
        build_dataset("ntu61-xsub")
    with pytest.raises(DatasetError, match="data-root"):
        build_dataset("native")
