"""Hand edits: the content hash a generated record carries, and the `edited` flag.

`generate` stores the SHA-256 of a record's content; a record whose content no longer matches (someone
edited the file) or whose `edited` flag is set is a hand edit, and regeneration keeps it.
"""

from __future__ import annotations

import hashlib
import json

CONTENT_FIELDS = ("name", "synonyms", "parts", "description")


def content_hash(record: dict) -> str:
    """SHA-256 of the generated content; a mismatch later means someone edited the file by hand."""
    content = {k: record.get(k) for k in CONTENT_FIELDS}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def hash_differs(record: dict) -> bool:
    """The record's content no longer matches the hash stored when it was generated."""
    return record.get("content_hash") != content_hash(record)


def is_edited(record: dict) -> bool:
    return record.get("edited") is True or hash_differs(record)


def hand_edited(record: dict) -> bool:
    """What a reviewer calls edited: the flag is set, or generated content no longer matches its hash
    (a curated record, which has no hash, is edited only when flagged)."""
    return record.get("edited") is True or ("content_hash" in record and hash_differs(record))


def mark_edited(record: dict) -> dict:
    """A copy flagged `edited: true` (the stored hash stays: it records what was generated)."""
    return {**record, "edited": True}
