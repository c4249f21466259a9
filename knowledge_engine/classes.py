"""Class-name files: one name per line, line i is label i-1 (`prompts/classes/<dataset>.txt`)."""

from __future__ import annotations

from pathlib import Path

from corpus import PROMPTS_DIR, CorpusError, read_utf8
from knowledge_engine.errors import KnowledgeEngineError

CLASSES_DIR = PROMPTS_DIR / "classes"


def class_file(dataset: str | None, path: str | Path | None = None) -> Path:
    """`--classes FILE` wins; otherwise the dataset's shipped list."""
    if path is not None:
        return Path(path)
    if not dataset:
        raise KnowledgeEngineError("give --dataset (e.g. nw-ucla, ntu60, ntu120) or --classes FILE")
    return CLASSES_DIR / f"{dataset}.txt"


def load_classes(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CLASSES_DIR.glob("*.txt")))
        raise KnowledgeEngineError(f"{path}: class list not found (shipped lists: {known})")
    try:
        text = read_utf8(path)
    except CorpusError as e:
        raise KnowledgeEngineError(str(e)) from None
    names = [" ".join(line.split()) for line in text.splitlines()]
    if any(not n for n in names[: len(names) - _trailing_blanks(names)]):
        raise KnowledgeEngineError(f"{path}: blank line inside the class list (line i is label i-1)")
    names = [n for n in names if n]
    if not names:
        raise KnowledgeEngineError(f"{path}: class list is empty")
    seen: set[str] = set()
    for i, n in enumerate(names, start=1):
        if n.lower() in seen:
            raise KnowledgeEngineError(f"{path}:{i}: duplicate class name {n!r}")
        seen.add(n.lower())
    return names


def _trailing_blanks(names: list[str]) -> int:
    count = 0
    for n in reversed(names):
        if n:
            break
        count += 1
    return count
