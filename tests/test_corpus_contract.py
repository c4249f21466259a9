"""The corpus contract (`corpus/`): the seam between the stages, atomic versioned writes, hand-edit marks."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from corpus import (
    CURATED,
    CorpusError,
    StaleCorpusError,
    content_hash,
    corpus_version,
    is_edited,
    load_records,
    mark_edited,
    read_records,
    write_records,
)

ROOT = Path(__file__).resolve().parents[1]
WIRING = "corpus.text_encoder"  # the one module of stage 1's side that may reach the recognizer


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside a function."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _graph(*packages: str) -> dict[str, set[str]]:
    return {_module(p): _imports(p) for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))}


def test_stage_one_reaches_the_recognizer_only_through_the_contract():
    graph = _graph("knowledge_engine", "corpus")
    offenders = {m: sorted(i for i in imps if i.split(".")[0] == "recognizer")
                 for m, imps in graph.items() if m != WIRING}
    assert {m: i for m, i in offenders.items() if i} == {}
    assert {i for i in graph[WIRING] if i.startswith("recognizer")} == {"recognizer.method.text_encoder"}
    # the contract depends on neither stage (bar the wiring point's one lazy import)
    assert {m: sorted(i for i in imps if i.split(".")[0] == "knowledge_engine")
            for m, imps in graph.items() if m.startswith("corpus") and
            any(i.split(".")[0] == "knowledge_engine" for i in imps)} == {}
    assert not any(i.startswith("corpus") for i in _imports(ROOT / "recognizer/method/text_encoder.py"))


def test_no_import_circle_in_stage_one_or_the_contract():
    graph = _graph("knowledge_engine", "corpus")
    edges = {m: {i for i in imps if i in graph and i != m} for m, imps in graph.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return path + [m, n]
            if n not in state and (cycle := visit(n, path + [m])):
                return cycle
        state[m] = 2
        return None

    cycles = [c for m in sorted(graph) if m not in state and (c := visit(m, []))]
    assert cycles == []
    assert "knowledge_engine.lint" not in graph["knowledge_engine.inspect_corpus"]


def test_importing_stage_one_loads_nothing_of_the_recognizer():
    code = ("import sys, knowledge_engine.cli, knowledge_engine.lint, knowledge_engine.run, knowledge_engine.edit; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('recognizer', 'torch')))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def _record(cid: int, name: str) -> dict:
    rec = {"class_id": cid, "name": name, "synonyms": [name, f"{name} again"],
           "parts": {p: f"The {p} move for {name}." for p in ("head", "hands", "arms", "hips", "legs", "feet")},
           "description": f"A person does {name}.", "source": "generated", "model": "m", "edited": False}
    return {**rec, "content_hash": content_hash(rec)}


def test_write_records_is_versioned_and_refuses_stale_writes(tmp_path):
    path = tmp_path / "c.jsonl"
    assert corpus_version(path) == "absent"
    v1 = write_records(path, [_record(0, "wave"), _record(1, "clap")], based_on="absent")
    assert v1 == corpus_version(path) and [r["name"] for r in load_records(path)] == ["wave", "clap"]
    edited = mark_edited({**load_records(path)[0], "synonyms": ["wave", "hand wave"]})
    v2 = write_records(path, [edited, _record(1, "clap")], based_on=v1)
    assert v2 != v1
    before = path.read_bytes()
    with pytest.raises(StaleCorpusError, match="changed since it was read"):
        write_records(path, [_record(0, "wave")], based_on=v1)  # a second editor still holding v1
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_hand_edits_are_detected_by_hash_or_flag():
    rec = _record(0, "wave")
    assert not is_edited(rec)
    assert is_edited({**rec, "synonyms": ["wave", "waving"]})  # content changed, hash kept
    flagged = mark_edited(rec)
    assert flagged["edited"] is True and is_edited(flagged) and rec["edited"] is False


def test_curated_corpora_are_guarded_and_errors_name_the_line(tmp_path):
    curated = CURATED["nw-ucla"]
    before = curated.read_bytes()
    with pytest.raises(CorpusError, match="curated corpus"):
        write_records(curated, load_records(curated))
    assert curated.read_bytes() == before
    bad = tmp_path / "bad.jsonl"
    good = json.dumps(_record(0, "wave"))
    bad.write_text(good + "\n\n" + json.dumps({**_record(1, "clap"), "synonyms": []}) + "\n")
    with pytest.raises(CorpusError, match=r"bad.jsonl:3: field 'synonyms'"):
        load_records(bad)
    assert len(read_records(bad)) == 2  # unvalidated read (what a regeneration replaces)
    bad.write_text(good + "\n[1]\n")
    with pytest.raises(CorpusError, match=r"bad.jsonl:2: a record is a JSON object"):
        read_records(bad)


def test_a_failed_atomic_write_names_the_target_not_its_temporary_file(tmp_path):
    from corpus import atomic_write_text

    target = tmp_path / "corpus.jsonl"
    (target / "inside").mkdir(parents=True)  # a folder where the file should go: the rename fails
    with pytest.raises(OSError) as e:
        atomic_write_text(target, "x\n")
    assert e.value.filename == str(target) and ".tmp" not in str(e.value), str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]  # the temporary file is gone


def test_a_long_file_name_is_written_although_its_temporary_name_is_longer(tmp_path):
    from corpus import atomic_write_text

    target = tmp_path / ("c" * 244 + ".jsonl")  # 250 bytes: a legal name; '.NAME.XXXXXXXX.tmp' was not
    atomic_write_text(target, "x\n")
    assert target.read_text() == "x\n"


def test_the_cli_error_of_a_failed_write_names_the_file_given(tmp_path):
    from typer.testing import CliRunner

    from knowledge_engine.cli import app

    folder = tmp_path / "syn.txt"
    (folder / "keep").mkdir(parents=True)
    res = CliRunner().invoke(app, ["export", str(CURATED["nw-ucla"]), "--synonyms", str(folder), "--parts",
                                   str(tmp_path / "parts.txt")])
    assert res.exit_code == 1
    assert f"error: {folder}:" in " ".join(res.output.split()) and ".tmp" not in res.output, res.output
