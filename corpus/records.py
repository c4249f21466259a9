"""Typed corpus records (`ClassPrompts`) for the recognizer: read, validated, matched to a dataset's classes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from corpus.files import parse_json_line, read_utf8
from corpus.schema import PART_NAMES, CorpusError, validate_record

# The skeleton encoder pools four body-part groups; each group reads the text of these corpus parts.
PART_GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("head",),
    "hands_arms": ("hands", "arms"),
    "hips": ("hips",),
    "legs_feet": ("legs", "feet"),
}


@dataclass(frozen=True)
class ClassPrompts:
    class_id: int
    name: str
    synonyms: tuple[str, ...]
    parts: dict[str, str]
    description: str
    source: str = "curated"
    model: str | None = None
    edited: bool = False

    def part_text(self, group: str) -> str:
        """Text for one of the four skeleton part groups (see PART_GROUPS)."""
        return " ".join(self.parts[p].strip() for p in PART_GROUPS[group])


def parse_line(line: str, where: str) -> ClassPrompts:
    record = parse_json_line(line, where)
    validate_record(record, where)
    return ClassPrompts(
        class_id=record["class_id"],
        name=record["name"],
        synonyms=tuple(s.strip() for s in record["synonyms"]),
        parts={p: record["parts"][p] for p in PART_NAMES},
        description=record["description"],
        source=record["source"],
        model=record["model"],
        edited=record["edited"],
    )


def load_corpus(path: str | Path, class_names: list[str] | None = None) -> list[ClassPrompts]:
    """Read and validate a corpus; return it ordered by class_id.

    With `class_names`, the corpus must cover exactly those classes: records are matched by name
    (case-insensitive) when the ids differ, so a corpus for NTU120 serves NTU60 and the embedded
    default too.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: corpus file not found")
    records: list[ClassPrompts] = []
    for lineno, line in enumerate(read_utf8(path).splitlines(), start=1):
        if line.strip():
            records.append(parse_line(line, f"{path}:{lineno}"))
    if not records:
        raise CorpusError(f"{path}: corpus is empty")
    ids = [r.class_id for r in records]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise CorpusError(f"{path}: duplicate class_id {sorted(dup)[0]}")
    records.sort(key=lambda r: r.class_id)
    if class_names is None:
        return records
    return select_classes(records, class_names, path)


def norm_class_name(name: str) -> str:
    """How a dataset's class name matches a record's: case, underscores and spacing ignored."""
    return " ".join(name.lower().replace("_", " ").split())


def select_classes(records: list[ClassPrompts], class_names: list[str], path: Path) -> list[ClassPrompts]:
    """Pick one record per dataset class, by name; renumber class_id to the dataset's labels."""
    by_name = {norm_class_name(r.name): r for r in records}
    out = []
    for label, name in enumerate(class_names):
        rec = by_name.get(norm_class_name(name))
        if rec is None:
            raise CorpusError(f"{path}: no record for class '{name}' (label {label})")
        out.append(ClassPrompts(**{**rec.__dict__, "class_id": label}))
    return out


def dump_record(rec: ClassPrompts) -> str:
    """One JSONL line in the schema's field order."""
    return json.dumps(
        {
            "class_id": rec.class_id,
            "name": rec.name,
            "synonyms": list(rec.synonyms),
            "parts": rec.parts,
            "description": rec.description,
            "source": rec.source,
            "model": rec.model,
            "edited": rec.edited,
        },
        ensure_ascii=False,
    )
