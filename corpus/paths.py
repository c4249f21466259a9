"""Where the corpus format and the shipped corpora live (`prompts/`), and which corpora are curated."""

from __future__ import annotations

from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"
SCHEMA_PATH = PROMPTS_DIR / "corpus.schema.json"
# Curated corpora shipped with the project, by dataset name.
CURATED = {
    "ntu60": PROMPTS_DIR / "ntu120.jsonl",  # NTU60's classes are NTU120's first 60
    "ntu120": PROMPTS_DIR / "ntu120.jsonl",
    "nw-ucla": PROMPTS_DIR / "nw-ucla.jsonl",
}


def is_curated(path: str | Path) -> bool:
    """True for a corpus shipped in prompts/ (hand-made; commands never overwrite it)."""
    return Path(path).resolve() in {p.resolve() for p in CURATED.values()}


def is_shipped(path: str | Path) -> bool:
    """An existing file shipped under prompts/ (class lists, templates, the schema, curated corpora):
    anything there but prompts/generated/ and prompts/cache/, which commands write. `export --synonyms
    prompts/classes/nw-ucla.txt` once replaced a class list."""
    root, target = PROMPTS_DIR.resolve(), Path(path).resolve()
    if not target.is_file() or not target.is_relative_to(root):
        return False
    return target.relative_to(root).parts[0] not in ("generated", "cache")
