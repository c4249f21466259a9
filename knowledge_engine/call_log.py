"""The per-call log: one JSON line per backend call, beside the cache (`<cache stem>.calls.jsonl`).

What `llm logs` keeps, so that a bad corpus can be traced to what the server was asked and said:
the prompt (messages and sampling), the reply (choices with finish reasons), latency, HTTP status,
the transport error if any, the model id the server reports and the token usage. The API key,
credentials in the URL and custom header values never reach it (the URL is stored without them).
Unlike the cache, the log is only for reading: nothing is resumed from it, and deleting it is safe.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from knowledge_engine.backends.base import Backend, Call, Completion, redact
from knowledge_engine.errors import KnowledgeEngineError


def log_path(cache: Path) -> Path:
    """`prompts/cache/nw-ucla-m.jsonl` -> `prompts/cache/nw-ucla-m.calls.jsonl`."""
    return cache.with_name(cache.stem + ".calls.jsonl")


class CallLog:
    def __init__(self, path: Path, secrets: list[str | None] = ()) -> None:
        self.path = path
        self._secrets = [s for s in secrets if s]
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the whole run

    def write(self, key: str, class_name: str, template: str, attempt: int, call: Call, latency: float,
              backend: Backend, completion: Completion | None = None, error: Exception | None = None) -> None:
        s = call.sampling
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "key": key,
            "class": class_name,
            "template": template,
            "attempt": attempt,
            "backend": backend.kind,
            "url": backend.shown_url,
            "model": backend.model,
            "structured": backend.active_structured,
            "messages": call.messages,
            "sampling": {"n": s.n, "seed": s.seed, "temperature": s.temperature, "top_p": s.top_p,
                         "max_tokens": s.max_tokens},
            "latency_s": round(latency, 4),
            "status": getattr(error, "status", None) if completion is None else completion.status,
            "server_model": completion.server_model if completion is not None else None,
            "usage": completion.usage if completion is not None else {},
            "choices": [{"text": c.text, "finish_reason": c.finish_reason} for c in completion.choices]
            if completion is not None else [],
            "error": None if error is None else f"{type(error).__name__}: {error}",
        }
        line = json.dumps(entry, ensure_ascii=False)
        self._file.write(redact(line, self._secrets) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_log(path: Path) -> list[dict]:
    """The entries of a call log (a cache file is mapped to its log); a torn last line is skipped."""
    if path.is_file() and not path.name.endswith(".calls.jsonl") and log_path(path).is_file():
        path = log_path(path)
    if not path.is_file():
        raise KnowledgeEngineError(f"{path}: call log not found (it is written beside the cache, "
                                   "<cache>.calls.jsonl, by `pcle prompts generate`)")
    entries = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise KnowledgeEngineError(f"{path}: cannot read ({e.strerror})") from None
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a killed run
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def select(entries: list[dict], cls: str | None = None, errors_only: bool = False,
           limit: int | None = None) -> list[dict]:
    """Entries whose class contains `cls` (case-insensitive), only failed calls with `errors_only`,
    the last `limit` of them."""
    out = [e for e in entries if (not cls or cls.lower() in str(e.get("class", "")).lower())
           and (not errors_only or e.get("error"))]
    return out[-limit:] if limit else out

