"""Custom datasets: layout serialisation, centring, geometry warnings, corpus checks, --data-root inference,
plain-text import and layout pictures."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
from typer.testing import CliRunner

from corpus import CURATED
from pipeline import app
from recognizer.datasets import DatasetError, build_dataset
from recognizer.datasets.base import Split
from recognizer.datasets.checks import geometry_warnings
from recognizer.datasets.layout_figure import REST_POSES
from recognizer.datasets.native import META, NativeFormatError, make_meta, write_native
from recognizer.datasets.text_import import read_text_clip
from recognizer.method.graph import LAYOUTS, NTU25, UCLA20, layout_from_dict, layout_from_edges, layout_to_dict

CLASSES = ["hand waving", "jump up", "sitting down"]  # covered by the curated NTU120 corpus


def flat(res) -> str:
    """The command's output with the console's line wrapping undone."""
    return " ".join(res.output.split())


def body_split(n: int, seed: int, offset=(0.0, 0.0, 0.0), perm=None) -> Split:
    """Standing NTU bodies (rest pose, moving a little), shifted by `offset`, joints optionally permuted."""
    rng = np.random.default_rng(seed)
    pose = np.concatenate([REST_POSES["ntu25"], np.zeros((25, 1))], 1)  # (V, 3)
    data = np.zeros((n, 3, 30, 25, 1), dtype=np.float32)
    lengths = rng.integers(10, 31, n)
    for i, t in enumerate(lengths):
        sway = 0.05 * np.sin(np.linspace(0, 6, t))[:, None, None] * rng.normal(size=(1, 25, 3))
        clip = pose[None] + sway + np.asarray(offset) + rng.normal(0, 0.005, (t, 25, 3))
        clip = clip[:, perm] if perm is not None else clip
        data[i, :, :t, :, 0] = clip.transpose(2, 0, 1)
    return Split(data, rng.integers(0, 3, n), lengths, [f"c{i}" for i in range(n)])


def write(tmp_path, name="ds", corpus=True, **kw) -> object:
    meta = make_meta(name, CLASSES, NTU25, [], corpus=str(CURATED["ntu120"]) if corpus else None,
                     centre=kw.pop("centre", None))
    return write_native(tmp_path / name, meta, {"train": body_split(12, 0, **kw), "test": body_split(6, 1, **kw)})


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_dict_round_trip(name):
    layout = LAYOUTS[name]
    back = layout_from_dict(json.loads(json.dumps(layout_to_dict(layout))))
    assert back == layout


def test_centre_option_centres_at_load(tmp_path):
    folder = write(tmp_path, offset=(0.5, 0.2, 3.0), centre="first-frame")
    b = build_dataset("native", str(folder))
    assert b.centre == "first-frame"
    np.testing.assert_allclose(b.train.data[:, :, 0, NTU25.center, 0], 0, atol=1e-6)
    t = int(b.train.lengths[0])
    assert not b.train.data[0, :, t:].any()  # padding stays zero
    raw = build_dataset("native", str(folder), centre="none")  # the config's data.options.centre wins
    assert raw.centre == "none" and raw.train.data[0, 2, 0, 0, 0] > 2.5
    meta = json.loads((folder / META).read_text())
    (folder / META).write_text(json.dumps({**meta, "centre": "middle"}))
    with pytest.raises(NativeFormatError, match="centre"):
        build_dataset("native", str(folder))


def test_check_warns_about_joint_order_and_centring(tmp_path):
    good = body_split(20, 0)
    assert geometry_warnings(good.data, good.lengths, NTU25) == []
    wrong = body_split(20, 0, perm=np.random.default_rng(1).permutation(25))
    [msg] = geometry_warnings(wrong.data, wrong.lengths, NTU25)
    assert "joint order" in msg and "show-layout ntu25" in msg
    far = body_split(20, 0, offset=(0.3, 0.1, 3.0))
    [msg] = geometry_warnings(far.data, far.lengths, NTU25)
    assert "20 of 20 clips" in msg and "far from the origin" in msg
    assert geometry_warnings(far.data, far.lengths, NTU25, centre=True) == []  # "centre": "first-frame"
    folder = write(tmp_path, offset=(0.3, 0.1, 3.0))
    res = CliRunner().invoke(app, ["data", "check", str(folder)])
    assert res.exit_code == 0 and "far from the origin" in flat(res) and "0 errors, 2 warnings" in flat(res)


def test_check_prompts_names_missing_classes(tmp_path):
    folder = write(tmp_path, corpus=False)
    runner = CliRunner()
    res = runner.invoke(app, ["data", "check", str(folder)])
    assert res.exit_code == 0 and "--prompts" in flat(res)  # a warning: train will need a corpus
    res = runner.invoke(app, ["data", "check", str(folder), "--prompts", str(CURATED["nw-ucla"])])
    assert res.exit_code == 1 and "hand waving" in flat(res)
    res = runner.invoke(app, ["data", "check", str(folder), "--prompts", str(CURATED["ntu120"])])
    assert res.exit_code == 0 and "0 errors, 0 warnings" in flat(res), res.output


def test_train_data_root_without_dataset(tmp_path):
    runner = CliRunner()
    folder = write(tmp_path, corpus=False)
    res = runner.invoke(app, ["train", "--data-root", str(folder), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2  # inferred native (meta.json), then refused before building anything:
    assert "--prompts" in flat(res) and "meta.json" in flat(res)
    (tmp_path / "plain").mkdir()
    res = runner.invoke(app, ["train", "--data-root", str(tmp_path / "plain"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "no meta.json" in flat(res) and "--dataset" in flat(res)
    assert not (tmp_path / "run").exists()


def test_import_text_both_arrangements(tmp_path):
    rng = np.random.default_rng(0)
    clips = {}
    for split, n in (("train", 4), ("test", 2)):
        for i in range(n):
            cls = CLASSES[i % 2]
            x = rng.normal(size=(7 + i, 20, 4)).round(4)  # x y z confidence
            d = tmp_path / "frames" / split / cls
            d.mkdir(parents=True, exist_ok=True)
            (d / f"clip{i}.txt").write_text("# header\n" + "\n".join(" ".join(map(str, f.ravel())) for f in x))
            d = tmp_path / "joints" / split / cls
            d.mkdir(parents=True, exist_ok=True)
            (d / f"clip{i}.txt").write_text("\n\n".join("\n".join(",".join(map(str, j)) for j in f) for f in x))
            clips[(split, f"{cls}/clip{i}")] = x[..., :3]
    runner = CliRunner()
    for kind in ("frames", "joints"):
        out = tmp_path / f"out-{kind}"
        args = ["data", "import-text", str(tmp_path / kind), "--out", str(out), "--layout", "ucla20",
                "--per-line", kind[:-1], "--per-joint", "4", "--channels", "3", "--centre", "none",
                "--corpus", str(CURATED["ntu120"])]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        b = build_dataset("native", str(out))
        assert b.class_names == ["hand waving", "jump up"] and b.layout == UCLA20
        for split in ("train", "test"):
            s = getattr(b, split)
            for i, name in enumerate(s.names):
                t = int(s.lengths[i])
                np.testing.assert_allclose(s.data[i, :, :t, :, 0].transpose(1, 2, 0), clips[(split, name)], atol=1e-5)
    bad = tmp_path / "frames" / "train" / CLASSES[0] / "clip0.txt"
    bad.write_text(bad.read_text() + "\n1 2 3\n")
    with pytest.raises(DatasetError, match=r"clip0\.txt:9: 3 numbers, expected 80"):
        read_text_clip(bad, 20, "frame", per_joint=4, channels=3)
    res = runner.invoke(app, ["data", "import-text", str(tmp_path / "frames"), "--out", str(tmp_path / "x"),
                              "--layout", "ucla20", "--per-joint", "4"])
    assert res.exit_code == 2 and "clip0.txt:9" in flat(res)


def test_show_layout_pictures(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "show-layout", "ucla20", "--out", str(tmp_path / "u.png")])
    assert res.exit_code == 0 and "shoulder centre" in flat(res)
    img = mpimg.imread(tmp_path / "u.png")
    assert img.shape[:2] == (600, 500) and img[..., :3].std() > 0.05
    custom = layout_from_edges("tri", [(0, 1), (1, 2)], {g: (0,) for g in ("head", "hands_arms", "hips", "legs_feet")})
    (tmp_path / "tri.json").write_text(json.dumps({"layout": layout_to_dict(custom)}))
    res = runner.invoke(app, ["data", "show-layout", str(tmp_path / "tri.json"), "--out", str(tmp_path / "t.png")])
    assert res.exit_code == 0 and (tmp_path / "t.png").is_file()
    folder = write(tmp_path)
    res = runner.invoke(app, ["data", "show-layout", str(folder), "--out", str(tmp_path / "d.png")])
    assert res.exit_code == 0 and (tmp_path / "d.png").is_file()
    res = runner.invoke(app, ["data", "show-layout", "msr20"])
    assert res.exit_code == 2 and "msr20" in flat(res) and "ntu25" in flat(res)


def _write_clip(path, frames: np.ndarray) -> None:
    """(T, V, 3) -> one frame per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(f"{v:.4f}" for v in f.ravel()) for f in frames) + "\n")


def test_import_text_drops_zero_frames_skips_zero_clips_and_names_the_dataset(tmp_path):
    rng = np.random.default_rng(0)
    pose = REST_POSES["ucla20"]  # (V, 2): a standing body
    body = lambda t: np.concatenate([pose, np.zeros((20, 1))], 1)[None] + rng.normal(0, 0.02, (t, 20, 3))  # noqa: E731
    src = tmp_path / "src"
    for split, n in (("train", 6), ("test", 3)):
        for i in range(n):
            x = body(12)
            x[[0, 1, 2, 6]] = 0  # a body found late and lost once
            _write_clip(src / split / CLASSES[i % 3] / f"c{i}.txt", x)
    _write_clip(src / "train" / CLASSES[0] / "zero.txt", np.zeros((5, 20, 3)))
    runner = CliRunner()
    res = runner.invoke(app, ["data", "import-text", str(src), "--out", str(tmp_path / "raw"), "--layout", "ucla20",
                              "--corpus", str(CURATED["ntu120"])])
    assert res.exit_code == 0, res.output  # default: every frame kept, the zero clip written (check reports it)
    res = runner.invoke(app, ["data", "check", str(tmp_path / "raw")])
    assert res.exit_code == 1 and "1 clips are all zeros: 'hand waving/zero'" in flat(res)
    assert "29 all-zero frames inside" in flat(res) and "12 all-zero frames inside" in flat(res), res.output
    res = runner.invoke(app, ["data", "import-text", str(src), "--out", str(tmp_path / "bad"), "--layout", "ucla20",
                              "--drop-zero-frames"])
    assert res.exit_code == 2 and "zero.txt" in flat(res) and "--skip-zero-clips" in flat(res)
    out = tmp_path / "clean"
    res = runner.invoke(app, ["data", "import-text", str(src), "--out", str(out), "--layout", "ucla20",
                              "--corpus", str(CURATED["ntu120"]), "--drop-zero-frames", "--skip-zero-clips",
                              "--name", "my-kinect-set"])
    assert res.exit_code == 0, res.output
    assert "dropped 36 all-zero frames from 9 clips" in flat(res)
    assert "skipped 1 all-zero clips: train/hand waving/zero" in flat(res) and "wrote 9 clips" in flat(res)
    meta = json.loads((out / META).read_text())
    assert meta["name"] == "my-kinect-set" and meta["source"]["cleaning"]["skipped_clips"] == ["train/hand waving/zero"]
    b = build_dataset("native", str(out))
    assert b.name == "my-kinect-set" and len(b.train) == 6 and (b.train.lengths == 8).all()
    assert np.all(np.any(b.train.data[:, :, :8] != 0, axis=(1, 3, 4)))  # no empty frame inside a clip
    res = runner.invoke(app, ["data", "check", str(out)])
    assert res.exit_code == 0 and "0 errors, 0 warnings" in flat(res), res.output
    tiny = ["data.clip.window=8", "data.num_workers=0", "model.width=8", "model.heads=2", "model.bridger_queries=2",
            "text.encoder=tiny-bert", "text.tiny_dim=32", "optim.epochs=1", "optim.batch_size=8",
            "optim.warmup_epochs=1", "run.threads=1", f"prompt.cache_dir={tmp_path / 'tc'}"]
    res = runner.invoke(app, ["train", "--data-root", str(out), "--method", "gap", "--out", str(tmp_path / "run"),
                              "--no-progress"] + [x for t in tiny for x in ("--set", t)])
    assert res.exit_code == 0, res.output
    assert "on my-kinect-set" in (tmp_path / "run" / "train.log").read_text()  # not "src"
    res = runner.invoke(app, ["runs", str(tmp_path / "run"), "--csv"])
    assert res.exit_code == 0 and "my-kinect-set" in res.output, res.output


def test_centre_on_the_first_non_empty_frame(tmp_path):
    data = body_split(8, 0, offset=(0.4, 0.2, 3.0))
    data.data[:, :, :4] = 0  # 4 empty leading frames (the clips' lengths still count them)
    data.lengths[:] = np.maximum(data.lengths, 8)
    # centred on frame 4 (frame 0 is empty): no "far from the origin" warning
    assert geometry_warnings(data.data, data.lengths, NTU25, centre=True) == []
    meta = make_meta("late", CLASSES, NTU25, [], corpus=str(CURATED["ntu120"]), centre="first-frame")
    folder = write_native(tmp_path / "late", meta, {"train": data, "test": data})
    b = build_dataset("native", str(folder))
    np.testing.assert_allclose(b.train.data[:, :, 4, NTU25.center, 0], 0, atol=1e-6)
    assert not b.train.data[:, :, :4].any()  # the empty frames stay empty
    res = CliRunner().invoke(app, ["data", "check", str(folder)])
    assert "far from the origin" not in flat(res), res.output
    jumps = body_split(8, 0)
    jumps.data[:, 2, 1:] += 5.0 * np.any(jumps.data[:, :, 1:] != 0, axis=1)  # the body leaps 5 m after frame 0
    [msg] = geometry_warnings(jumps.data, jumps.lengths, NTU25, centre=True)  # centring cannot help: say so
    assert "far from the origin" in msg and "centre them" not in msg and "centred already" in msg
    [msg] = geometry_warnings(jumps.data, jumps.lengths, NTU25, centre=False)
    assert "centre them" in msg


def test_shipped_msr20_layout_file(tmp_path):
    """configs/layouts/msr20.json (docs/datasets.md's --layout example) is MSR-Action3D's skeleton: Kinect v1's 20
    joints in another order. A body stored in that order passes the joint-order check with it, not with ucla20."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    path = repo / "configs" / "layouts" / "msr20.json"
    assert f"```json\n{path.read_text()}```" in (repo / "docs" / "datasets.md").read_text()  # shown in full
    res = CliRunner().invoke(app, ["data", "show-layout", str(path)])
    assert res.exit_code == 0 and "msr20" in flat(res) and "hip centre" in flat(res), res.output
    msr = layout_from_dict(json.loads(path.read_text())["layout"])
    to_msr = [UCLA20.joint_names.index(n) for n in msr.joint_names]  # msr joint i = ucla20 joint to_msr[i]
    assert sorted(to_msr) == list(range(20))
    assert {tuple(sorted((to_msr[a], to_msr[b]))) for a, b in msr.inward} == \
        {tuple(sorted(e)) for e in UCLA20.inward}  # the same bones
    assert {k: sorted(to_msr[j] for j in v) for k, v in msr.parts.items()} == \
        {k: sorted(v) for k, v in UCLA20.parts.items()} and to_msr[msr.center] == UCLA20.center
    pose = np.concatenate([REST_POSES["ucla20"], np.zeros((20, 1))], 1)[to_msr]  # (V, 3) in MSR's order
    clips = np.repeat(pose.T[None, :, None, :, None], 4, axis=0).repeat(10, axis=2).astype(np.float32)
    clips += np.random.default_rng(0).normal(0, 0.01, clips.shape).astype(np.float32)
    lengths = np.full(4, 10)
    assert geometry_warnings(clips, lengths, msr) == []
    assert any("joint order" in m for m in geometry_warnings(clips, lengths, UCLA20))


def test_grid_commands_take_data_root(tmp_path):
    """`pcle ablate / reproduce / zeroshot-grid --data-root` as `pcle train` takes it (the dataset's error
    message says "pass --data-root", and `make nw-ucla-cpu DATA_ROOT=...` passes it): each run reads there."""
    folder = write(tmp_path, "mine")
    tiny = ["data.clip.window=8", "data.num_workers=0", "model.width=8", "model.heads=2", "model.bridger_queries=2",
            "text.encoder=tiny-bert", "text.tiny_dim=32", "optim.batch_size=8", "optim.warmup_epochs=1",
            "run.threads=1", f"prompt.cache_dir={tmp_path / 'tc'}"]
    sets = [x for t in tiny for x in ("--set", t)]
    out = tmp_path / "grid"
    res = CliRunner().invoke(app, ["ablate", "--data-root", str(folder), "--only", "gap", "--epochs", "1",
                                   "--out", str(out), *sets])
    assert res.exit_code == 0, res.output
    saved = (out / "gap" / "seed0" / "config.yaml").read_text()
    assert f"root: {folder.resolve()}" in saved and "dataset: native" in saved
    missing = tmp_path / "elsewhere" / "all_sqe"
    for args in (["reproduce", "--dataset", "nw-ucla", "--methods", "gap", "--streams", "joint", "--epochs", "1"],
                 ["zeroshot-grid", "--dataset", "nw-ucla", "--methods", "pcke", "--epochs", "1"]):
        res = CliRunner().invoke(app, [*args, "--data-root", str(missing), "--out", str(tmp_path / args[0]), *sets])
        assert res.exit_code != 0 and "No such option" not in res.output, res.output
        assert f"{missing}: NW-UCLA folder not found" in flat(res), res.output
