"""The corpus record schema (`prompts/corpus.schema.json`) and the one validation both stages run.

Errors name the file, the line and the field so that a hand edit gone wrong is easy to find.
"""

from __future__ import annotations

import json
from functools import lru_cache

import jsonschema

from corpus.paths import SCHEMA_PATH

PART_NAMES = ("head", "hands", "arms", "hips", "legs", "feet")


class CorpusError(ValueError):
    """A corpus file is missing, malformed or does not match the dataset's classes."""


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def validate_record(record: object, where: str) -> None:
    """Raise CorpusError naming `where` (file:line) and the offending field."""
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(record), key=lambda e: e.path)
    if errors:
        err = errors[0]
        field = ".".join(str(p) for p in err.absolute_path) or "(record)"
        raise CorpusError(f"{where}: field '{field}': {err.message}")
