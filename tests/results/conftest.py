"""One tiny PCLE run shared by the whole folder (trained once per session, in a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recognizer.config import resolve
from recognizer.train import train
from tests.conftest import tiny_overrides


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("results")
    over = tiny_overrides(tmp, "tiny-clip")  # 2 epochs: tests pick clips the model gets right
    run = tmp / "run"
    train(resolve("synthetic", "pcle", overrides=over), run, progress=False)
    return run


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    """The text-embedding cache folder for extra tiny runs (ablation)."""
    return tmp_path_factory.mktemp("ablate")
