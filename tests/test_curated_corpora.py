"""The curated prompt corpora and class lists shipped in prompts/ are complete and well-formed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus import PART_NAMES, CorpusError, load_corpus

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
CLASSES = PROMPTS / "classes"


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _names(name: str) -> list[str]:
    return [
        line.strip()
        for line in (CLASSES / f"{name}.txt").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


CORPORA = [("ntu120.jsonl", "ntu120", 120), ("nw-ucla.jsonl", "nw-ucla", 10)]


def test_ntu_class_lists():
    ntu120 = _names("ntu120")
    assert len(ntu120) == 120
    assert len({_norm(n) for n in ntu120}) == 120
    assert ntu120[0] == "drink water"
    assert ntu120[59] == "walking apart from each other"
    assert ntu120[119] == "finger-guessing game (playing rock-paper-scissors)"
    assert _names("ntu60") == ntu120[:60]


@pytest.mark.parametrize(("corpus", "classes", "count"), CORPORA)
def test_curated_corpus_is_complete(corpus, classes, count):
    names = _names(classes)
    assert len(names) == count
    records = load_corpus(PROMPTS / corpus, names)
    assert [r.class_id for r in records] == list(range(count))
    assert [r.name for r in records] == names
    all_names = {_norm(n) for n in names}
    for rec in records:
        synonyms = {_norm(s) for s in rec.synonyms}
        assert len(synonyms) == len(rec.synonyms), f"{rec.name}: duplicate synonyms"
        assert len(synonyms) >= 8, f"{rec.name}: only {len(synonyms)} synonyms"
        assert all(s for s in synonyms), f"{rec.name}: empty synonym"
        clashes = (synonyms & all_names) - {_norm(rec.name)}
        assert not clashes, f"{rec.name}: synonyms equal other class names {clashes}"
        for part in PART_NAMES:
            assert rec.parts[part].strip(), f"{rec.name}: empty part '{part}'"
        assert rec.description.strip()
        assert rec.source == "curated"
        assert rec.model is None
        assert rec.edited is False


@pytest.mark.parametrize(("corpus", "classes", "count"), CORPORA)
def test_curated_corpus_ids_follow_line_order(corpus, classes, count):
    lines = (PROMPTS / corpus).read_text(encoding="utf-8").splitlines()
    assert len(lines) == count
    assert [json.loads(line)["class_id"] for line in lines] == list(range(count))


def test_ntu60_served_by_ntu120_corpus():
    records = load_corpus(PROMPTS / "ntu120.jsonl", _names("ntu60"))
    assert len(records) == 60


def test_synthetic_classes_found_in_ntu120_corpus():
    names = _names("synthetic")
    assert names
    records = load_corpus(PROMPTS / "ntu120.jsonl", names)
    assert [_norm(r.name) for r in records] == [_norm(n) for n in names]
    assert [r.class_id for r in records] == list(range(len(names)))


def _good_record(class_id: int = 0) -> dict:
    return {
        "class_id": class_id,
        "name": f"action {class_id}",
        "synonyms": ["doing the action"],
        "parts": {p: f"the {p} move" for p in PART_NAMES},
        "description": "A person does the action.",
        "source": "curated",
        "model": None,
        "edited": False,
    }


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_error_names_file_line_and_missing_part(tmp_path):
    broken = _good_record(1)
    del broken["parts"]["feet"]
    path = _write(tmp_path / "corpus.jsonl", [json.dumps(_good_record(0)), json.dumps(broken)])
    with pytest.raises(CorpusError) as exc:
        load_corpus(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert ":2" in msg
    assert "parts" in msg
    assert "feet" in msg


def test_error_names_file_and_line_for_bad_json(tmp_path):
    path = _write(
        tmp_path / "corpus.jsonl",
        [json.dumps(_good_record(0)), json.dumps(_good_record(1)), '{"class_id": 2, "name": '],
    )
    with pytest.raises(CorpusError) as exc:
        load_corpus(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert ":3" in msg
    assert "JSON" in msg


def test_error_names_file_line_and_empty_synonyms(tmp_path):
    broken = _good_record(0)
    broken["synonyms"] = []
    path = _write(tmp_path / "corpus.jsonl", [json.dumps(broken)])
    with pytest.raises(CorpusError) as exc:
        load_corpus(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert ":1" in msg
    assert "synonyms" in msg
