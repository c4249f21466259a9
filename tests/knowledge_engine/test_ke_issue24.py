"""Issue 24: a killed run keeps its work on one-choice servers, a dead or wrong server fails fast,
options and paths are checked up front, shipped data stays intact, every call is logged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from ke_helpers import FAST, NW_UCLA, ROOT, SECRET, generate, read_jsonl, write_classes
from typer.testing import CliRunner

from knowledge_engine.cli import app
from knowledge_engine.testing.fake_server import LLAMA_CPP_FORMATS, FakeLLMServer, Fault

runner = CliRunner()
CONCURRENCY = 2


def _cli(server_url: str, paths, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from knowledge_engine.cli import app; app()", "generate",
            "--classes", str(NW_UCLA), "--base-url", server_url, "--model", "fake-model",
            "--out", str(paths["out"]), "--cache", str(paths["cache"]), *FAST, *extra]


def test_kill_on_one_choice_server_resends_at_most_the_calls_in_flight(paths, tmp_path):
    """llama.cpp answers one choice per call: n = 2 takes two calls per request. A kill -9 mid-run
    used to lose every call (no request had finished); now each call's choice is cached at once."""
    with FakeLLMServer(latency=0.05, one_choice=True) as server:
        ref = {"out": tmp_path / "ref.jsonl", "cache": tmp_path / "ref-cache.jsonl", "tmp": tmp_path}
        assert generate(server, ref, "--concurrency", str(CONCURRENCY)).exit_code == 0
        total = len(server.seen)
        assert total == 40  # 10 classes x 2 templates x 2 calls
        server.reset()
        server.answered = 0

        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(_cli(server.url, paths, "--concurrency", str(CONCURRENCY)), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300  # a loaded machine takes long to start Python
        while server.answered < 15 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = len(server.seen)
        assert 15 <= before < total, "the run should have been killed mid-way"
        rows = {}
        for line in paths["cache"].read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn by the kill
            rows[row["key"]] = row
        finished = sum(r["status"] == "ok" for r in rows.values())
        # depth-first: requests finished one after another, not all half done
        assert finished >= (15 - 2 * CONCURRENCY) // 2

        server.reset()
        res = generate(server, paths, "--concurrency", str(CONCURRENCY))
        assert res.exit_code == 0, res.output
        resent = before + len(server.seen) - total
        assert resent <= CONCURRENCY, f"{resent} calls sent twice (at most the {CONCURRENCY} in flight)"
        assert paths["out"].read_text() == ref["out"].read_text()
        # the finished cache holds one row per request (partial rows tidied away)
        assert len(read_jsonl(paths["cache"])) == 20


def test_partial_request_resumes_with_the_choices_it_has(server, paths):
    """An invalid reply on the second of three calls: the valid choices of the calls before are kept
    in a partial row, and the run finishes from them."""
    server.ignore_n = True
    assert generate(server, paths, "--n", "3").exit_code == 0
    rows = read_jsonl(paths["cache"])
    assert len(rows) == 20 and all(r["status"] == "ok" and r["calls"] == 3 for r in rows)
    stats = runner.invoke(app, ["cache", "stats", str(paths["cache"]), "--json"])
    assert json.loads(stats.stdout)["partial"] == 0


def _good_corpus(server, paths):
    assert generate(server, paths).exit_code == 0
    return paths["out"].read_bytes()


@pytest.mark.parametrize("fault", ["401", "403", "404", "wrong-model", "refused"])
def test_dead_or_wrong_server_is_checked_first_and_the_corpus_kept(server, paths, fault):
    old = _good_corpus(server, paths)
    server.reset()
    server.models_seen = 0
    model = "fake-model"
    if fault == "401":
        server.api_key = "the-right-key"
    elif fault in ("403", "404"):
        server.status = int(fault)
    elif fault == "wrong-model":
        model = "no-such-model"
    else:
        server.stop()
    res = generate(server, paths, "--seed", "7", "--max-retries", "1", "--model", model)  # every request new
    assert res.exit_code == 1, res.output
    assert server.seen == []  # no chat request was sent
    assert paths["out"].read_bytes() == old
    assert "Traceback" not in res.output and SECRET not in res.output
    assert res.output.count(server.url) == 1  # the server is named once
    expected = {"401": "rejects the API key", "403": "rejects the API key", "404": "HTTP 404",
                "wrong-model": "does not serve model 'no-such-model'", "refused": "connection refused"}[fault]
    assert expected in res.output


@pytest.mark.parametrize("status", [401, 403, 404])
def test_same_fatal_error_stops_the_run(server, paths, status):
    """Without the check (or when the server goes wrong after it) the first 401/403/404 stops the
    run: the requests in flight, not all 20, are sent."""
    server.status = status
    res = generate(server, paths, "--no-check-server", "--concurrency", str(CONCURRENCY))
    assert res.exit_code == 1
    assert len(server.seen) <= CONCURRENCY
    assert "stopped:" in res.output and f"HTTP {status}" in res.output
    assert res.output.count(server.url) == 1


def test_server_dying_mid_run_stops_after_its_retries(paths):
    server = FakeLLMServer(latency=0.1).start()
    try:
        env = {"PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(_cli(server.url, paths, "--concurrency", "1", "--max-retries", "2", "--json"),
                                cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while server.answered < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.kill()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    summary = json.loads(stdout)
    assert summary["stopped"] and "connection refused" in summary["stopped"]
    assert summary["not_sent_stopped"] >= 10  # not each tried six times and reported
    assert stderr.count("connection error") <= 2 and "... and" not in stderr


def test_more_fallback_never_replaces_an_existing_corpus(server, paths):
    old = _good_corpus(server, paths)
    server.faults = [Fault("malformed", template="parts", times=1000)]
    res = generate(server, paths, "--seed", "3", "--invalid-retries", "0")
    assert res.exit_code == 1
    assert paths["out"].read_bytes() == old
    beside = paths["out"].with_name("corpus.new.jsonl")
    assert beside.is_file() and len(read_jsonl(beside)) == 10
    assert f"kept {paths['out']}" in res.output and "written beside it" in res.output


@pytest.mark.parametrize("url", ["not-a-url", "ftp://127.0.0.1/v1", "http:///v1", "http://127.0.0.1:port/v1"])
def test_base_url_scheme_is_validated(paths, url):
    args = ["generate", "--classes", str(NW_UCLA), "--base-url", url, "--model", "m", "--out", str(paths["out"]),
            "--cache", str(paths["cache"]), "--no-progress"]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "--base-url" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("option,value", [
    ("--n", "0"), ("--n", "-2"), ("--n", "500"), ("--invalid-retries", "-1"), ("--max-retries", "-1"),
    ("--tpm", "-100"), ("--concurrency", "0"), ("--concurrency", "-3"), ("--rpm", "0"), ("--rpm", "-5"),
    ("--timeout", "0"), ("--timeout", "-1"), ("--temperature", "-1"), ("--top-p", "5"), ("--max-tokens", "-5"),
])
def test_numeric_options_are_checked_up_front(server, paths, option, value):
    res = generate(server, paths, option, value)
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: must be") and f"(got {value})" in lines[0]
    assert server.seen == [] and server.models_seen == 0 and not paths["cache"].exists()


def test_timeouts_get_a_hint(server, paths):
    server.latency = 0.6
    classes = write_classes(paths["tmp"] / "c.txt", ["juggle"])
    res = generate(server, paths, "--templates", "combined", "--timeout", "0.2", "--max-retries", "0",
                   classes=classes)
    assert res.exit_code == 1
    assert "hint:" in res.output and "--timeout 0.2" in res.output


@pytest.mark.parametrize("what", ["cache-dir", "out-dir", "parent-is-file"])
def test_unwritable_paths_are_one_line_before_anything_is_sent(server, paths, what):
    folder = paths["tmp"] / "folder"
    folder.mkdir()
    afile = paths["tmp"] / "a-file"
    afile.write_text("x")
    target = {"cache-dir": ("--cache", folder), "out-dir": ("--out", folder),
              "parent-is-file": ("--cache", afile / "cache.jsonl")}[what]
    res = generate(server, paths, *map(str, target))
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(target[1]) in lines[0]
    assert server.seen == []  # checked before a reply could be lost


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_one_line(server, paths):
    folder = paths["tmp"] / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        res = generate(server, paths, "--cache", str(folder / "cache.jsonl"))
    finally:
        folder.chmod(0o755)
    assert res.exit_code == 1 and "not writable" in res.output and server.seen == []


def _editor(tmp, body: str) -> str:
    script = tmp / "editor.py"
    script.write_text("import json, sys\npath = sys.argv[1]\nrec = json.load(open(path))\n" + body)
    return f"{sys.executable} {script}"


def test_edit_refuses_a_class_rename(server, paths):
    assert generate(server, paths).exit_code == 0
    before = paths["out"].read_bytes()
    editor = _editor(paths["tmp"], "rec['name'] = 'throwing'\njson.dump(rec, open(path, 'w'))\n")
    res = runner.invoke(app, ["edit", str(paths["out"]), "throw"], env={"EDITOR": editor, "VISUAL": ""})
    assert res.exit_code == 1 and "class name cannot change" in res.output
    assert paths["out"].read_bytes() == before


@pytest.mark.parametrize("shipped", ["prompts/classes/nw-ucla.txt", "prompts/templates/parts.yaml",
                                     "prompts/corpus.schema.json"])
def test_export_never_overwrites_a_shipped_file(server, paths, shipped):
    assert generate(server, paths).exit_code == 0
    target = ROOT / shipped
    before = target.read_bytes()
    res = runner.invoke(app, ["export", str(paths["out"]), "--synonyms", str(target), "--parts",
                              str(paths["tmp"] / "parts.txt")])
    assert res.exit_code == 1 and "shipped in prompts/" in res.output
    assert target.read_bytes() == before
    res = runner.invoke(app, ["cache", "export", str(paths["cache"]), "--out", str(target)])
    assert res.exit_code == 1 and target.read_bytes() == before


def test_generate_lint_and_validate_agree_on_a_copied_example(server, paths):
    """'The head faces forward,.' copies the combined prompt's example (small models copy examples into
    the first key); the same checks reject it everywhere, in the parts template's replies too."""
    server.faults = [Fault("field", field="head", text="The head faces forward,.", match="throw", template="parts",
                           times=1)]
    res = generate(server, paths, "--n", "1")
    assert res.exit_code == 0, res.output
    row = next(r for r in read_jsonl(paths["cache"]) if r["request"]["class"] == "throw"
               and r["request"]["template"]["name"] == "parts")
    assert row["calls"] == 2 and "The head faces forward,." in row["rejected"][0]["text"]
    records = read_jsonl(paths["out"])
    records[8]["parts"]["head"] = "The head faces forward,."
    bad = paths["tmp"] / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in records))
    validate = runner.invoke(app, ["validate", str(bad)])
    lint = runner.invoke(app, ["lint", str(bad), "--encoder", "none", "--json"])
    assert validate.exit_code == 1 and "The head faces forward,." in validate.output
    issues = json.loads(lint.stdout)["issues"]
    assert {("error", "punctuation"), ("error", "example-copy")} <= {(i["level"], i["check"]) for i in issues}


def test_lint_catches_placeholders_braces_near_copies_and_reports_identical_parts_once(server, paths):
    assert generate(server, paths).exit_code == 0
    records = read_jsonl(paths["out"])
    records[0]["description"] = "{{name}} is doing the action."
    records[1]["parts"]["arms"] = "The arms } swing."
    records[2]["parts"]["head"] = "The head faces forwards."  # near the combined prompt's example
    records[4]["parts"]["head"] = records[3]["parts"]["head"]
    corpus = paths["tmp"] / "c.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    res = runner.invoke(app, ["lint", str(corpus), "--encoder", "none", "--json"])
    issues = json.loads(res.stdout)["issues"]
    got = {(i["level"], i["check"]) for i in issues}
    assert {("error", "placeholder"), ("error", "brace"), ("warning", "near-copy")} <= got
    same = [i for i in issues if i["check"] == "identical-part" and "head" in i["message"]]
    assert len(same) == 1


def test_credentials_in_the_url_are_never_printed_or_stored(paths):
    with FakeLLMServer(formats=LLAMA_CPP_FORMATS) as server:  # negotiation: its line names the URL
        url = server.url.replace("http://", f"http://user:{SECRET}@")
        classes = write_classes(paths["tmp"] / "c.txt", ["juggle"])
        args = ["generate", "--classes", str(classes), "--base-url", url, "--model", "fake-model",
                "--out", str(paths["out"]), "--cache", str(paths["cache"]), "--templates", "combined", *FAST]
        res = runner.invoke(app, args, env={"OPENAI_API_KEY": ""})
        assert res.exit_code == 0, res.output
        assert "rejected response_format" in res.output and server.url in res.output
    assert SECRET not in res.output
    meta = [r for r in read_jsonl(paths["cache"]) if r["key"].startswith("meta:")]
    assert meta and SECRET not in json.dumps(meta)
    for path in paths["tmp"].iterdir():
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_every_call_is_logged_beside_the_cache(server, paths):
    server.faults = [Fault("500", match="throw", template="parts", times=1)]
    res = generate(server, paths, "--header", "X-Org: team-secret-7", "--json")
    assert res.exit_code == 0, res.output
    log = paths["cache"].with_name("cache.calls.jsonl")
    entries = read_jsonl(log)
    assert len(entries) == len(server.seen) == 21
    failed = [e for e in entries if e["error"]]
    assert len(failed) == 1 and failed[0]["status"] == 500 and failed[0]["class"] == "throw"
    ok = [e for e in entries if not e["error"]]
    assert all(e["status"] == 200 and e["server_model"] == "fake-model" and e["usage"]["completion_tokens"] > 0
               and e["latency_s"] >= 0 and e["messages"] and e["choices"] for e in ok)
    text = log.read_text()
    assert SECRET not in text and "team-secret-7" not in text
    assert all({k.lower(): v for k, v in s.headers.items()}.get("x-org") == "team-secret-7" for s in server.seen)
    shown = runner.invoke(app, ["log", str(paths["cache"]), "--errors"])
    assert shown.exit_code == 0 and "HTTP 500" in shown.output and "1 call(s)" in shown.output
    as_json = runner.invoke(app, ["log", str(paths["cache"]), "--class", "sit", "--limit", "0", "--json"])
    assert [json.loads(x)["class"] for x in as_json.stdout.splitlines()] == ["sit down"] * 2


def test_json_summary_is_machine_readable(server, paths):
    server.faults = [Fault("400", match="carry", template="parts", times=1)]
    res = generate(server, paths, "--json")
    assert res.exit_code == 1
    summary = json.loads(res.stdout)
    assert summary["requests"] == 20 and summary["calls"] == 20 and summary["failed"] == 1
    assert summary["exit_code"] == 1 and summary["exit_meaning"]
    assert summary["prompt_tokens"] > 0 and summary["corpus"] == str(paths["out"])
    assert summary["log"].endswith("cache.calls.jsonl") and summary["fallback_classes"] == ["carry"]


def test_extra_body_is_sent_and_part_of_the_cache_key(server, paths):
    classes = write_classes(paths["tmp"] / "c.txt", ["juggle"])
    assert generate(server, paths, "--templates", "combined", classes=classes).exit_code == 0
    plain = read_jsonl(paths["cache"])[0]["key"]
    body = '{"stop": ["\\n\\n"], "guided_decoding_backend": "outlines"}'
    res = generate(server, paths, "--templates", "combined", "--extra-body", body, classes=classes)
    assert res.exit_code == 0, res.output
    last = server.seen[-1].body
    assert last["stop"] == ["\n\n"] and last["guided_decoding_backend"] == "outlines"
    keys = [r["key"] for r in read_jsonl(paths["cache"])]
    assert len(keys) == 2 and plain in keys
    bad = generate(server, paths, "--extra-body", "[1, 2]", classes=classes)
    assert bad.exit_code == 1 and "--extra-body: give a JSON object" in bad.output
