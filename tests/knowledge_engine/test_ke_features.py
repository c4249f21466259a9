"""Rate limits, usage and the run summary, the token budget, --dry-run, `cache` and `lint` commands."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from ke_helpers import NW_UCLA, ROOT, generate, read_jsonl, write_classes
from typer.testing import CliRunner

from knowledge_engine.cli import app
from knowledge_engine.generate import Stats
from knowledge_engine.testing.fake_server import Fault

runner = CliRunner()
CURATED_UCLA = ROOT / "prompts" / "nw-ucla.jsonl"


def _starts(server) -> list[float]:
    return sorted(s.time for s in server.seen)


def test_rpm_spaces_call_starts(server, paths):
    classes = write_classes(paths["tmp"] / "c.txt", ["juggle", "moonwalk", "wave", "clap", "bow"])
    res = generate(server, paths, "--templates", "combined", "--rpm", "600", classes=classes)  # one per 0.1 s
    assert res.exit_code == 0, res.output
    starts = _starts(server)
    # started 0.1 s apart by the client; the first call's arrival is late by the client's set-up
    later = starts[1:]
    assert len(starts) == 5 and min(b - a for a, b in zip(later, later[1:])) >= 0.07
    assert later[-1] - later[0] >= 0.25


def test_tpm_spaces_calls_by_their_tokens(server, paths):
    classes = write_classes(paths["tmp"] / "c.txt", ["juggle", "moonwalk", "wave"])
    # each call may take ~100 prompt tokens + 256 x 1 completion tokens: at 120000 tpm about 0.18 s apart
    res = generate(server, paths, "--templates", "combined", "--n", "1", "--tpm", "120000", classes=classes)
    assert res.exit_code == 0, res.output
    starts = _starts(server)
    assert starts[-1] - starts[0] >= 0.12  # the server's reported usage shortens the wait, never to zero


def test_rate_limit_headers_are_honoured(server, paths):
    server.headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "300ms"}
    classes = write_classes(paths["tmp"] / "c.txt", ["juggle", "moonwalk", "wave"])
    res = generate(server, paths, "--templates", "combined", "--concurrency", "1", classes=classes)
    assert res.exit_code == 0, res.output
    starts = _starts(server)
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 0.28


def test_usage_is_cached_and_summarised(server, paths):
    res = generate(server, paths)
    assert res.exit_code == 0
    rows = read_jsonl(paths["cache"])
    tokens_in = sum(r["usage"]["prompt_tokens"] for r in rows)
    tokens_out = sum(r["usage"]["completion_tokens"] for r in rows)
    assert tokens_in > 0 and tokens_out > 0
    assert f"{tokens_in}/{tokens_out}" in res.output  # summary = what the server reported
    assert "latency p50/p90/max" in res.output and "0 of 10" in res.output and "wall time" in res.output


def test_latency_percentiles():
    stats = Stats(latencies=[0.4, 0.1, 0.3, 0.2, 1.0])
    assert (stats.latency(0.5), stats.latency(0.9), stats.latency(1.0)) == (0.3, 1.0, 1.0)
    assert Stats().latency(0.5) is None


def test_token_budget_stops_sending_and_a_rerun_completes(server, paths):
    res = generate(server, paths, "--concurrency", "1", "--max-tokens-total", "3000")
    assert res.exit_code == 1 and "--max-tokens-total 3000 reached" in res.output
    rows = read_jsonl(paths["cache"])
    used = sum(r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] for r in rows)
    assert 0 < len(rows) < 20 and used <= 3000
    server.reset()
    assert generate(server, paths).exit_code == 0
    assert len(server.seen) == 20 - len(rows)


def test_dry_run_counts_and_sends_nothing(server, paths):
    res = generate(server, paths, "--dry-run")
    assert res.exit_code == 0 and "dry run: 20 of 20 requests would be sent" in res.output
    assert server.seen == [] and not paths["out"].exists()
    assert generate(server, paths, "--templates", "combined").exit_code == 0
    res = generate(server, paths, "--dry-run")
    assert "dry run: 20 of 20" in res.output  # other templates: other requests
    res = generate(server, paths, "--dry-run", "--templates", "combined")
    assert "dry run: 0 of 10 requests would be sent (10 cached" in res.output


def test_cache_stats_show_prune_export(server, paths):
    server.faults = [Fault("malformed", match="carry", template="parts", times=100)]
    assert generate(server, paths, "--n", "1", "--invalid-retries", "0").exit_code == 3
    cache = str(paths["cache"])
    res = runner.invoke(app, ["cache", "stats", cache, "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    assert (stats["rows"], stats["ok"], stats["invalid"], stats["classes"]) == (20, 19, 1, 10)
    assert stats["prompt_tokens"] == sum(r["usage"]["prompt_tokens"] for r in read_jsonl(paths["cache"]))
    res = runner.invoke(app, ["cache", "show", cache, "--class", "carry", "--json"])
    assert len(res.output.strip().splitlines()) == 2
    res = runner.invoke(app, ["cache", "show", cache, "--text", "variant 0", "--json"])
    shown = [json.loads(x) for x in res.output.strip().splitlines()]
    assert shown and all("variant 0" in json.dumps(r) for r in shown)
    assert "not valid JSON" in runner.invoke(app, ["cache", "show", cache, "--class", "carry"]).output
    out = paths["tmp"] / "replies.csv"
    res = runner.invoke(app, ["cache", "export", cache, "--out", str(out), "--format", "csv"])
    assert res.exit_code == 0 and len(out.read_text().splitlines()) == 1 + 19
    # prune keeps what a current template asks for, drops the rest
    res = runner.invoke(app, ["cache", "prune", cache, "--templates", "synonyms,combined", "--dry-run"])
    assert "would drop 10 row(s), kept 10" in res.output and len(read_jsonl(paths["cache"])) == 20
    assert runner.invoke(app, ["cache", "prune", cache]).output.count("dropped 0 row(s)") == 1
    runner.invoke(app, ["cache", "prune", cache, "--templates", "synonyms,combined"])
    assert {r["request"]["template"]["name"] for r in read_jsonl(paths["cache"])} == {"synonyms"}
    server.reset()
    server.faults = []
    assert generate(server, paths, "--n", "1", "--templates", "synonyms,parts").exit_code == 0
    assert {s.template for s in server.seen} == {"parts"}  # kept rows are still used
    assert runner.invoke(app, ["cache", "stats", str(paths["tmp"] / "none.jsonl")]).exit_code == 1


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_lint_curated_corpus_has_warnings_only_and_as_many_as_the_docs_say():
    """`pcle prompts lint --dataset nw-ucla` as docs/knowledge_engine.md writes it (it used to fail with
    "Missing argument 'corpus'"): the curated corpus, and the docs' count of its findings is the real one."""
    res = runner.invoke(app, ["lint", "--dataset", "nw-ucla", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    assert Path(report["corpus"]) == CURATED_UCLA
    doc = " ".join((ROOT / "docs" / "knowledge_engine.md").read_text().split())
    said = re.search(r"The curated `prompts/nw-ucla.jsonl` has (\d+) errors and (\d+) warnings", doc)
    assert said, "docs/knowledge_engine.md no longer states the curated corpus's lint count"
    assert (report["summary"]["errors"], report["summary"]["warnings"]) == tuple(map(int, said.groups()))
    assert report["summary"]["errors"] == 0
    checks = {(i["check"], i["where"]) for i in report["issues"]}
    # the two pick-up classes: near-duplicate synonyms by embedding similarity
    assert ("near-duplicate-synonym", "class 1 'pick up with two hands'") in checks
    assert ("identical-part", "class 7 'doffing'") in checks  # donning and doffing share leg/feet texts


def test_lint_errors_and_warnings_without_embeddings(paths):
    recs = [json.loads(x) for x in CURATED_UCLA.read_text().splitlines()][:3]
    recs[0]["synonyms"].append("hand waving")  # the synonyms template's example
    recs[1]["synonyms"].append(recs[2]["name"])  # another class's name
    recs[2]["description"] = "Moves."
    recs[2]["fallback"] = ["parts", "description"]
    corpus = _write(paths["tmp"] / "c.jsonl", recs)
    res = runner.invoke(app, ["lint", str(corpus), "--encoder", "none", "--json"])
    assert res.exit_code == 1
    report = json.loads(res.output[res.output.index("{"):])
    got = {(i["level"], i["check"]) for i in report["issues"]}
    assert {("error", "example-copy"), ("error", "validate"), ("warning", "length"),
            ("warning", "fallback")} <= got
    table = runner.invoke(app, ["lint", str(corpus), "--encoder", "none"])
    assert table.exit_code == 1 and "example-copy" in table.output and "error(s)" in table.output
    assert runner.invoke(app, ["lint", str(NW_UCLA)]).exit_code == 1  # not a corpus: clean error


@pytest.mark.parametrize("backend_args", [["--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
                                          [], ["--backend", "vllm", "--model", "Qwen/Qwen2.5-7B-Instruct"],
                                          ["--backend", "llama-server"]])
def test_dry_run_needs_no_backend_installed(backend_args, paths, monkeypatch):
    """Counting what a run would send must work where openai, llama-cpp-python or vllm is absent (a plan
    made on a laptop for a GPU box); it used to build the backend (vLLM even loads the model)."""
    for name in ("openai", "llama_cpp", "vllm", "knowledge_engine.backends.openai_compat",
                 "knowledge_engine.backends.llama_cpp", "knowledge_engine.backends.vllm_batch"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    args = ["generate", "--dry-run", "--out", str(paths["out"]), "--cache", str(paths["cache"]), *backend_args]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "dry run: 20 of 20 requests would be sent" in res.output
    assert not any(paths["tmp"].iterdir())  # nothing written, not even a lock file
