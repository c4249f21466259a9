"""Shared fixtures: tiny configs that train in seconds, and the path of the real data beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# One intra-op thread: the test models are tiny, and OpenMP threads that spin-wait for a core held by
# another process (a second test run, a training job) slow a step down a hundredfold.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
UCLA_ROOT = SHARED_DATA / "nw-ucla" / "all_sqe"


def tiny_overrides(tmp_path: Path, encoder: str = "tiny-bert") -> list[str]:
    """A config small enough for a full train/eval cycle in a few seconds on 2 cores."""
    return [
        "data.options={train_per_class: 6, test_per_class: 3, seed: 0}",
        "data.clip.window=16",
        "model.width=8",
        "model.heads=2",
        "model.bridger_queries=2",
        f"text.encoder={encoder}",
        "text.tiny_dim=32",
        "prompt.n_ctx=4",
        f"prompt.cache_dir={tmp_path / 'text-cache'}",
        "optim.epochs=2",
        "optim.batch_size=16",
        "optim.warmup_epochs=1",
        "optim.milestones=[1]",
        "run.threads=1",
    ]


@pytest.fixture
def ucla_root() -> Path:
    if not UCLA_ROOT.is_dir():
        pytest.skip(f"NW-UCLA data not found at {UCLA_ROOT} (see ../shared/data/README.md)")
    return UCLA_ROOT
