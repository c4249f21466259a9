import json

import numpy as np
import pytest
import torch

from recognizer.datasets import DatasetError, SkeletonDataset, build_dataset
from recognizer.datasets.base import ClipConfig
from recognizer.datasets.nw_ucla import read_clip


def test_synthetic_is_deterministic_and_centred():
    a = build_dataset("synthetic", train_per_class=3, test_per_class=2, seed=1)
    b = build_dataset("synthetic", train_per_class=3, test_per_class=2, seed=1)
    np.testing.assert_array_equal(a.train.data, b.train.data)
    assert a.train.data.shape == (30, 3, 100, 25, 1) and len(a.test) == 20
    assert sorted(set(a.train.labels.tolist())) == list(range(10))
    first = a.train.data[:, :, 0, a.layout.center, 0]  # spine mid of frame 0 is the origin
    np.testing.assert_allclose(first, 0, atol=1e-6)
    c = build_dataset("synthetic", train_per_class=3, test_per_class=2, seed=2)
    assert not np.allclose(a.train.data, c.train.data)


def test_clips_depend_only_on_seed_epoch_and_index():
    bundle = build_dataset("synthetic", train_per_class=2, test_per_class=1)
    ds = SkeletonDataset(bundle.train, bundle.layout, ClipConfig(window=20), train=True, seed=3)
    ds.set_epoch(4)
    x1 = ds[5][0]
    ds.set_epoch(0)
    _ = ds[5]
    ds.set_epoch(4)
    assert (ds[5][0] == x1).all() and x1.shape == (3, 20, 25, 1)
    ds.set_epoch(5)
    assert not (ds[5][0] == x1).all()


def test_repeat_copies_get_their_own_augmentation():
    """Pass r of an epoch reads sample i under key r * N + i: same clip, different draw (issue: 110 vs 550 views)."""
    from recognizer.train import EpochSampler

    bundle = build_dataset("synthetic", train_per_class=2, test_per_class=1)
    n = len(bundle.train)
    sampler = EpochSampler(n, seed=0, repeat=3)
    keys = list(sampler)
    assert sorted(k % n for k in keys) == sorted(list(range(n)) * 3) and len(set(keys)) == 3 * n
    for mode in ("crop", "sample"):
        ds = SkeletonDataset(bundle.train, bundle.layout, ClipConfig(window=20, mode=mode), train=True, seed=0)
        a, b = ds[4], ds[4 + n]
        assert a[1] == b[1] and a[2] == b[2] == 4
        assert not torch.equal(a[0], b[0])
        assert torch.equal(ds[4 + n][0], b[0])  # still a pure function of (seed, epoch, key)


def test_nw_ucla_standard_split(ucla_root):
    bundle = build_dataset("nw-ucla", str(ucla_root))
    assert len(bundle.train) == 1020 and len(bundle.test) == 464
    assert bundle.train.data.shape[1:] == (3, 201, 20, 1) or bundle.train.data.shape[3:] == (20, 1)
    assert set(bundle.test.labels.tolist()) == set(range(10))
    assert all(name.endswith("_v03") for name in bundle.test.names)
    assert bundle.train.lengths.min() == 1  # the two single-frame clips are kept


def test_nw_ucla_bad_files_are_named(tmp_path):
    bad = tmp_path / "a01_s01_e00_v01.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="a01_s01_e00_v01.json: not readable JSON"):
        read_clip(bad)
    bad.write_text(json.dumps({"file_name": "x", "skeletons": [[[0, 0, 0]] * 19], "label": 1}))
    with pytest.raises(DatasetError, match=r"shape \(1, 19, 3\)"):
        read_clip(bad)
    bad.write_text(json.dumps({"file_name": "x", "skeletons": [[[0, 0, 0]] * 20], "label": 11}))
    with pytest.raises(DatasetError, match="label 11 outside"):
        read_clip(bad)
    bad.write_text(json.dumps({"file_name": "x", "skeletons": [[[float("nan"), 0, 0]] * 20], "label": 1}))
    with pytest.raises(DatasetError, match="NaN"):
        read_clip(bad)
    with pytest.raises(DatasetError, match="folder not found"):
        build_dataset("nw-ucla", str(tmp_path / "missing"))
