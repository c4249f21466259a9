"""GAP's text layout (Xiang et al., ICCV 2023), for exchanging corpora with its code.

- synonyms file: one line per class (line i = label i-1), comma-separated names;
- parts file: one line per class, `name;head;hand;arm;hip;leg;foot`.
GAP's layout has no one-sentence description: export drops it, import writes a plain
"A person does the action NAME." that `validate` accepts and a person can edit.
"""

from __future__ import annotations

import json
from pathlib import Path

from corpus import PART_NAMES, ClassPrompts, atomic_write_text, content_hash, dump_record, read_utf8, validate_record
from corpus.overwrite import refuse_output
from knowledge_engine.assemble import norm_name
from knowledge_engine.errors import KnowledgeEngineError


def _clean(text: str, sep: str) -> str:
    """Separators inside a field would break GAP's layout: replace them by a comma."""
    return " ".join(text.replace(sep, ",").split())


def export_gap(records: list[dict], synonyms_path: Path, parts_path: Path) -> None:
    """Both files are written atomically (missing folders are made); neither may be a curated corpus or a
    file a run folder owns."""
    refuse_output(synonyms_path, "--synonyms")
    refuse_output(parts_path, "--parts")
    records = sorted(records, key=lambda r: r["class_id"])
    syn_lines = [", ".join(" ".join(s.replace(",", " ").split()) for s in r["synonyms"]) for r in records]
    part_lines = [";".join([_clean(r["name"], ";"), *(_clean(r["parts"][p], ";") for p in PART_NAMES)])
                  for r in records]
    atomic_write_text(synonyms_path, "\n".join(syn_lines) + "\n")
    atomic_write_text(parts_path, "\n".join(part_lines) + "\n")


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise KnowledgeEngineError(f"{path}: file not found")
    return [line for line in read_utf8(path).splitlines() if line.strip()]


def import_gap(synonyms_path: Path, parts_path: Path, class_names: list[str] | None = None) -> list[dict]:
    """Records (source `imported`) from GAP's two files; line i of each is class i-1."""
    syn_lines, part_lines = _lines(synonyms_path), _lines(parts_path)
    if len(syn_lines) != len(part_lines):
        raise KnowledgeEngineError(f"{synonyms_path} has {len(syn_lines)} classes but {parts_path} has "
                                   f"{len(part_lines)}")
    if class_names is not None and len(class_names) != len(part_lines):
        raise KnowledgeEngineError(
            f"{parts_path}: {len(part_lines)} classes, the class list has {len(class_names)}")
    pairs = zip(syn_lines, part_lines, strict=True)
    return [_record(i, s, p, parts_path, class_names) for i, (s, p) in enumerate(pairs)]


def _record(i: int, syn_line: str, part_line: str, parts_path: Path, class_names: list[str] | None) -> dict:
    fields = [f.strip() for f in part_line.split(";")]
    if len(fields) != 1 + len(PART_NAMES):
        raise KnowledgeEngineError(f"{parts_path}:{i + 1}: expected 7 ';'-separated fields "
                                   f"(name;head;hand;arm;hip;leg;foot), found {len(fields)}")
    name = class_names[i] if class_names is not None else fields[0]
    synonyms, seen = [], set()
    for s in syn_line.split(","):
        if norm_name(s) and norm_name(s) not in seen:
            seen.add(norm_name(s))
            synonyms.append(" ".join(s.split()))
    rec = ClassPrompts(class_id=i, name=name, synonyms=tuple(synonyms or [name]),
                       parts=dict(zip(PART_NAMES, fields[1:], strict=True)),
                       description=f"A person does the action {name}.", source="imported", model=None,
                       edited=False)
    record = json.loads(dump_record(rec))
    record["content_hash"] = content_hash(record)
    validate_record(record, f"{parts_path}:{i + 1}")
    return record
