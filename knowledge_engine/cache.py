"""Append-only JSONL cache of LLM requests and their replies, keyed by a SHA-256 of the request.

One row per finished request, written and flushed as soon as it finishes, so a crash or Ctrl-C
loses no completed request. A request that needs several calls (a server that returns one choice
per call, invalid replies asked again) also gets a `partial` row after each call, so a kill loses
at most the calls in flight; the last row of a key wins, and `tidy` drops the superseded ones.

Lines that cannot be read back (a torn write from a killed process, a row missing its fields) are
reported once, moved to `<cache>.corrupt` and compacted away, so the warning does not repeat on
every run. A run holds `<cache>.lock` (`filelock`) from start to end:
a second run on the same cache waits, then finds every reply cached and sends nothing.

Besides request rows the cache holds `meta` rows (key `meta:...`), e.g. which structured-output
mode a server accepted, so the next run does not ask again with one it rejects.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from corpus import atomic_write_text

ROW_VERSION = 1
META_PREFIX = "meta:"


def request_key(request: dict) -> str:
    """SHA-256 of the canonical request: sorted keys, no whitespace, so equal requests hash equal."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def cache_lock(path: Path) -> FileLock:
    """The lock a run holds on its cache (a sibling `.lock` file; flock-based, released on process death)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock")


def acquire(lock: FileLock, on_wait=None) -> None:
    """Take the lock; if another run holds it, say so once through `on_wait` and wait."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait()
        lock.acquire()


@dataclass
class Cache:
    path: Path
    rows: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    superseded: int = 0  # rows in the file that a later row of the same key replaces

    @classmethod
    def open(cls, path: str | Path, compact: bool = True) -> Cache:
        """Read the cache; with `compact` (the caller holds the lock) unreadable lines are moved aside."""
        cache = cls(Path(path))
        bad = cache._load()
        if bad and compact:
            cache._compact(bad)
        return cache

    def _load(self) -> list[bytes]:
        if not self.path.is_file():
            return []
        lines = self.path.read_bytes().split(b"\n")
        last = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
        bad = []
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            row, problem = parse_row(raw)
            if row is None:
                what = "truncated last line" if i == last and problem == "not JSON" else f"bad row ({problem})"
                self.warnings.append(f"{self.path}:{i + 1}: {what} ignored (an interrupted write?)")
                bad.append(raw)
                continue
            self.superseded += row["key"] in self.rows
            self.rows[row["key"]] = row
        return bad

    def _compact(self, bad: list[bytes]) -> None:
        """Rewrite the cache without its unreadable lines; those are appended to `<cache>.corrupt`."""
        aside = self.path.with_name(self.path.name + ".corrupt")
        with open(aside, "ab") as f:
            f.write(b"".join(raw + b"\n" for raw in bad))
        self.rewrite(list(self.rows.values()))
        self.superseded = 0
        self.warnings.append(f"{self.path}: compacted; {len(bad)} unreadable line(s) moved to {aside}")

    def rewrite(self, rows: list[dict]) -> None:
        """Replace the whole file atomically (compaction, `cache prune`)."""
        atomic_write_text(self.path, "".join(_dump(r) for r in rows))
        self.rows = {r["key"]: r for r in rows}

    def tidy(self) -> None:
        """Drop rows a later row replaced (a request's partial rows once it finished); atomic, and only
        when there are some. The caller holds the lock."""
        if self.superseded:
            self.rewrite(list(self.rows.values()))
            self.superseded = 0

    def get(self, key: str) -> dict | None:
        return self.rows.get(key)

    def requests(self) -> list[dict]:
        """Request rows (no meta rows)."""
        return [r for k, r in self.rows.items() if not k.startswith(META_PREFIX)]

    def meta(self, name: str) -> dict | None:
        return self.rows.get(META_PREFIX + name)

    def set_meta(self, name: str, value: dict) -> None:
        if (self.meta(name) or {}).get("value") != value:
            self.append({"key": META_PREFIX + name, "value": value})

    def append(self, row: dict) -> None:
        """Write one row and flush it to the OS before returning."""
        row = {"v": ROW_VERSION, **row}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            if f.tell() > 0 and not _ends_with_newline(self.path):
                f.write(b"\n")  # a torn line stays on its own line and is compacted on the next open
            f.write(_dump(row).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        self.superseded += row["key"] in self.rows
        self.rows[row["key"]] = row


def parse_row(raw: bytes) -> tuple[dict | None, str]:
    """A row, or None and what is wrong with it: request rows need a status and a list of choices."""
    try:
        row = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, "not JSON"
    if not isinstance(row, dict) or not isinstance(row.get("key"), str):
        return None, "no key"
    if row["key"].startswith(META_PREFIX):
        return row, ""
    if row.get("status") not in ("ok", "invalid", "partial") or not isinstance(row.get("choices"), list) \
            or not isinstance(row.get("request"), dict):
        return None, "missing status, request or choices"
    if not all(isinstance(c, dict) for c in row["choices"]):
        return None, "a choice is not an object"
    return row, ""


def _dump(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
