"""Shared fixtures: the real data folder beside the repo and generated raw NTU trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from ds_paths import BAD_NAME, MISSING_NAME

from recognizer.datasets.ntu_generate import covering_names, generate_tree


@pytest.fixture(scope="session")
def raw_tree(tmp_path_factory) -> Path:
    """NTU120 covering names (NTU60 ones included) + a missing-list name + one truncated file."""
    root = tmp_path_factory.mktemp("raw")
    generate_tree(root / "nturgb+d_skeletons", covering_names("ntu120") + [MISSING_NAME], frames=(30, 60))
    text = (root / "nturgb+d_skeletons" / "S001C001P001R001A001.skeleton").read_text()
    (root / "nturgb+d_skeletons" / f"{BAD_NAME}.skeleton").write_text(text[: len(text) // 2])
    return root


@pytest.fixture(scope="session")
def prepared60(raw_tree, tmp_path_factory) -> Path:
    from recognizer.datasets.ntu import prepare_ntu

    out = tmp_path_factory.mktemp("prepared60")
    prepare_ntu(raw_tree, out, "ntu60", workers=2, progress=False)
    return out
