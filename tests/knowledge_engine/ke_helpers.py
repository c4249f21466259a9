"""Helpers: run the CLI against the test server with short timeouts; read JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from knowledge_engine.cli import app
from knowledge_engine.testing.fake_server import FakeLLMServer

ROOT = Path(__file__).resolve().parents[2]
NW_UCLA = ROOT / "prompts" / "classes" / "nw-ucla.txt"
SECRET = "sk-test-DO-NOT-LEAK-4f1c9e"
# Short backoffs and timeouts keep the suite fast; they do not change any reply.
FAST = ["--backoff-base", "0.01", "--backoff-max", "0.5", "--timeout", "2", "--no-progress"]


def generate(server: FakeLLMServer, paths: dict[str, Path], *extra: str, classes: Path = NW_UCLA):
    """Run `generate` through the CLI against the test server; return the click Result."""
    args = ["generate", "--classes", str(classes), "--base-url", server.url, "--model", "fake-model",
            "--api-key", SECRET, "--out", str(paths["out"]), "--cache", str(paths["cache"]), *FAST, *extra]
    return CliRunner().invoke(app, args)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_classes(path: Path, names: list[str]) -> Path:
    path.write_text("\n".join(names) + "\n")
    return path
