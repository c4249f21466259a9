"""`pcle prompts serve` without a browser: the review session's rules and the HTTP server on real files."""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the review page needs the [serve] extra")

from ke_helpers import SECRET, read_jsonl  # noqa: E402

from corpus import CURATED, content_hash, load_records  # noqa: E402
from knowledge_engine.lint import LintOptions  # noqa: E402
from knowledge_engine.review.session import Review, ReviewError, attach, keep  # noqa: E402
from knowledge_engine.testing.browser import start_review  # noqa: E402
from knowledge_engine.testing.fake_server import Fault  # noqa: E402

NO_EMBEDDINGS = LintOptions(encoder="none")
DISABLED = re.compile(r"\sdisabled\s")  # a disabled button (not htmx's hx-disabled-elt)


def generated_copy(path: Path, source: Path = CURATED["nw-ucla"]) -> Path:
    """The curated records as an unedited generated corpus (content hash set), plus one example copy."""
    out = []
    for line in source.read_text().splitlines():
        rec = {**json.loads(line), "source": "generated", "model": "fake-model", "edited": False}
        if rec["class_id"] == 3:
            rec["synonyms"].append("wave hand")  # the synonyms template's example: a lint error
        out.append({**rec, "content_hash": content_hash(rec)})
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path


def test_findings_sit_on_the_strings_they_name(tmp_path):
    review = Review([generated_copy(tmp_path / "g.jsonl")], lint=NO_EMBEDDINGS)
    row = next(r for r in review.rows() if r.cells[0].record["class_id"] == 3)
    cell = row.cells[0]
    last = f"synonyms.{len(cell.record['synonyms']) - 1}"
    assert [f.check for f in cell.field_findings(last)] == ["example-copy"]
    doffing = next(r for r in review.rows() if r.name == "doffing").cells[0]
    assert {f.check for f in doffing.field_findings("parts.legs")} >= {"identical-part"}
    assert attach("field 'parts.head' is blank", cell.record) == ["parts.head"]
    assert attach("close to 'x' of class 8 'doffing'", {**cell.record, "synonyms": ["doffing"]}) == []
    assert [r.name for r in review.rows() if keep(r, "", "example-copy", False, False)] == [row.name]
    assert len([r for r in review.rows() if keep(r, "pick up", "", False, False)]) == 2


def test_edits_are_validated_marked_and_undone(tmp_path):
    path = generated_copy(tmp_path / "g.jsonl")
    review = Review([path], lint=NO_EMBEDDINGS)
    v0, before = review.version(0), path.read_bytes()
    rec = load_records(path)[3]
    n = len(rec["synonyms"]) - 1
    with pytest.raises(ReviewError, match="parts.head': '' should be non-empty; corpus unchanged"):
        review.edit(0, 3, "parts.head", "   ", v0)
    with pytest.raises(ReviewError, match="is the name of another class"):
        review.edit(0, 3, f"synonyms.{n}", "doffing", v0)
    assert path.read_bytes() == before
    review.edit(0, 3, f"synonyms.{n}", "waving goodbye", v0)
    after = load_records(path)[3]
    assert after["synonyms"][n] == "waving goodbye" and after["edited"] is True
    assert after["content_hash"] == rec["content_hash"]  # the hash still records what was generated
    with pytest.raises(ReviewError, match="changed since this page was loaded"):
        review.edit(0, 4, "description", "A person throws a ball.", v0)  # a second tab still showing v0
    review.undo(0)
    assert path.read_bytes() == before
    with pytest.raises(ReviewError, match="nothing to undo"):
        review.undo(0)


def test_curated_is_read_only_and_accept_copies_a_class(tmp_path):
    gen = generated_copy(tmp_path / "g.jsonl")
    review = Review([CURATED["nw-ucla"], gen], lint=NO_EMBEDDINGS)
    assert [c.read_only for c in review.corpora] == [True, False]
    with pytest.raises(ReviewError, match="read-only here; start .* with --allow-curated"):
        review.edit(0, 0, "description", "A person picks something up.", review.version(0))
    row = next(r for r in review.rows() if r.cells[1].record["class_id"] == 3)
    assert "synonyms." + str(len(row.cells[1].record["synonyms"]) - 1) in row.cells[1].diff
    with pytest.raises(ReviewError, match="read-only"):
        review.accept(row.key, 1, [review.version(0), review.version(1)])  # into the curated one
    review.accept(row.key, 0, [review.version(0), review.version(1)])
    copied = load_records(gen)[3]
    curated = load_records(CURATED["nw-ucla"])[3]
    assert copied["synonyms"] == curated["synonyms"] and copied["edited"] is True
    assert review.row(row.key).cells[1].diff == set()


def _post(url: str, data: dict) -> tuple[int, str]:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_serves_the_120_classes_of_ntu120_read_only():
    proc, url = start_review([CURATED["ntu120"]], "--encoder", "none")
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        with urllib.request.urlopen(url, timeout=60) as r:
            page = r.read().decode()
        assert page.count('class="cls"') == 120 and "120 of 120 classes" in page
        assert page.count("readonly") >= 120 * 7 and "read-only" in page
        with urllib.request.urlopen(url + "static/htmx.min.js", timeout=60) as r:
            assert r.status == 200 and b"htmx" in r.read(2000)
        version = re.search(r'id="version-0" name="version-0" value="(\w+)"', page).group(1)
        status, body = _post(url + "edit", {"corpus": 0, "class_id": 0, "field": "description",
                                            "value": "Drinking.", "version-0": version})
        assert status == 422 and "read-only" in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_refuses_bad_input_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from knowledge_engine.cli import app

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"class_id": 0}\n')
    res = CliRunner().invoke(app, ["serve", str(bad), "--encoder", "none"])
    assert res.exit_code == 1 and "bad.jsonl:1: field" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["serve", str(bad), str(bad), str(bad), "--encoder", "none"])
    assert res.exit_code == 1 and "give one corpus, or two" in res.output


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read().decode()


def _version(page: str) -> str:
    return re.search(r'id="version-0" name="version-0" value="(\w+)"', page).group(1)


def _error_line(body: str) -> str:
    """The one line a refusal shows (the status div's text)."""
    assert "Traceback" not in body
    return html.unescape(re.fullmatch(r'<div class="error" role="alert">([^<\n]+)</div>', body).group(1))


def test_without_a_backend_regenerate_is_off_and_says_why(tmp_path):
    from starlette.testclient import TestClient

    from knowledge_engine.review.server import make_app

    client = TestClient(make_app(Review([generated_copy(tmp_path / "g.jsonl")], lint=NO_EMBEDDINGS)))
    page = client.get("/").text
    assert page.count('class="regenerate" data-corpus="0"') == 10 and len(DISABLED.findall(page)) == 10
    assert "no backend configured: start `pcle prompts serve` with --base-url" in page
    res = client.post("/regenerate", data={"corpus": 0, "class_id": 4})
    assert res.status_code == 422 and _error_line(res.text).startswith("no backend configured")


def test_regenerate_with_vllm_plans_the_backend_without_loading_it():
    """vLLM loads its model in the constructor: the page learns the model name from the plan, and a missing
    --model is the one line `generate` gives."""
    import sys

    from knowledge_engine.backends import BackendConfig
    from knowledge_engine.errors import KnowledgeEngineError
    from knowledge_engine.review.regenerate import Regenerator
    from knowledge_engine.run import GenerateOptions

    regen = Regenerator(GenerateOptions(backend=BackendConfig(kind="vllm", model="/models/qwen")))
    assert regen.describe() == "vllm backend, model /models/qwen" and "vllm" not in sys.modules
    with pytest.raises(KnowledgeEngineError, match="vllm backend: set --model"):
        Regenerator(GenerateOptions(backend=BackendConfig(kind="vllm")))


def test_regenerate_proposes_then_writes_only_on_accept(server, tmp_path):
    """`serve --base-url` against the test LLM server: a proposal through the cache and call log, written
    on accept (version-checked, a hand-edited record only with confirm); a bad reply and a dead server
    are one line each."""
    path, cache = generated_copy(tmp_path / "g.jsonl"), tmp_path / "cache.jsonl"
    proc, url = start_review([path], "--encoder", "none", "--base-url", server.url, "--model", "fake-model",
                             "--api-key", SECRET, "--cache", str(cache), "--n", "1", "--max-retries", "0",
                             "--invalid-retries", "0", "--backoff-base", "0.01", "--timeout", "10")
    try:
        page = _get(url)
        assert f"regenerate asks the openai backend, model fake-model at {server.url}" in page
        assert page.count('hx-post="/regenerate"') == 10 and not DISABLED.search(page)
        before = path.read_bytes()
        status, body = _post(url + "regenerate", {"corpus": 0, "class_id": 4})
        assert status == 200, body
        assert 'id="proposal-0-4" hx-swap-oob="true"' in body and "2 call(s) sent" in body
        assert sorted((s.class_name, s.template) for s in server.seen) == [("sit down", "parts"),
                                                                            ("sit down", "synonyms")]
        assert path.read_bytes() == before  # a proposal writes nothing
        assert [r["status"] for r in read_jsonl(cache)] == ["ok", "ok"]
        log = cache.with_name("cache.calls.jsonl")
        assert {e["class"] for e in read_jsonl(log)} == {"sit down"} and SECRET not in log.read_text()
        status, body = _post(url + "regenerate", {"corpus": 0, "class_id": 4})
        assert status == 200 and "from the cache" in body and len(server.seen) == 2

        status, body = _post(url + "regenerate/accept", {"corpus": 0, "class_id": 4, "version-0": "stale"})
        assert status == 409 and "changed since this page was loaded" in _error_line(body)
        status, body = _post(url + "regenerate/accept", {"corpus": 0, "class_id": 4, "version-0": _version(page)})
        assert status == 200 and "wrote the regenerated class 4 'sit down'" in html.unescape(body)
        rec = load_records(path)[4]
        assert rec["synonyms"] == ["sit down", "sit down now", "sit down variant 0"]
        assert rec["parts"]["legs"] == "The legs bend during sit down (0)."
        assert rec["edited"] is True and rec["model"] == "fake-model" and rec["content_hash"] == content_hash(rec)
        assert 'id="proposal-0-4"' in body and "proposed by" not in body  # the proposal is gone

        status, body = _post(url + "regenerate", {"corpus": 0, "class_id": 4, "sample": 1})
        assert status == 200 and "seed 1;" in body and len(server.seen) == 4
        version, before = _version(_get(url)), path.read_bytes()
        status, body = _post(url + "regenerate/accept", {"corpus": 0, "class_id": 4, "version-0": version})
        assert status == 422 and "is hand-edited: tick 'replace the hand-edited text'" in _error_line(body)
        assert path.read_bytes() == before
        status, body = _post(url + "regenerate/accept", {"corpus": 0, "class_id": 4, "version-0": version,
                                                         "confirm": "1"})
        assert status == 200 and "sit down variant 1" in load_records(path)[4]["synonyms"]

        server.faults = [Fault("malformed", match="throw", template="parts", times=5)]
        before = path.read_bytes()
        status, body = _post(url + "regenerate", {"corpus": 0, "class_id": 8})
        assert status == 422 and "regenerating class 8 'throw': class 'throw' [parts]:" in _error_line(body)
        server.stop()
        status, body = _post(url + "regenerate", {"corpus": 0, "class_id": 9})
        assert status == 422 and "nothing was sent (is the server running?" in _error_line(body)
        assert path.read_bytes() == before
    finally:
        proc.terminate()
        proc.wait(timeout=30)
