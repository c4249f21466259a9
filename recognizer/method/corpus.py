"""Prompt corpus: one JSONL record per action class, validated against `prompts/corpus.schema.json`.

This is the one interface between the knowledge engine (which writes corpora) and the recognizer
(which reads them). Errors name the file, the line and the field so that a hand edit gone wrong is
easy to find.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jsonschema

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
SCHEMA_PATH = PROMPTS_DIR / "corpus.schema.json"
PART_NAMES = ("head", "hands", "arms", "hips", "legs", "feet")
# The skeleton encoder pools four body-part groups; each group reads the text of these corpus parts.
PART_GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("head",),
    "hands_arms": ("hands", "arms"),
    "hips": ("hips",),
    "legs_feet": ("legs", "feet"),
}
# Curated corpora shipped with the project, by dataset name.
CURATED = {
    "ntu60": PROMPTS_DIR / "ntu120.jsonl",  # NTU60's classes are NTU120's first 60
    "ntu120": PROMPTS_DIR / "ntu120.jsonl",
    "nw-ucla": PROMPTS_DIR / "nw-ucla.jsonl",
}


class CorpusError(ValueError):
    """A corpus file is missing, malformed or does not match the dataset's classes."""


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


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validate_record(record: object, where: str) -> None:
    """Raise CorpusError naming `where` (file:line) and the offending field."""
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(record), key=lambda e: e.path)
    if errors:
        err = errors[0]
        field = ".".join(str(p) for p in err.absolute_path) or "(record)"
        raise CorpusError(f"{where}: field '{field}': {err.message}")


def read_utf8(path: Path) -> str:
    """The file as UTF-8 text; a CorpusError naming the file, line and byte when it is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                          "save the file as UTF-8") from None


def parse_line(line: str, where: str) -> ClassPrompts:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
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


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").split())


def select_classes(records: list[ClassPrompts], class_names: list[str], path: Path) -> list[ClassPrompts]:
    """Pick one record per dataset class, by name; renumber class_id to the dataset's labels."""
    by_name = {_norm(r.name): r for r in records}
    out = []
    for label, name in enumerate(class_names):
        rec = by_name.get(_norm(name))
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
