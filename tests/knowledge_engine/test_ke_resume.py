"""Kill a generation subprocess mid-run, rerun, and get the corpus of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ke_helpers import FAST, NW_UCLA, ROOT, generate, read_jsonl


def _completed(cache) -> list[dict]:
    return read_jsonl(cache) if cache.exists() else []


def test_kill_and_resume_gives_the_same_corpus(server, paths, tmp_path):
    server.latency = 0.1
    ref = {"out": tmp_path / "ref.jsonl", "cache": tmp_path / "ref-cache.jsonl", "tmp": tmp_path}
    assert generate(server, ref, "--concurrency", "2").exit_code == 0
    server.reset()

    args = [sys.executable, "-c", "from knowledge_engine.cli import app; app()", "generate",
            "--classes", str(NW_UCLA), "--base-url", server.url, "--model", "fake-model",
            "--out", str(paths["out"]), "--cache", str(paths["cache"]), "--concurrency", "2", *FAST]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(_completed(paths["cache"])) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {(r["request"]["class"], r["request"]["template"]["name"]) for r in _completed(paths["cache"])}
    assert 6 <= len(done) < 20, "the run should have been killed mid-way"
    assert not paths["out"].exists()

    server.reset()
    assert generate(server, paths, "--concurrency", "2").exit_code == 0
    resent = {(s.class_name, s.template) for s in server.seen}
    assert not resent & done  # nothing completed before the kill is asked again
    assert len(resent) == 20 - len(done)
    assert paths["out"].read_text() == ref["out"].read_text()


def test_torn_last_cache_line_is_reported_and_ignored(server, paths):
    assert generate(server, paths).exit_code == 0
    lines = paths["cache"].read_text().splitlines(keepends=True)
    paths["cache"].write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # a torn write
    server.reset()
    res = generate(server, paths)
    assert res.exit_code == 0
    assert "truncated last line ignored" in res.output
    assert len(server.seen) == 1  # only the torn request is sent again
    rows = read_jsonl_lenient(paths["cache"])
    assert len(rows) == 20


def read_jsonl_lenient(path) -> list[dict]:
    import json

    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def test_sigterm_is_handled_like_ctrl_c_and_the_rerun_resumes(server, paths, tmp_path):
    """A cluster's preemption or `timeout` sends SIGTERM: the real `pcle prompts generate` says what it kept,
    exits 143 and the next run sends only what is missing (it used to die silently, exit -15)."""
    server.latency = 0.3  # 20 requests, 2 at a time: 3 s, time to signal mid-run
    ref = {"out": tmp_path / "ref.jsonl", "cache": tmp_path / "ref-cache.jsonl", "tmp": tmp_path}
    assert generate(server, ref, "--concurrency", "2").exit_code == 0
    server.reset()

    args = [sys.executable, "-m", "pipeline", "prompts", "generate", "--classes", str(NW_UCLA), "--base-url",
            server.url, "--model", "fake-model", "--out", str(paths["out"]), "--cache", str(paths["cache"]),
            "--concurrency", "2", *FAST]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300  # the start imports torch: minutes on a loaded machine
    while len(_completed(paths["cache"])) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None and len(_completed(paths["cache"])) >= 6, "the run never got under way"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "interrupted: completed requests are cached; rerun to continue" in stderr
    assert "Traceback" not in stderr
    done = {(r["request"]["class"], r["request"]["template"]["name"]) for r in _completed(paths["cache"])
            if r.get("status") in ("ok", "invalid")}
    assert 6 <= len(done) < 20, "the run should have been stopped mid-way"
    assert not paths["out"].exists()

    server.reset()
    assert generate(server, paths, "--concurrency", "2").exit_code == 0  # the lock was released
    resent = {(s.class_name, s.template) for s in server.seen}
    assert not resent & done
    assert paths["out"].read_text() == ref["out"].read_text()
