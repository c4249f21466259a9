"""Parity with GAP's own code (MartinXM/GAP), through fixtures made by tools/gap_parity.py from a GAP checkout:
the NW-UCLA feeder (test path exactly, train path for GAP's recorded draws), the LST input matrix and the
transformed input, the part pooling of the LST models, and the training loss of a fixed batch."""

from pathlib import Path

import numpy as np
import pytest
import torch

from recognizer.config import resolve
from recognizer.datasets.base import ClipConfig, eval_clip, sampled_clip, to_stream
from recognizer.method.graph import NTU25, UCLA20
from recognizer.method.losses import LossConfig, total_loss
from recognizer.method.lst import lst_matrix
from recognizer.method.model import PromptedContrastiveModel

FIX = np.load(Path(__file__).parent / "fixtures" / "gap_parity.npz")
STREAMS = ("joint", "bone", "joint_motion", "bone_motion")
UCLA = ClipConfig(**{**resolve("nw-ucla", "gap").data.clip.__dict__})


def ours(clip: np.ndarray) -> np.ndarray:
    """(T, V, C) clip centred on joint 1 of frame 0, as our NW-UCLA loader stores it -> (C, T, V, 1)."""
    centred = clip - clip[0, UCLA20.center]
    return centred.transpose(2, 0, 1)[..., None].astype(np.float32)


def test_nw_ucla_preset_is_gaps_pipeline():
    assert (UCLA.mode, UCLA.window, UCLA.normalize, UCLA.rotation_axes) == ("sample", 52, "minmax", "xy")
    assert UCLA.scale == (0.5, 1.5) and UCLA.rotation == pytest.approx(np.radians(60), abs=1e-4)
    assert UCLA20.center == 1


@pytest.mark.parametrize("i", [0, 1, 2])
@pytest.mark.parametrize("stream", STREAMS)
def test_ucla_test_path_matches_gap_exactly(i, stream):
    clip = FIX[f"ucla_clip{i}"]
    got = to_stream(eval_clip(ours(clip), len(clip), UCLA), UCLA20, stream)
    np.testing.assert_allclose(got, FIX[f"ucla_test_{stream}_{i}"], atol=1e-5)


@pytest.mark.parametrize("i", [0, 1, 2])
@pytest.mark.parametrize("stream", STREAMS)
def test_ucla_train_path_matches_gap_for_its_draws(i, stream):
    clip = FIX[f"ucla_clip{i}"]
    ax, ay, scale = FIX[f"ucla_draws_{i}"]
    got = to_stream(sampled_clip(ours(clip), ax, ay, scale, FIX[f"ucla_idx_{i}"], UCLA), UCLA20, stream)
    np.testing.assert_allclose(got, FIX[f"ucla_train_{stream}_{i}"], atol=1e-5)


def test_ucla_train_draws_have_gaps_statistics():
    from recognizer.datasets.base import train_clip

    clip = ours(FIX["ucla_clip1"])
    rng = np.random.default_rng(0)
    outs = np.stack([train_clip(clip, clip.shape[1], UCLA, rng) for _ in range(200)])  # (200, 3, 52, 20, 1)
    flat = outs.transpose(0, 1, 2, 3, 4).reshape(200, 3, -1)
    assert np.all(flat.min(2) >= -1 - 1e-5) and np.all(flat.max(2) <= 1 + 1e-5)  # per-clip min-max
    assert outs.std(0).mean() > 0.05  # rotations and frames vary between draws


@pytest.mark.parametrize("layout,k", [(UCLA20, 1), (UCLA20, 6), (NTU25, 1), (NTU25, 8)])
def test_lst_matrix_matches_gap(layout, k):
    np.testing.assert_array_equal(lst_matrix(layout, k), FIX[f"lst_{layout.name}_k{k}"])


def test_ntu_joint_lst_is_the_identity():
    np.testing.assert_array_equal(lst_matrix(NTU25, 8), np.eye(25))


def _model(layout, k: int, m: int) -> PromptedContrastiveModel:
    cfg = resolve("synthetic", "gap").model
    return PromptedContrastiveModel(cfg, layout, 10, 16, num_person=m, lst_k=k).eval()


@pytest.mark.parametrize("layout,m", [(UCLA20, 1), (NTU25, 2)])
def test_lst_input_and_part_pooling_match_gap(layout, m):
    x = torch.from_numpy(FIX[f"model_{layout.name}_x"])
    model = _model(layout, int(FIX[f"model_{layout.name}_k"]), m)
    seen = {}
    model.skeleton.data_bn.register_forward_pre_hook(lambda mod, args: seen.setdefault("bn_in", args[0]))
    with torch.no_grad():
        model(x, class_text=torch.zeros(10, 16))
    np.testing.assert_allclose(seen["bn_in"].numpy(), FIX[f"model_{layout.name}_bn_in"], atol=1e-5)
    v = layout.num_joints
    fmap = torch.zeros(1, 256, 2, v)
    fmap[0, :v] = torch.eye(v)[:, None, :]  # channel c marks joint c, as the fixture's feature map
    pooled = model.pool_parts(fmap)[0, :, :v]  # (4, V): head, hands/arms, hips, legs/feet
    np.testing.assert_allclose(pooled.numpy(), FIX[f"part_pool_{layout.name}"], atol=1e-6)


def test_loss_of_a_fixed_batch_matches_gap():
    skel, text = torch.from_numpy(FIX["loss_skel"]), torch.from_numpy(FIX["loss_text"])
    out = {"logits": torch.from_numpy(FIX["loss_logits"]), "logit_scales": torch.from_numpy(FIX["loss_scales"]),
           "skel_global": skel[0], "text_sample": text[0], "skel_parts": skel[1:].transpose(0, 1),
           "text_parts": text[1:].transpose(0, 1)}
    cfg = LossConfig(alpha=float(FIX["loss_alpha"]), ranking=False, after=False)
    terms = total_loss(out, torch.from_numpy(FIX["loss_labels"]), cfg)
    assert float(terms["loss"]) == pytest.approx(float(FIX["loss_value"]), rel=1e-5)
