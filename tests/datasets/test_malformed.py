"""Property-based: malformed input to every parser ends in a clean DatasetError, nothing else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recognizer.datasets import DatasetError
from recognizer.datasets.base import Split
from recognizer.datasets.importers import ctrgcn_to_split
from recognizer.datasets.native import load_native, make_meta, write_native
from recognizer.datasets.ntu_generate import make_bodies, render
from recognizer.datasets.ntu_raw import parse_skeleton_text, to_sequence
from recognizer.method.graph import COCO17

N, BODIES = make_bodies("S001C001P001R001A058", seed=1, frames=(20, 24))
VALID = render(N, BODIES, seed=1)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse(text: str) -> None:
    try:
        to_sequence(parse_skeleton_text(text, "x.skeleton"), "x.skeleton")
    except DatasetError as e:
        assert "x.skeleton" in str(e)


@SETTINGS
@given(st.text(alphabet=st.sampled_from("0123456789 .-e\nnaif"), max_size=400))
def test_random_text(text):
    parse(text)


@SETTINGS
@given(st.integers(0, len(VALID)), st.integers(0, 50), st.text(max_size=20))
def test_cut_and_spliced_files(start, length, junk):
    parse(VALID[:start] + junk + VALID[start + length :])


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, len(VALID.split()) - 1),
                          st.sampled_from(["nan", "inf", "-1", "0", "26", "3.5", "x", "1e999", "7"])),
                max_size=5))
def test_token_mutations(edits):
    tokens = VALID.split()
    for i, tok in edits:
        tokens[i] = tok
    parse("\n".join(tokens))


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 300), st.integers(100, 160),
       st.sampled_from([0.0, np.nan, np.inf, 1.0]), st.integers(1, 65))
def test_ctrgcn_arrays(n, t, width, fill, classes):
    x = np.full((n, t, width), fill, dtype=np.float32)
    y = np.eye(max(classes, 1))[np.zeros(n, dtype=int) % classes] if classes < 65 else np.arange(n)
    try:
        ctrgcn_to_split(x, y, "w.npz", 60)
    except DatasetError as e:
        assert "w.npz" in str(e)


META_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c,
                                                                               max_size=3),
                           max_leaves=8)


KEYS = ["format", "version", "class_names", "layout", "splits", "corpus", "x"]


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), META_VALUES, max_size=6), st.booleans())
def test_meta_json(meta, keep_good_keys):
    with tempfile.TemporaryDirectory() as d:
        good = make_meta("t", ["a", "b"], COCO17, ["train"])
        split = Split(np.zeros((1, 2, 3, 17, 1), np.float32), np.zeros(1, int), np.ones(1, int))
        write_native(d, good, {"train": split})
        (Path(d) / "meta.json").write_text(json.dumps({**good, **meta} if keep_good_keys else meta))
        try:
            load_native(d)
        except DatasetError as e:
            assert d in str(e)


@SETTINGS
@given(st.one_of(META_VALUES, st.fixed_dictionaries({"skeletons": META_VALUES, "label": META_VALUES}),
                 st.text(max_size=30)))
def test_nw_ucla_json(record):
    from recognizer.datasets.nw_ucla import read_clip

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a01_s01_e00_v01.json"
        path.write_text(record if isinstance(record, str) else json.dumps(record))
        try:
            read_clip(path)
        except DatasetError as e:
            assert str(path) in str(e)
