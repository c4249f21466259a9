"""Fixtures for the knowledge-engine tests (helpers live in ke_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge_engine.testing.fake_server import FakeLLMServer


@pytest.fixture
def server():
    srv = FakeLLMServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, Path]:
    return {"out": tmp_path / "corpus.jsonl", "cache": tmp_path / "cache.jsonl", "tmp": tmp_path}
