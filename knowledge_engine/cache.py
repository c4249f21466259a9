"""Append-only JSONL cache of LLM requests and their replies, keyed by a SHA-256 of the request.

One row per finished request, written and flushed as soon as it finishes, so a crash or Ctrl-C
loses no completed request. A torn last line (the process died mid-write) is reported and
ignored; the next append starts on a fresh line, so earlier rows are never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

ROW_VERSION = 1


def request_key(request: dict) -> str:
    """SHA-256 of the canonical request: sorted keys, no whitespace, so equal requests hash equal."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class Cache:
    path: Path
    rows: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | Path) -> Cache:
        cache = cls(Path(path))
        cache._load()
        return cache

    def _load(self) -> None:
        if not self.path.is_file():
            return
        lines = self.path.read_bytes().split(b"\n")
        last = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            row = _parse(raw)
            if row is None:
                what = "truncated last line" if i == last else "corrupt line"
                self.warnings.append(f"{self.path}:{i + 1}: {what} ignored (an interrupted write?)")
                continue
            self.rows[row["key"]] = row

    def get(self, key: str) -> dict | None:
        return self.rows.get(key)

    def append(self, row: dict) -> None:
        """Write one row and flush it to the OS before returning."""
        row = {"v": ROW_VERSION, **row}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
        with open(self.path, "ab") as f:
            if f.tell() > 0 and not _ends_with_newline(self.path):
                f.write(b"\n")  # a torn line stays on its own line and stays ignored
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        self.rows[row["key"]] = row


def _parse(raw: bytes) -> dict | None:
    try:
        row = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) and "key" in row else None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
