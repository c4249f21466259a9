"""Where the tests find real data (../shared/data beside the repo) and names they rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
NTU_SAMPLES = SHARED / "ntu-samples"
UCLA = SHARED / "nw-ucla" / "all_sqe"
MISSING_NAME = "S001C002P005R002A008"  # first name on the public NTU60 missing-skeleton list
BAD_NAME = "S001C001P004R001A001"  # written truncated by the `raw_tree` fixture


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (real data lives in ../shared/data beside the repo)")
    return path
