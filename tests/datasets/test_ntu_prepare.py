"""prepare-ntu on a generated raw tree: split counts, skipping, reports, resume, registered datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ds_paths import BAD_NAME, MISSING_NAME
from typer.testing import CliRunner

from recognizer.datasets import DatasetError, build_dataset
from recognizer.datasets.cli import app
from recognizer.datasets.ntu import SampleId, prepare_ntu

# Hand-counted from ntu_generate.covering_names (+ the truncated BAD_NAME, subject 4 / camera 1):
# ntu60: 36 clean files; X-Sub train = subjects 1, 2; X-View train = cameras 2, 3.
EXPECTED60 = {"ntu60-xsub": {"train": 24, "test": 12}, "ntu60-xview": {"train": 24, "test": 12}}
# ntu120 adds 16 files of setups 18/19, subjects 45 (train) / 48, cameras 1/2.
EXPECTED120 = {"ntu120-xsub": {"train": 32, "test": 20}, "ntu120-xset": {"train": 26, "test": 26}}


def test_split_rules():
    assert SampleId.parse("S001C001P001R001A001").split("xsub") == "train"
    assert SampleId.parse("S001C001P003R001A001").split("xsub") == "test"
    assert SampleId.parse("S020C001P103R001A001").split("xsub") == "train"
    assert SampleId.parse("S020C001P104R001A001").split("xsub") == "test"
    assert SampleId.parse("S001C002P003R001A001").split("xview") == "train"
    assert SampleId.parse("S001C001P003R001A001").split("xview") == "test"
    assert SampleId.parse("S032C001P003R001A120").split("xset") == "train"
    assert SampleId.parse("S031C001P003R001A120").split("xset") == "test"
    with pytest.raises(DatasetError):
        SampleId.parse("S01C001P003R001A120")


def test_prepare_ntu60_counts_skips_and_reports(prepared60):
    report = json.loads((prepared60 / "ntu60_report.json").read_text())
    assert report["counts"] == EXPECTED60
    assert report["missing_skeletons_skipped"] == [MISSING_NAME]
    assert list(report["bad"]) == [BAD_NAME] and "truncated" in report["bad"][BAD_NAME]
    assert BAD_NAME in (prepared60 / "ntu60_bad_samples.txt").read_text()
    assert not any(p.name.startswith(".partial") for p in prepared60.iterdir())


def test_registered_datasets_read_prepared_folders(prepared60):
    for name, counts in EXPECTED60.items():
        b = build_dataset(name, str(prepared60))
        assert (len(b.train), len(b.test)) == (counts["train"], counts["test"])
        assert isinstance(b.train.data, np.memmap) and b.train.data.shape[1:] == (3, 300, 25, 2)
        assert b.layout.name == "ntu25" and len(b.class_names) == 60 and b.corpus.endswith("ntu120.jsonl")
        for i in range(len(b.train)):
            sid = SampleId.parse(b.train.names[i])
            assert b.train.labels[i] == sid.action - 1 and sid.split(name.split("-")[1]) == "train"
            length = b.train.lengths[i]
            assert np.abs(b.train.data[i, :, :length]).sum(axis=(0, 2, 3)).min() > 0
            assert np.abs(b.train.data[i, :, length:]).sum() == 0
            assert sid.action != 58 or np.abs(b.train.data[i, ..., 1]).sum() > 0  # two actors


def test_prepare_ntu120(raw_tree, tmp_path):
    r = prepare_ntu(raw_tree, tmp_path, "ntu120", workers=1, progress=False)
    assert r.counts == EXPECTED120 and r.missing == 1 and list(r.bad) == [BAD_NAME]
    b = build_dataset("ntu120-xset", str(tmp_path / "ntu120-xset"))
    assert len(b.class_names) == 120 and max(b.train.labels.max(), b.test.labels.max()) == 119


def test_interrupted_run_resumes_and_matches_a_clean_run(raw_tree, prepared60, tmp_path):
    first = prepare_ntu(raw_tree, tmp_path, "ntu60", workers=2, progress=False, limit=10)
    assert not first.complete and first.parsed == 10
    with pytest.raises(KeyboardInterrupt):  # a crash mid-run: what was flushed stays done
        def stop(n):
            if n == 5:
                raise KeyboardInterrupt
        prepare_ntu(raw_tree, tmp_path, "ntu60", workers=1, progress=False, on_parsed=stop)
    last = prepare_ntu(raw_tree, tmp_path, "ntu60", workers=2, progress=False)
    assert last.complete and last.resumed == 15 and last.parsed == 37 - 15
    for split in ("train", "test"):
        for f in ("data", "label", "length"):
            a = np.load(tmp_path / "ntu60-xsub" / f"{split}_{f}.npy")
            np.testing.assert_array_equal(a, np.load(prepared60 / "ntu60-xsub" / f"{split}_{f}.npy"))
    again = prepare_ntu(raw_tree, tmp_path, "ntu60", progress=False)
    assert again.complete and again.parsed == 0


def test_cli_prepare_strict_exit_code(raw_tree, tmp_path):
    runner = CliRunner()
    args = ["prepare-ntu", "--raw", str(raw_tree), "--out", str(tmp_path), "--benchmark", "ntu60", "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, [*args, "--strict"]).exit_code == 1
    assert runner.invoke(app, ["info", str(tmp_path)]).exit_code == 0
    res = runner.invoke(app, ["check", str(raw_tree)])
    assert res.exit_code == 1 and BAD_NAME in res.output


def test_ctrgcn_npz_root(tmp_path, prepared60):
    b = build_dataset("ntu60-xsub", str(prepared60))
    def flat(s):  # (N, 3, T, 25, 2) -> CTR-GCN's (N, T, 150)
        return np.asarray(s.data).transpose(0, 2, 4, 3, 1).reshape(len(s), 300, 150)
    np.savez(tmp_path / "NTU60_CS.npz", x_train=flat(b.train), y_train=np.eye(60)[b.train.labels],
             x_test=flat(b.test), y_test=np.eye(60)[b.test.labels])
    n = build_dataset("ntu60-xsub", str(tmp_path / "NTU60_CS.npz"))
    np.testing.assert_array_equal(n.train.data, b.train.data)
    np.testing.assert_array_equal(n.train.lengths, b.train.lengths)
    np.testing.assert_array_equal(n.test.labels, b.test.labels)
    with pytest.raises(DatasetError, match="60"):
        build_dataset("ntu120-xsub", str(tmp_path / "NTU60_CS.npz"))
    with pytest.raises(DatasetError, match="prepare-ntu"):
        build_dataset("ntu60-xview", str(tmp_path))
