"""Read-only views of a corpus: `show` tables, `validate` checks and `diff` between two corpora."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from corpus import PART_NAMES, CorpusError, content_hash, read_lines, validate_record
from knowledge_engine.assemble import norm_name
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.issues import identical_part_issues
from knowledge_engine.text_checks import record_texts, template_examples, text_problems


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    where: str
    message: str
    check: str = "validate"  # the check's name, shown by `lint`

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


def find_record(records: list[dict], ref: str) -> dict:
    """A record by class id (digits) or by name (case-insensitive)."""
    for rec in records:
        if (ref.isdigit() and rec["class_id"] == int(ref)) or norm_name(rec["name"]) == norm_name(ref):
            return rec
    raise KnowledgeEngineError(f"no class {ref!r} in the corpus (give a class id or a name)")


def validate_corpus(path: Path, class_names: list[str] | None = None) -> list[Finding]:
    """Schema plus content checks: blanks, duplicates, synonyms that name another class."""
    findings: list[Finding] = []
    records: list[tuple[str, dict]] = []
    for lineno, line in read_lines(path):
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
            validate_record(rec, where)
        except json.JSONDecodeError as e:
            findings.append(Finding("error", where, f"not valid JSON ({e.msg} at column {e.colno})"))
            continue
        except CorpusError as e:
            findings.append(Finding("error", where, str(e).removeprefix(f"{where}: ")))
            continue
        records.append((where, rec))
    if not records and not findings:
        findings.append(Finding("error", str(path), "corpus is empty"))
    return findings + check_records(records, class_names, path) + identical_parts(records, path)


def identical_parts(records: list[tuple[str, dict]], path: Path) -> list[Finding]:
    """Warnings for part texts two classes share (NW-UCLA donning/doffing legs): without the class-name
    prefix the recognizer adds, their part targets would contradict each other."""
    return [Finding("warning", f"{path}: {i.where}", i.message, "identical-part")
            for i in identical_part_issues([rec for _, rec in records])]


def check_records(records: list[tuple[str, dict]], class_names: list[str] | None, path: Path) -> list[Finding]:
    """The content checks of schema-valid records (`where`, record): `validate` and `edit` share them."""
    findings = [f for where, rec in records for f in _record_findings(where, rec)]
    return findings + _cross_findings(records, class_names, path)


def _record_findings(where: str, rec: dict) -> list[Finding]:
    out = []
    texts = {"name": rec["name"], "description": rec["description"],
             **{f"parts.{p}": rec["parts"][p] for p in PART_NAMES},
             **{f"synonyms.{i}": s for i, s in enumerate(rec["synonyms"])}}
    out += [Finding("error", where, f"field '{k}' is blank") for k, v in texts.items() if not v.strip()]
    examples = template_examples()
    out += [Finding(p.level, where, f"{field}: {p.message}", p.check) for field, text in record_texts(rec)
            for p in text_problems(text, examples, rec["name"])]
    normed = [norm_name(s) for s in rec["synonyms"]]
    dups = sorted({s for s in normed if normed.count(s) > 1})
    if dups:
        out.append(Finding("error", where, f"duplicate synonyms {dups}"))
    if rec.get("fallback"):
        out.append(Finding("warning", where, f"class {rec['name']!r}: {rec['fallback']} are fallback text "
                                             "(the LLM gave no valid reply); edit them by hand"))
    hand_edited = rec.get("content_hash") != content_hash(rec)
    if rec.get("source") == "generated" and not rec.get("edited") and hand_edited:
        out.append(Finding("warning", where, "edited by hand (content hash differs); regeneration keeps it"))
    return out


def _cross_findings(records: list[tuple[str, dict]], class_names: list[str] | None,
                    path: Path) -> list[Finding]:
    out = []
    names = {norm_name(r["name"]): r["name"] for _, r in records}
    seen_ids: dict[int, str] = {}
    seen_names: set[str] = set()
    for where, rec in records:
        if rec["class_id"] in seen_ids:
            first = seen_ids[rec["class_id"]]
            out.append(Finding("error", where, f"duplicate class_id {rec['class_id']} (also at {first})"))
        seen_ids[rec["class_id"]] = where
        if norm_name(rec["name"]) in seen_names:
            out.append(Finding("error", where, f"duplicate class name {rec['name']!r}"))
        seen_names.add(norm_name(rec["name"]))
        for s in rec["synonyms"]:
            other = names.get(norm_name(s))
            if other is not None and norm_name(other) != norm_name(rec["name"]):
                out.append(Finding("error", where, f"synonym {s!r} is the name of another class"))
    if class_names is not None:
        for label, name in enumerate(class_names):
            if norm_name(name) not in seen_names:
                out.append(Finding("error", str(path), f"no record for class {name!r} (label {label})"))
    return out


def corpus_table(records: list[dict], title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for col in ("id", "name", "synonyms", "description", "flags"):
        table.add_column(col, overflow="fold")
    for r in records:
        flags = ", ".join(f for f, on in (("edited", r.get("edited")), ("fallback", r.get("fallback"))) if on)
        table.add_row(str(r["class_id"]), r["name"], "; ".join(r["synonyms"]), r["description"], flags)
    return table


def record_table(rec: dict) -> Table:
    table = Table(title=f"class {rec['class_id']}: {rec['name']}", show_header=False, show_lines=True)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("synonyms", "\n".join(rec["synonyms"]))
    for p in PART_NAMES:
        table.add_row(p, rec["parts"][p])
    table.add_row("description", rec["description"])
    for key in ("source", "model", "edited", "fallback"):
        if key in rec:
            table.add_row(key, str(rec[key]))
    return table


def diff_records(old: list[dict], new: list[dict]) -> list[str]:
    """Human-readable differences, by class name; empty when the contents agree."""
    a = {norm_name(r["name"]): r for r in old}
    b = {norm_name(r["name"]): r for r in new}
    lines = [f"- class {a[k]['name']!r} only in the first" for k in a if k not in b]
    lines += [f"+ class {b[k]['name']!r} only in the second" for k in b if k not in a]
    for k in (k for k in a if k in b):
        lines += _field_diff(a[k], b[k])
    return lines


def _field_diff(x: dict, y: dict) -> list[str]:
    out = []
    head = f"~ {x['name']}"
    sx, sy = [norm_name(s) for s in x["synonyms"]], [norm_name(s) for s in y["synonyms"]]
    gone, added = [s for s in sx if s not in sy], [s for s in sy if s not in sx]
    if gone or added:
        out.append(f"{head}: synonyms -{gone} +{added}")
    for p in PART_NAMES:
        if x["parts"][p] != y["parts"][p]:
            out.append(f"{head}: {p}: {x['parts'][p]!r} -> {y['parts'][p]!r}")
    if x["description"] != y["description"]:
        out.append(f"{head}: description: {x['description']!r} -> {y['description']!r}")
    return out
