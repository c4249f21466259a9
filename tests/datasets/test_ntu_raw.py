"""The `.skeleton` parser against real files, and the denoising rules on generated ones."""

from __future__ import annotations

import numpy as np
import pytest
from ds_paths import NTU_SAMPLES, need

from recognizer.datasets.base import to_stream
from recognizer.datasets.ntu_generate import make_bodies, render
from recognizer.datasets.ntu_raw import (
    SkeletonFileError,
    denoise,
    load_sequence,
    parse_skeleton_text,
    read_skeleton,
    to_sequence,
)
from recognizer.method.graph import NTU25

REAL = ["S001C001P001R001A001", "S001C001P001R001A011", "S001C003P008R002A058", "S002C001P003R001A003",
        "S003C001P015R001A034", "S004C002P003R001A017"]


@pytest.mark.parametrize("name", REAL)
def test_real_file_values_match_the_text(name):
    path = need(NTU_SAMPLES) / f"{name}.skeleton"
    lines = path.read_text().splitlines()
    raw = read_skeleton(path)
    assert raw.num_frames == int(lines[0])
    first = next(iter(raw.bodies.values()))
    assert first.body_id == lines[2].split()[0]
    assert int(lines[3]) == 25
    np.testing.assert_allclose(first.values[0], np.array([ln.split() for ln in lines[4:29]], dtype=float))
    # the last joint line of the file is the last joint of the last body in the last frame
    last_body = list(raw.bodies.values())[-1]
    np.testing.assert_allclose(last_body.values[-1, -1], np.array(lines[-1].split(), dtype=float))
    seq = load_sequence(path)  # (3, L, 25, 2)
    assert seq.shape == (3, raw.num_valid, 25, 2) and seq.dtype == np.float32
    np.testing.assert_allclose(seq[:, 0, 1, 0], 0, atol=1e-6)  # centred on spine mid of frame 0
    actor = denoise(raw.bodies)[0]  # the most moving body is actor 1
    assert actor.frames[0] == 0
    np.testing.assert_allclose(seq[:, 0, 0, 0], actor.xyz[0, 0] - actor.xyz[0, 1], atol=1e-5)


def test_two_person_real_file_keeps_both_actors():
    seq = load_sequence(need(NTU_SAMPLES) / "S001C003P008R002A058.skeleton")
    assert np.abs(seq[..., 0]).sum() > 0 and np.abs(seq[..., 1]).sum() > 0
    single = load_sequence(NTU_SAMPLES / "S001C001P001R001A001.skeleton")
    assert np.abs(single[..., 1]).sum() == 0


def test_denoising_drops_noise_bodies_and_keeps_the_actors():
    for i in range(30):
        name = f"S001C001P001R001A{58 if i % 2 else 1:03d}"
        n, bodies = make_bodies(name, seed=i)
        raw = parse_skeleton_text(render(n, bodies, seed=i))
        kept = denoise(raw.bodies)
        actors = {str(b.body_id) for b in bodies if b.actor}
        assert {b.body_id for b in kept[: len(actors)]} == actors, i
        seq = to_sequence(raw)
        assert seq.shape[1] == raw.num_valid  # empty frames dropped, no frame lost
        assert (np.abs(seq[..., 1]).sum() > 0) == (len(actors) == 2)


def test_frames_without_bodies_are_dropped():
    n, bodies = make_bodies("S001C001P001R001A001", seed=3, noise=False)
    raw = parse_skeleton_text(render(n, bodies, seed=3, gaps=2))
    assert raw.dropped and raw.num_valid == n - len(raw.dropped)


def test_bone_stream_of_a_known_skeleton():
    x = np.zeros((3, 2, 25, 1), dtype=np.float32)
    x[1, :, 3] = 2.0  # head 2 m above everything else
    x[0, 1] = 1.0  # frame 1 shifted by 1 m in x
    bone = to_stream(x, NTU25, "bone")
    assert bone[1, 0, 3, 0] == 2.0  # head minus neck (joint 2)
    assert np.count_nonzero(bone[1]) == 2  # only the head bone (in both frames)
    motion = to_stream(x, NTU25, "joint_motion")
    np.testing.assert_allclose(motion[0, 0], 1.0)
    np.testing.assert_allclose(motion[:, 1], 0.0)
    assert np.abs(to_stream(x, NTU25, "bone_motion")).sum() == 0


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("3\n1\n", "truncated"),
    ("2\n0\n0\n", "no body"),
    ("abc\n", "not a number"),
    ("2.5\n", "frame count"),
    ("1\n1\n7 0 1 1 1 1 0 0 0 2\n24\n", "24 joints"),
    ("1\n9\n", "body count"),
    ("1\n1\n7 0 1 1 1 1 0 0 0 2\n25\n" + "nan 0 3 0 0 0 0 0 0 0 0 2\n" * 25, "NaN"),
    ("1\n1\n7 0 1 1 1 1 0 0 0 2\n25\n" + "0.1 0.2 3 0 0 0 0 0 0 0 0 2\n" * 25 + "5\n", "after the last"),
])
def test_malformed_text_gives_clean_errors(text, message):
    with pytest.raises(SkeletonFileError, match=message) as e:
        to_sequence(parse_skeleton_text(text, "f.skeleton"), "f.skeleton")
    assert "f.skeleton" in str(e.value)


def test_single_frame_clip_is_rejected():
    text = "1\n1\n7 0 1 1 1 1 0 0 0 2\n25\n" + "0.1 0.2 3 0 0 0 0 0 0 0 0 2\n" * 25
    with pytest.raises(SkeletonFileError, match="at least 2"):
        to_sequence(parse_skeleton_text(text, "f"), "f")
