"""Generation against a real HTTP server with scripted faults."""

from __future__ import annotations

from ke_helpers import NW_UCLA, SECRET, generate, read_jsonl, write_classes

from corpus import load_corpus
from knowledge_engine.testing.fake_server import Fault

CLASSES = NW_UCLA.read_text().split("\n")[:10]


def test_clean_run_writes_valid_corpus_and_cache(server, paths):
    res = generate(server, paths)
    assert res.exit_code == 0, res.output
    corpus = load_corpus(paths["out"], [c for c in CLASSES if c])
    assert len(corpus) == 10
    rows = read_jsonl(paths["cache"])
    assert len(rows) == 20 and all(r["status"] == "ok" for r in rows)
    row = rows[0]
    assert row["raw"] and row["finish_reasons"] == ["stop", "stop"] and row["usage"]["completion_tokens"] > 0
    records = read_jsonl(paths["out"])
    assert all(r["source"] == "generated" and r["model"] == "fake-model" and r["edited"] is False
               and r["content_hash"] for r in records)


def test_synonyms_are_merged_normalised_and_deduplicated(server, paths):
    assert generate(server, paths, "--n", "3").exit_code == 0
    rec = read_jsonl(paths["out"])[4]  # "sit down"
    # the server sends "  SIT DOWN  Now ", "sit down variant k", "sit down now." in every sample
    assert rec["synonyms"] == ["sit down", "sit down now", "sit down variant 0", "sit down variant 1",
                               "sit down variant 2"]
    assert rec["parts"]["legs"].startswith("The legs") and rec["parts"]["legs"].endswith(".")


def test_warm_cache_sends_nothing(server, paths):
    assert generate(server, paths).exit_code == 0
    first = paths["out"].read_text()
    server.reset()
    res = generate(server, paths)
    assert res.exit_code == 0
    assert server.seen == []
    assert paths["out"].read_text() == first


def test_429_with_retry_after_is_honoured(server, paths):
    server.faults = [Fault("429", retry_after=0.3, times=1)]
    res = generate(server, paths, "--concurrency", "1")
    assert res.exit_code == 0, res.output
    first = server.seen[0]
    same = [s for s in server.seen[1:] if (s.class_name, s.template) == (first.class_name, first.template)]
    second = same[0]
    assert first.fault == "429"
    assert second.time - first.time >= 0.3  # the client waited as asked, not its 10 ms backoff
    assert "retried" in res.output and len(read_jsonl(paths["cache"])) == 20


def test_500_and_bad_body_are_retried(server, paths):
    server.faults = [Fault("500", times=2), Fault("bad_body", times=1)]
    res = generate(server, paths)
    assert res.exit_code == 0, res.output
    assert len(server.seen) == 20 + 3
    assert all(r["status"] == "ok" for r in read_jsonl(paths["cache"]))


def test_slow_reply_past_timeout_is_retried(server, paths):
    server.faults = [Fault("slow", delay=1.5, match="throw", times=1)]
    res = generate(server, paths, "--timeout", "0.5")
    assert res.exit_code == 0, res.output
    throws = [s for s in server.seen if s.class_name == "throw"]
    assert len(throws) == 3  # synonyms, parts (slow, timed out), parts again
    assert all(r["status"] == "ok" for r in read_jsonl(paths["cache"]))


def test_malformed_and_truncated_replies_are_never_cached_as_valid(server, paths):
    server.faults = [Fault("malformed", match="carry", template="parts", times=1),
                     Fault("length", match="throw", template="parts", times=1)]
    res = generate(server, paths, "--n", "1")
    assert res.exit_code == 0, res.output
    rows = {(r["request"]["class"], r["request"]["template"]["name"]): r for r in read_jsonl(paths["cache"])}
    for cls, reason in (("carry", "not valid JSON"), ("throw", "finish_reason=length")):
        row = rows[(cls, "parts")]
        assert row["status"] == "ok" and len(row["choices"]) == 1 and row["calls"] == 2
        assert reason in row["rejected"][0]["reason"]
        assert row["finish_reasons"] == ["stop"]


def test_class_that_never_answers_validly_gets_marked_fallback(server, paths):
    server.faults = [Fault("malformed", match="carry", template="parts", times=100)]
    res = generate(server, paths, "--n", "1", "--invalid-retries", "2")
    assert res.exit_code == 3, res.output  # corpus written, but a class uses fallback text
    assert "fallback text for 'carry'" in res.output
    rec = next(r for r in read_jsonl(paths["out"]) if r["name"] == "carry")
    assert rec["fallback"] == ["parts", "description"]
    row = next(r for r in read_jsonl(paths["cache"]) if r["request"]["class"] == "carry"
               and r["request"]["template"]["name"] == "parts")
    assert row["status"] == "invalid" and row["choices"] == [] and len(row["rejected"]) == 3
    # --strict turns the fallback into a failure; a rerun does not resend the cached invalid request
    server.reset()
    assert generate(server, paths, "--n", "1", "--strict").exit_code == 1
    assert server.seen == []


def test_server_ignoring_n_is_looped(server, paths):
    server.ignore_n = True
    assert generate(server, paths, "--n", "3").exit_code == 0
    rows = read_jsonl(paths["cache"])
    assert all(len(r["choices"]) == 3 and r["calls"] == 3 for r in rows)
    seeds = sorted(s.seed for s in server.seen if s.class_name == "throw" and s.template == "synonyms")
    assert seeds == [0, 1, 2]


def test_concurrency_bound_is_respected(server, paths):
    server.latency = 0.05
    assert generate(server, paths, "--concurrency", "3").exit_code == 0
    assert server.max_inflight == 3


def test_exhausted_retries_are_reported_not_cached_and_resent_later(server, paths):
    server.faults = [Fault("500", match="donning", times=100)]
    res = generate(server, paths, "--max-retries", "2")
    assert res.exit_code == 1
    assert "failed (not cached, rerun to retry)" in res.output and "donning" in res.output
    assert not any(r["request"]["class"] == "donning" for r in read_jsonl(paths["cache"]))
    server.faults, server.seen[:] = [], []
    assert generate(server, paths).exit_code == 0
    assert {s.class_name for s in server.seen} == {"donning"}


def test_api_key_is_used_but_never_written(server, paths):
    server.faults = [Fault("500", times=1), Fault("429", times=1, retry_after=0), Fault("malformed", times=1)]
    res = generate(server, paths)
    assert all(s.authorization == f"Bearer {SECRET}" for s in server.seen)
    for path in paths["tmp"].iterdir():
        assert SECRET not in path.read_text()
    assert SECRET not in res.output


def test_api_key_absent_from_error_messages(server, paths):
    server.stop()  # connection refused on every call
    res = generate(server, paths, "--max-retries", "1")
    assert res.exit_code == 1 and "connection error" in res.output
    assert SECRET not in res.output and "Traceback" not in res.output


def test_custom_class_file_and_combined_template(server, paths):
    classes = write_classes(paths["tmp"] / "mine.txt", ["juggle", "moonwalk"])
    res = generate(server, paths, "--templates", "combined", classes=classes)
    assert res.exit_code == 0, res.output
    assert [r["name"] for r in read_jsonl(paths["out"])] == ["juggle", "moonwalk"]
    assert len(server.seen) == 2


def test_bad_class_file_is_a_clean_error(server, paths):
    res = generate(server, paths, classes=paths["tmp"] / "missing.txt")
    assert res.exit_code == 1 and "missing.txt: class list not found" in res.output
    assert "Traceback" not in res.output
