"""Reading and writing corpus files: UTF-8 checked, schema-validated, written atomically.

A write goes to a temporary file in the same folder and is renamed over the target, so a reader (or a
crash, Ctrl-C, SIGTERM) never sees half a corpus. The curated corpora shipped in prompts/ are never
overwritten by a command; hand edits (`pcle prompts edit`, the review page with --allow-curated) are the
exception and say so with `allow_curated`. A write can also name the version of the file it was based
on: when the file changed since, the write is refused (two editors never lose one's change silently).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from corpus.paths import is_curated, is_shipped
from corpus.schema import CorpusError, validate_record


class StaleCorpusError(CorpusError):
    """The file changed on disk since the version a write was based on."""


@contextmanager
def errors_name(target: str | Path) -> Iterator[None]:
    """An OSError inside names `target`, the file the user asked for, not the temporary file the write went
    through (`.corpus.jsonl.k3j2.tmp -> corpus.jsonl: Is a directory` told nobody what to fix)."""
    try:
        yield
    except OSError as e:
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(target)) from None


def temp_prefix(path: Path) -> str:
    """`.NAME.` for the temporary file beside `path`, cut so that the temporary name (8 random characters
    and `.tmp` added) stays within the usual 255-byte limit whenever `path`'s own name does."""
    return "." + path.name.encode("utf-8")[: 255 - 15].decode("utf-8", "ignore") + "."


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call write(tmp_path) then rename over `path` (same directory, so the rename is atomic). Errors name
    `path`."""
    path = Path(path)
    with errors_name(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
        os.close(fd)
        try:
            write(tmp)
            with open(tmp, "rb+") as f:  # on disk before the rename, so a power cut cannot leave an empty file
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_utf8(path: Path) -> str:
    """The file as UTF-8 text; a CorpusError naming the file, line and byte when it is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                          "save the file as UTF-8") from None


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line; a CorpusError when the file does not exist."""
    if not Path(path).is_file():
        raise CorpusError(f"{path}: corpus file not found")
    lines = read_utf8(path).splitlines()
    return [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]


def parse_json_line(line: str, where: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None


def read_records(path: Path) -> list[dict]:
    """Records of an existing corpus as dicts, not schema-checked (a regeneration replaces invalid ones);
    a line that is not a JSON object is an error naming file:line."""
    records = []
    for lineno, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        rec = parse_json_line(line, f"{path}:{lineno}")
        if not isinstance(rec, dict):
            raise CorpusError(f"{path}:{lineno}: a record is a JSON object")
        records.append(rec)
    return records


def load_records(path: Path) -> list[dict]:
    """Schema-valid records or a CorpusError naming file:line and the field."""
    records = []
    for lineno, line in read_lines(path):
        where = f"{path}:{lineno}"
        rec = parse_json_line(line, where)
        validate_record(rec, where)
        records.append(rec)
    return records


def corpus_version(path: Path) -> str:
    """A short fingerprint of the file's bytes ("absent" when there is no file): what a write is based on."""
    path = Path(path)
    if not path.is_file():
        return "absent"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def refuse_curated(path: Path) -> None:
    """The one guard every writer calls: the curated corpora shipped in prompts/ are never overwritten
    by a command (hand edits through `pcle prompts edit` are the exception: `allow_curated`)."""
    if is_curated(path):
        raise CorpusError(f"{path}: that is a curated corpus and is never overwritten; write to "
                          "another file (generated corpora go under prompts/generated/)")
    if is_shipped(path):
        raise CorpusError(f"{path}: that file is shipped in prompts/ (class lists, templates, schema) and is "
                          "never overwritten by a command; write to another file")


def dump_records(records: list[dict]) -> str:
    return "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)


def write_records(path: Path, records: list[dict], allow_curated: bool = False,
                  based_on: str | None = None) -> str:
    """Write a corpus atomically; return its new version.

    `based_on`: the version (corpus_version) the caller read; when the file has changed since, nothing
    is written and StaleCorpusError says so."""
    if not allow_curated:
        refuse_curated(path)
    if based_on is not None and corpus_version(path) != based_on:
        raise StaleCorpusError(f"{path}: the file changed since it was read (another editor saved it); "
                               "nothing written, reload to see the current version")
    text = dump_records(records)
    atomic_write_text(path, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
