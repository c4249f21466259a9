"""Issue 12's defects, each against the real HTTP test server (or real files): these failed before the fix."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from ke_helpers import NW_UCLA, ROOT, generate, read_jsonl, write_classes
from typer.testing import CliRunner

from corpus import CorpusError, load_corpus
from knowledge_engine.cli import app
from knowledge_engine.testing.fake_server import LLAMA_CPP_FORMATS, FakeLLMServer, Fault

runner = CliRunner()
CURATED_UCLA = ROOT / "prompts" / "nw-ucla.jsonl"


def _editor(tmp: Path, body: str) -> str:
    script = tmp / "editor.py"
    script.write_text("import json, sys\npath = sys.argv[1]\nrec = json.load(open(path))\n" + body)
    return f"{sys.executable} {script}"


# 1. llama.cpp's server rejects response_format json_schema with HTTP 500 -----------------------------
def test_llama_cpp_format_rejection_is_negotiated_once_and_remembered(server, paths):
    server.formats = LLAMA_CPP_FORMATS
    res = generate(server, paths, "--concurrency", "1")
    assert res.exit_code == 0, res.output
    assert "Input should be 'text' or 'json_object'" in res.output  # the server's own words are shown
    formats = [s.response_format for s in server.seen]
    assert formats.count("json_schema") == 1 and formats[1:] == ["json_object"] * 20
    records = read_jsonl(paths["out"])
    assert not any(r.get("fallback") for r in records)
    rows = read_jsonl(paths["cache"])
    meta = [r for r in rows if r["key"].startswith("meta:structured")]
    assert meta and meta[0]["value"]["accepted"] == "json_object"
    # the next run (new requests: another seed) starts with what the server accepted
    server.reset()
    assert generate(server, paths, "--seed", "7").exit_code == 0
    assert {s.response_format for s in server.seen} == {"json_object"}


def test_server_without_json_modes_gets_plain_json_extraction(server, paths):
    server.formats = ("text",)  # rejects json_schema and json_object alike
    classes = write_classes(paths["tmp"] / "three.txt", ["sit down", "stand up", "throw"])
    res = generate(server, paths, "--concurrency", "1", classes=classes)
    assert res.exit_code == 0, res.output
    assert [s.response_format for s in server.seen[:3]] == ["json_schema", "json_object", None]
    rows = [r for r in read_jsonl(paths["cache"]) if not r["key"].startswith("meta:")]
    assert all(r["status"] == "ok" and r["structured"] == "none" for r in rows)
    assert "```json" in rows[0]["raw"][0]  # the prose reply, kept as sent
    assert load_corpus(paths["out"], ["sit down", "stand up", "throw"])


def test_5xx_shows_the_servers_error_text(server, paths):
    server.faults = [Fault("500", times=100, match="throw")]
    res = generate(server, paths, "--max-retries", "1")
    assert res.exit_code == 1
    assert "HTTP 500: internal error" in res.output and "throw" in res.output


# 3. import overwrote the curated corpus ------------------------------------------------------------------
def test_import_and_export_refuse_the_curated_corpus(paths):
    before = CURATED_UCLA.read_bytes()
    syn, parts = paths["tmp"] / "syn.txt", paths["tmp"] / "parts.txt"
    syn.write_text("throw\n")
    parts.write_text("throw;a;b;c;d;e;f\n")
    res = runner.invoke(app, ["import", "--synonyms", str(syn), "--parts", str(parts), "--out",
                              str(CURATED_UCLA)])
    assert res.exit_code == 1 and "curated corpus" in res.output
    res = runner.invoke(app, ["export", str(CURATED_UCLA), "--synonyms", str(CURATED_UCLA), "--parts",
                              str(parts)])
    assert res.exit_code == 1 and "curated corpus" in res.output
    assert CURATED_UCLA.read_bytes() == before


# 4. tracebacks ---------------------------------------------------------------------------------------------
def test_non_utf8_corpus_is_a_clean_error_everywhere(paths):
    bad = paths["tmp"] / "latin1.jsonl"
    lines = CURATED_UCLA.read_bytes().splitlines(keepends=True)
    bad.write_bytes(b"".join(lines[:2]) + lines[2].replace(b"walk", b"w\xe4lk", 1) + b"".join(lines[3:]))
    syn, parts = paths["tmp"] / "s.txt", paths["tmp"] / "p.txt"
    for args in (["validate", str(bad)], ["show", str(bad)], ["diff", str(bad), str(CURATED_UCLA)],
                 ["export", str(bad), "--synonyms", str(syn), "--parts", str(parts)], ["lint", str(bad)],
                 ["import", "--synonyms", str(bad), "--parts", str(bad), "--out", str(paths["out"])]):
        res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output)
        assert f"{bad}:3: not UTF-8 text (byte 0xe4" in res.output, (args, res.output)
        assert "Traceback" not in res.output
    try:
        load_corpus(bad)  # what `pcle train` reads
    except CorpusError as e:
        assert str(e).startswith(f"{bad}:3: not UTF-8 text")
    else:
        raise AssertionError("no error")


def test_regenerating_over_a_schema_breaking_hand_edit_is_a_clean_error(server, paths):
    assert generate(server, paths).exit_code == 0
    records = read_jsonl(paths["out"])
    del records[2]["parts"]["feet"]
    records[2]["edited"] = True
    paths["out"].write_text("".join(json.dumps(r) + "\n" for r in records))
    before = paths["out"].read_bytes()
    res = generate(server, paths, "--seed", "3")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"hand-edited record {records[2]['name']!r}" in res.output and "'feet' is a required property" in res.output
    assert paths["out"].read_bytes() == before


def test_cache_row_without_choices_is_set_aside_not_a_crash(server, paths):
    assert generate(server, paths).exit_code == 0
    rows = read_jsonl(paths["cache"])
    del rows[0]["choices"]
    paths["cache"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    server.reset()
    res = generate(server, paths)
    assert res.exit_code == 0, res.output
    assert "bad row (missing status, request or choices)" in res.output
    assert len(server.seen) == 1  # only that request is asked again


# 5. one refused request aborted the run -----------------------------------------------------------------
def test_http_400_for_one_class_fails_that_class_only(server, paths):
    server.faults = [Fault("400", match="carry", times=100)]
    res = generate(server, paths)
    assert res.exit_code == 1
    assert "class 'carry' [synonyms]" in res.output and "maximum context length" in res.output
    cached = {r["request"]["class"] for r in read_jsonl(paths["cache"])}
    assert len(cached) == 9 and "carry" not in cached
    records = read_jsonl(paths["out"])
    assert [r["name"] for r in records if r.get("fallback")] == ["carry"]
    assert len([s for s in server.seen if s.class_name == "carry"]) == 2  # refused: not retried


# 6. exit codes, invalid retries, edit = validate, torn lines, concurrent runs ----------------------------------
def test_every_class_falling_back_is_a_nonzero_exit_with_a_count(server, paths):
    server.faults = [Fault("malformed", times=1000)]
    res = generate(server, paths, "--n", "1", "--invalid-retries", "0")
    assert res.exit_code == 3
    assert "10 of 10" in res.output and "10 of 10 classes use fallback text" in res.output
    assert generate(server, paths, "--n", "1", "--invalid-retries", "0", "--strict").exit_code == 1


def test_invalid_retries_counts_extra_calls(server, paths):
    server.faults = [Fault("malformed", match="throw", template="parts", times=1000)]
    assert generate(server, paths, "--n", "2", "--invalid-retries", "3").exit_code == 3
    row = next(r for r in read_jsonl(paths["cache"]) if r["request"]["class"] == "throw"
               and r["request"]["template"]["name"] == "parts")
    assert row["calls"] == 4  # the first call and 3 extra ones


def test_edit_rejects_what_validate_rejects(server, paths):
    assert generate(server, paths).exit_code == 0
    before = paths["out"].read_bytes()
    env = {"VISUAL": ""}
    for body, message in (("rec['description'] = '   '\n", "field 'description' is blank"),
                          ("rec['synonyms'].append('stand up')\n", "synonym 'stand up' is the name of another")):
        editor = _editor(paths["tmp"], body + "json.dump(rec, open(path, 'w'))\n")
        res = runner.invoke(app, ["edit", str(paths["out"]), "throw"], env={**env, "EDITOR": editor})
        assert res.exit_code == 1 and message in res.output and "corpus unchanged" in res.output
        assert paths["out"].read_bytes() == before


def test_torn_cache_line_is_compacted_once(server, paths):
    assert generate(server, paths).exit_code == 0
    text = paths["cache"].read_text()
    paths["cache"].write_text(text[: len(text) - 40])  # a torn last write
    assert "truncated last line ignored" in generate(server, paths).output
    res = generate(server, paths)
    assert res.exit_code == 0 and "ignored" not in res.output  # warned once, not forever
    assert len(read_jsonl(paths["cache"])) == 20  # every line readable again
    assert Path(str(paths["cache"]) + ".corrupt").read_text().strip()  # the torn bytes are kept aside


def test_two_concurrent_runs_on_one_cache_send_each_request_once(paths):
    """Two runs in threads of one process (flock locks conflict across open files, as across processes)."""
    from knowledge_engine.backends import BackendConfig
    from knowledge_engine.generate import RunConfig
    from knowledge_engine.run import GenerateOptions, generate_corpus

    with FakeLLMServer(latency=0.05) as srv:
        results, outs = [], [paths["tmp"] / "a.jsonl", paths["tmp"] / "b.jsonl"]

        def run(out: Path) -> None:
            opts = GenerateOptions(dataset=None, classes=NW_UCLA, out=out, cache=paths["cache"],
                                   backend=BackendConfig(kind="openai", base_url=srv.url, model="fake-model"),
                                   run=RunConfig(concurrency=4, progress=False))
            results.append(generate_corpus(opts))

        threads = [threading.Thread(target=run, args=(o,)) for o in outs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 2 and sorted(r.stats.sent for r in results) == [0, 20]
        assert len(srv.seen) == 20
        assert outs[0].read_text() == outs[1].read_text()


def test_classes_file_not_utf8_is_a_clean_error(server, paths):
    classes = paths["tmp"] / "bad.txt"
    classes.write_bytes(NW_UCLA.read_bytes() + b"caf\xe9\n")
    res = generate(server, paths, classes=classes)
    assert res.exit_code == 1 and "bad.txt:11: not UTF-8 text" in res.output


def test_fallback_text_is_grammatical_for_any_class_name():
    """A class without a valid reply gets generic text that reads as English whatever the name's form
    (a verb, a gerund phrase): the head moves, the plural parts move, and the name is quoted, not conjugated."""
    from knowledge_engine.assemble import build_record

    for name in ("hammer", "hand waving", "pick up with one hand"):
        rec = build_record(0, name, [], "m", set())
        assert rec["fallback"] == ["synonyms", "parts", "description"]
        assert rec["parts"]["head"] == f'The head moves during the action "{name}".'
        assert rec["parts"]["feet"] == f'The feet move during the action "{name}".'
        assert rec["description"] == f'A person does the action "{name}".'
        assert not any("as needed" in t for t in rec["parts"].values())
