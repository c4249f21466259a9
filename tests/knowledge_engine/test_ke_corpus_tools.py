"""Hand edits, validate/show/diff, $EDITOR editing and GAP's text layout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ke_helpers import NW_UCLA, generate, read_jsonl
from typer.testing import CliRunner

from knowledge_engine.cli import app
from knowledge_engine.testing.fake_server import Fault

runner = CliRunner()


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _editor(tmp: Path, body: str) -> str:
    """An $EDITOR: a Python script that rewrites the file it is given."""
    script = tmp / "editor.py"
    script.write_text("import json, sys\npath = sys.argv[1]\nrec = json.load(open(path))\n" + body)
    return f"{sys.executable} {script}"


def test_hand_edits_survive_regeneration(server, paths):
    assert generate(server, paths).exit_code == 0
    records = read_jsonl(paths["out"])
    records[0]["description"] = "Edited in a text editor, no flag set."  # detected by content hash
    records[1]["synonyms"].append("lift with both hands")
    records[1]["edited"] = True
    _write(paths["out"], records)
    server.faults = [Fault("500", times=0)]
    res = generate(server, paths, "--seed", "5")  # different requests: everything regenerates
    assert res.exit_code == 0 and "kept 2 hand-edited record(s)" in res.output
    new = read_jsonl(paths["out"])
    assert new[0]["description"] == "Edited in a text editor, no flag set." and new[0]["edited"] is True
    assert "lift with both hands" in new[1]["synonyms"]
    assert new[2]["parts"]["head"].endswith("(1).")  # seed 5 -> regenerated
    res = generate(server, paths, "--seed", "5", "--overwrite-edits")
    assert res.exit_code == 0
    assert read_jsonl(paths["out"])[0]["edited"] is False


def test_regeneration_refuses_a_corpus_broken_by_hand(server, paths):
    assert generate(server, paths).exit_code == 0
    paths["out"].write_text(paths["out"].read_text().replace('"name"', '"name', 1))
    res = generate(server, paths)
    assert res.exit_code == 1 and f"{paths['out']}:1: not valid JSON" in res.output


def test_validate_reports_content_problems(paths):
    assert runner.invoke(app, ["validate", "prompts/nosuch.jsonl"]).exit_code == 1
    base = {"parts": {p: f"the {p} move" for p in ("head", "hands", "arms", "hips", "legs", "feet")},
            "description": "A person moves.", "source": "curated", "model": None, "edited": False}
    _write(paths["out"], [
        {**base, "class_id": 0, "name": "sit down", "synonyms": ["sit down", "Sit  Down", "stand up"]},
        {**base, "class_id": 1, "name": "stand up", "synonyms": ["stand up"], "description": "  "},
    ])
    res = runner.invoke(app, ["validate", str(paths["out"]), "--classes", str(NW_UCLA)])
    assert res.exit_code == 1
    out = res.output
    assert "duplicate synonyms ['sit down']" in out
    assert "synonym 'stand up' is the name of another class" in out
    assert "field 'description' is blank" in out
    assert "no record for class 'throw'" in out
    assert "Traceback" not in out
    # both classes share every part text ("the legs move"): a warning per part, naming both classes
    assert "class 1 'stand up': legs: same text as class 0 'sit down'" in out


def test_generated_corpus_validates_and_shows(server, paths):
    assert generate(server, paths).exit_code == 0
    res = runner.invoke(app, ["validate", str(paths["out"]), "--dataset", "nw-ucla"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["show", str(paths["out"]), "throw"])
    assert res.exit_code == 0 and "The legs bend during throw" in res.output
    assert runner.invoke(app, ["show", str(paths["out"])]).exit_code == 0
    res = runner.invoke(app, ["show", str(paths["out"]), "juggle"])
    assert res.exit_code == 1 and "no class 'juggle'" in res.output


def test_diff_two_corpora_and_against_regeneration(server, paths):
    assert generate(server, paths).exit_code == 0
    other = paths["tmp"] / "other.jsonl"
    records = read_jsonl(paths["out"])
    records[3]["parts"]["feet"] = "The feet walk in circles."
    _write(other, records)
    res = runner.invoke(app, ["diff", str(paths["out"]), str(other)])
    assert "~ walk around: feet:" in res.output and "1 difference(s)" in res.output
    res = runner.invoke(app, ["diff", str(other), "--classes", str(NW_UCLA), "--base-url", server.url,
                              "--model", "fake-model", "--cache", str(paths["cache"])])
    assert res.exit_code == 0, res.output
    assert "1 difference(s)" in res.output and server.seen and len(server.seen) == 20  # nothing sent


def test_edit_valid_change_is_saved_and_marked(server, paths):
    assert generate(server, paths).exit_code == 0
    editor = _editor(paths["tmp"], "rec['synonyms'].append('toss')\njson.dump(rec, open(path, 'w'))\n")
    res = runner.invoke(app, ["edit", str(paths["out"]), "throw"], env={"EDITOR": editor, "VISUAL": ""})
    assert res.exit_code == 0, res.output
    rec = read_jsonl(paths["out"])[8]
    assert rec["edited"] is True and rec["synonyms"][-1] == "toss"


def test_edit_with_invalid_json_leaves_file_unchanged(server, paths):
    assert generate(server, paths).exit_code == 0
    before = paths["out"].read_bytes()
    editor = _editor(paths["tmp"], "open(path, 'w').write('{\"class_id\": 8, oops')\n")
    res = runner.invoke(app, ["edit", str(paths["out"]), "8"], env={"EDITOR": editor, "VISUAL": ""})
    assert res.exit_code == 1
    assert "not valid JSON" in res.output and "corpus unchanged" in res.output
    assert paths["out"].read_bytes() == before
    editor = _editor(paths["tmp"], "rec['parts'].pop('feet')\njson.dump(rec, open(path, 'w'))\n")
    res = runner.invoke(app, ["edit", str(paths["out"]), "8"], env={"EDITOR": editor, "VISUAL": ""})
    assert res.exit_code == 1 and "'feet' is a required property" in res.output
    assert paths["out"].read_bytes() == before


def test_gap_export_import_round_trip(server, paths):
    assert generate(server, paths).exit_code == 0
    syn, parts, back = paths["tmp"] / "syn.txt", paths["tmp"] / "parts.txt", paths["tmp"] / "back.jsonl"
    assert runner.invoke(app, ["export", str(paths["out"]), "--synonyms", str(syn), "--parts", str(parts)]
                         ).exit_code == 0
    assert parts.read_text().splitlines()[8].startswith("throw;The head turns during throw")
    res = runner.invoke(app, ["import", "--synonyms", str(syn), "--parts", str(parts), "--out", str(back),
                              "--dataset", "nw-ucla"])
    assert res.exit_code == 0, res.output
    a, b = read_jsonl(paths["out"]), read_jsonl(back)
    def content(rs):
        return [(r["name"], r["synonyms"], r["parts"]) for r in rs]

    assert content(a) == content(b)
    assert all(r["source"] == "imported" for r in b)
    parts.write_text("throw;only three;fields\n")
    syn.write_text("throw\n")
    res = runner.invoke(app, ["import", "--synonyms", str(syn), "--parts", str(parts), "--out", str(back)])
    assert res.exit_code == 1 and "parts.txt:1: expected 7 ';'-separated fields" in res.output


def test_vllm_missing_is_a_clear_message(paths):
    res = runner.invoke(app, ["generate", "--backend", "vllm", "--model", "m", "--out", str(paths["out"])])
    assert res.exit_code == 1 and "pip install '.[vllm]'" in res.output
