"""`pcle prompts cache stats|show|prune|export`: look into and tidy a generation cache.

The cache is the expensive part of a corpus (every reply a server was paid or waited for), so
`prune` only drops rows that no current template can ask for again, holds the cache lock while it
rewrites, and rewrites atomically.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from corpus import atomic_write_text, refuse_curated
from knowledge_engine.cache import Cache, acquire, cache_lock
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.templates import TEMPLATES_DIR, Template, load_template


def open_cache(path: Path) -> Cache:
    """Read-only view (no compaction: that needs the lock a run holds)."""
    if not path.is_file():
        raise KnowledgeEngineError(f"{path}: cache file not found")
    return Cache.open(path, compact=False)


def stats(cache: Cache) -> dict:
    rows = cache.requests()
    usage = [r.get("usage") or {} for r in rows]
    templates = Counter(f"{r['request'].get('template', {}).get('name')} "
                        f"v{r['request'].get('template', {}).get('version')}" for r in rows)
    return {
        "rows": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows),
        "invalid": sum(r["status"] == "invalid" for r in rows),
        "partial": sum(r["status"] == "partial" for r in rows),  # a killed run's unfinished requests
        "classes": len({r["request"].get("class") for r in rows}),
        "choices": sum(len(r["choices"]) for r in rows),
        "calls": sum(int(r.get("calls") or 0) for r in rows),
        "prompt_tokens": sum(int(u.get("prompt_tokens") or 0) for u in usage),
        "completion_tokens": sum(int(u.get("completion_tokens") or 0) for u in usage),
        "templates": dict(sorted(templates.items())),
        "models": dict(Counter(f"{r['request'].get('backend')}:{r['request'].get('model')}" for r in rows)),
        "structured": {k.split(":", 1)[1]: v.get("value") for k, v in cache.rows.items()
                       if k.startswith("meta:")},
        "unreadable_lines": len(cache.warnings),
    }


def show(cache: Cache, cls: str | None = None, text: str | None = None) -> list[dict]:
    """Rows whose class name contains `cls` and whose request or replies contain `text` (both
    case-insensitive)."""
    out = []
    for r in cache.requests():
        if cls and cls.lower() not in str(r["request"].get("class", "")).lower():
            continue
        if text and text.lower() not in json.dumps(r, ensure_ascii=False).lower():
            continue
        out.append(r)
    return out


def current_templates(refs: tuple[str, ...] | None) -> list[Template]:
    """The templates a run could ask with now: the given ones, or every template shipped."""
    if refs:
        return [load_template(r) for r in refs]
    return [load_template(str(p)) for p in sorted(TEMPLATES_DIR.glob("*.yaml"))]


def _asked_by(row: dict, templates: list[Template]) -> bool:
    t = row["request"].get("template") or {}
    return any((t.get("name"), t.get("version"), t.get("text")) == (c.name, c.version, c.text) for c in templates)


def prune(path: Path, templates: list[Template], dry_run: bool = False) -> tuple[int, int]:
    """Drop rows no current template asks for; (kept, dropped). Meta rows are kept."""
    lock = cache_lock(path)
    acquire(lock)
    try:
        cache = open_cache(path)
        keep = [r for k, r in cache.rows.items() if k.startswith("meta:") or _asked_by(r, templates)]
        dropped = len(cache.rows) - len(keep)
        if dropped and not dry_run:
            cache.rewrite(keep)
        return len(keep), dropped
    finally:
        lock.release()


def export(cache: Cache, out: Path, fmt: str = "jsonl") -> int:
    """One line per valid reply: class, template, model and the parsed reply; returns the line count."""
    lines = [{"class_id": r.get("class_id"), "class": r["request"].get("class"),
              "template": (r["request"].get("template") or {}).get("name"), "model": r["request"].get("model"),
              "reply": choice} for r in cache.requests() for choice in r["choices"]]
    if fmt == "jsonl":
        text = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["class_id", "class", "template", "model", "reply"])
        for x in lines:
            writer.writerow([x["class_id"], x["class"], x["template"], x["model"],
                             json.dumps(x["reply"], ensure_ascii=False)])
        text = buf.getvalue()
    else:
        raise KnowledgeEngineError(f"--format: {fmt!r} is not jsonl or csv")
    refuse_curated(out)
    atomic_write_text(out, text)
    return len(lines)
