"""`edit CLASS`: open one record in $EDITOR, validate on save, never leave an invalid corpus behind."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from corpus import CorpusError, load_records, read_records, validate_record, write_records
from knowledge_engine.assemble import norm_name
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.inspect_corpus import check_records, find_record


def editor_command() -> list[str]:
    cmd = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(cmd)


def edit_record(corpus: Path, ref: str, editor: list[str] | None = None) -> dict | None:
    """Edit one record; return the new record, or None when nothing changed.

    On invalid JSON or a schema error the corpus is left byte-for-byte unchanged and the
    KnowledgeEngineError says why.
    """
    records = load_records(corpus)
    rec = find_record(records, ref)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=f"class-{rec['class_id']}-",
                                     delete=False, encoding="utf-8") as f:
        json.dump(rec, f, indent=2, ensure_ascii=False)
        f.write("\n")
        tmp = Path(f.name)
    try:
        _run_editor(editor or editor_command(), tmp)
        new = _read_edited(tmp, rec, corpus)
    finally:
        tmp.unlink(missing_ok=True)
    if new == rec:
        return None
    new["edited"] = True
    updated = [new if r.get("class_id") == rec["class_id"] else r for r in read_records(corpus)]
    check_edit(corpus, updated, new)
    write_records(corpus, updated, allow_curated=True)  # editing by hand is how curated corpora are made
    return new


def check_edit(corpus: Path, records: list[dict], new: dict) -> None:
    """Reject an edit that `validate` would then report as an error (blank text, a synonym naming
    another class, ...): both run `check_records`."""
    where = f"{corpus} (class {new['class_id']} {new['name']!r})"
    findings = check_records([(where if r is new else f"class {r.get('class_id')}", r) for r in records],
                             None, corpus)
    errors = [f.message for f in findings if f.level == "error" and f.where == where]
    if errors:
        raise KnowledgeEngineError(f"{where}: {'; '.join(errors)}; corpus unchanged")


def _run_editor(cmd: list[str], path: Path) -> None:
    try:
        result = subprocess.run([*cmd, str(path)], check=False)
    except FileNotFoundError:
        raise KnowledgeEngineError(f"editor {cmd[0]!r} not found (set $EDITOR); corpus unchanged") from None
    if result.returncode != 0:
        raise KnowledgeEngineError(f"editor exited with code {result.returncode}; corpus unchanged")


def _read_edited(tmp: Path, old: dict, corpus: Path) -> dict:
    where = f"{corpus} (class {old['class_id']} {old['name']!r})"
    try:
        new = json.loads(tmp.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise KnowledgeEngineError(f"{where}: edited text is not UTF-8; corpus unchanged") from None
    except json.JSONDecodeError as e:
        raise KnowledgeEngineError(
            f"{where}: edited text is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); "
            "corpus unchanged") from None
    try:
        validate_record(new, where)
    except CorpusError as e:
        raise KnowledgeEngineError(f"{e}; corpus unchanged") from None
    if new["class_id"] != old["class_id"]:
        raise KnowledgeEngineError(f"{where}: class_id cannot change in an edit; corpus unchanged")
    if norm_name(new["name"]) != norm_name(old["name"]):
        raise KnowledgeEngineError(  # the name is the key: generate and validate match records by it
            f"{where}: the class name cannot change in an edit ({old['name']!r} -> {new['name']!r}); "
            "it must match the class list; corpus unchanged")
    return new
