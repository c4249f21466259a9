import numpy as np
import pytest

from recognizer.datasets.base import crop_resize, rotation_matrix, to_stream
from recognizer.method.graph import LAYOUTS, NTU25, UCLA20, get_layout


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_layouts_are_trees_with_valid_parts(layout):
    layout.validate()
    roots = [j for j, p in enumerate(layout.parents) if j == p]
    assert len(roots) == 1
    assert len(layout.inward) == layout.num_joints - 1
    a = layout.adjacency()
    assert a.shape == (3, layout.num_joints, layout.num_joints)
    np.testing.assert_allclose(a[0], np.eye(layout.num_joints))
    # inward/outward are column-normalised: each non-empty column sums to one
    for sub in a[1:]:
        cols = sub.sum(0)
        np.testing.assert_allclose(cols[cols > 0], 1.0, rtol=1e-6)


def test_known_parents():
    assert NTU25.parents[3] == 2  # head -> neck
    assert NTU25.parents[11] == 10  # right hand -> right wrist
    assert NTU25.parents[20] == 20  # spine shoulder is the root
    assert UCLA20.parents[3] == 2  # head -> shoulder centre
    with pytest.raises(ValueError, match="unknown skeleton layout"):
        get_layout("nope")


def test_bone_and_motion_streams_of_a_known_skeleton():
    x = np.zeros((3, 2, 20, 1), dtype=np.float32)  # (C, T, V, M)
    x[:, 0, 3, 0] = [0, 2, 0]  # head
    x[:, 0, 2, 0] = [0, 1.5, 0]  # shoulder centre
    x[:, 1] = x[:, 0] + 0.1
    bone = to_stream(x, UCLA20, "bone")
    np.testing.assert_allclose(bone[:, 0, 3, 0], [0, 0.5, 0], atol=1e-6)
    np.testing.assert_allclose(bone[:, 0, 2, 0], 0)  # the root's bone is zero
    motion = to_stream(x, UCLA20, "joint_motion")
    np.testing.assert_allclose(motion[:, 0], 0.1, atol=1e-6)
    np.testing.assert_allclose(motion[:, 1], 0)
    np.testing.assert_allclose(to_stream(x, UCLA20, "bone_motion")[:, 0], 0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown stream"):
        to_stream(x, UCLA20, "velocity")


def test_crop_resize_and_rotation():
    x = np.zeros((3, 10, 4, 1), dtype=np.float32)
    x[0, :6] = np.arange(6)[:, None, None]  # 6 valid frames
    out = crop_resize(x, 6, 11, 1.0, 0.0)
    assert out.shape == (3, 11, 4, 1)
    np.testing.assert_allclose(out[0, :, 0, 0], np.linspace(0, 5, 11), atol=1e-5)
    single = crop_resize(x, 1, 5, 0.5, 0.5)  # a one-frame clip is repeated
    np.testing.assert_allclose(single[0, :, 0, 0], 0)
    r = rotation_matrix(np.array([0.3, -0.2, 0.1]))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
