"""Build the corpus that training reads from cached replies, and write it without losing hand edits.

Synonyms from every sample are merged, normalised (case, whitespace, quotes, trailing dots) and
de-duplicated; the first valid body-part reply gives the parts and the description. A class with
no valid reply gets a plainly worded fallback, listed in the record's `fallback` field and reported
by `generate` and `validate`, never passed off as generated text.
"""

from __future__ import annotations

import json
from pathlib import Path

from corpus import (
    PART_NAMES,
    ClassPrompts,
    CorpusError,
    content_hash,
    dump_record,
    is_edited,
    read_records,
    validate_record,
)
from knowledge_engine.cache import Cache
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.generate import Request
from knowledge_engine.text_checks import norm_name, norm_sentence  # noqa: F401 (re-exported for older imports)


def merge_synonyms(name: str, replies: list[list[str]], other_names: set[str]) -> list[str]:
    """The class name first, then every new synonym in order of first appearance."""
    out, seen = [norm_name(name)], {norm_name(name)}
    for synonyms in replies:
        for s in synonyms:
            key = norm_name(s)
            if key and key not in seen and key not in other_names:
                seen.add(key)
                out.append(key)
    return out


def fallback_parts(name: str) -> dict[str, str]:
    """Generic but grammatical part texts for any class name (a verb, "hand waving", "pick up with one hand"):
    the name is quoted as the action's name, never fitted into the sentence as a verb."""
    return {p: f"The {p} {'moves' if p == 'head' else 'move'} during the action \"{name}\"." for p in PART_NAMES}


def fallback_description(name: str) -> str:
    return f"A person does the action \"{name}\"."


def build_record(class_id: int, name: str, rows: list[dict], model: str, other_names: set[str]) -> dict:
    """One schema-valid corpus record from the cached rows of one class."""
    choices = [c for row in rows if row.get("status") == "ok" for c in row["choices"]]
    synonyms = merge_synonyms(name, [c["synonyms"] for c in choices if "synonyms" in c], other_names)
    parts_reply = next((c for c in choices if "head" in c), None)
    fallback = []
    if len(synonyms) == 1:
        fallback.append("synonyms")
    if parts_reply is None:
        fallback += ["parts", "description"]
        parts, description = fallback_parts(name), fallback_description(name)
    else:
        parts = {p: norm_sentence(parts_reply[p]) for p in PART_NAMES}
        description = norm_sentence(parts_reply["description"])
    rec = ClassPrompts(class_id=class_id, name=name, synonyms=tuple(synonyms), parts=parts,
                       description=description, source="generated", model=model, edited=False)
    record = json.loads(dump_record(rec))
    record["content_hash"] = content_hash(record)
    if fallback:
        record["fallback"] = fallback
    validate_record(record, f"assembled record for class {class_id} {name!r}")
    return record


def assemble(classes: list[str], requests: list[Request], cache: Cache, model: str) -> list[dict]:
    by_class: dict[int, list[dict]] = {}
    for r in requests:
        row = cache.get(r.key)
        if row is not None:
            by_class.setdefault(r.class_id, []).append(row)
    names = {norm_name(n) for n in classes}
    return [build_record(cid, name, by_class.get(cid, []), model, names - {norm_name(name)})
            for cid, name in enumerate(classes)]


def keep_edits(new: list[dict], path: Path, overwrite_edits: bool) -> tuple[list[dict], list[str]]:
    """Replace regenerated records by their hand-edited versions in `path` (matched by class name)."""
    if overwrite_edits or not path.is_file():
        return new, []
    old = {norm_name(str(r.get("name", ""))): r for r in read_records(path)}
    out, kept = [], []
    for rec in new:
        prev = old.get(norm_name(rec["name"]))
        if prev is not None and is_edited(prev):
            prev = {**prev, "class_id": rec["class_id"], "edited": True}
            try:
                validate_record(prev, f"{path}: hand-edited record {rec['name']!r}")
            except CorpusError as e:
                raise KnowledgeEngineError(
                    f"{e}; fix it (`pcle prompts edit`) or pass --overwrite-edits; the corpus is unchanged "
                    "and every reply is cached") from None
            out.append(prev)
            kept.append(rec["name"])
        else:
            out.append(rec)
    return out, kept
