"""The prompt corpus contract: the one interface between the knowledge engine (stage 1, which writes
corpora) and the recognizer (stage 2, which reads them).

A corpus is JSONL, one record per action class, validated against `prompts/corpus.schema.json`:

- `schema`: the schema, `PART_NAMES`, `validate_record` (errors name file:line and the field), `CorpusError`;
- `records`: typed records (`ClassPrompts`) for training, `load_corpus`, matching to a dataset's classes;
- `files`: UTF-8 reading, `load_records` / `read_records` (dicts), atomic `write_records` with the curated
  guard and a version check against concurrent editors;
- `edits`: the content hash that detects hand edits and the `edited` flag;
- `text_encoder`: the narrow encoder interface the corpus checks embed texts with;
- `paths`: `prompts/`, the schema file, the curated corpora;
- `interrupt`: SIGTERM handled like Ctrl-C, for the commands of both stages.

Both stages import from here; `corpus` imports neither at module level.
"""

from corpus.edits import CONTENT_FIELDS, content_hash, hand_edited, hash_differs, is_edited, mark_edited
from corpus.files import (
    StaleCorpusError,
    atomic_write,
    atomic_write_text,
    corpus_version,
    load_records,
    read_lines,
    read_records,
    read_utf8,
    refuse_curated,
    write_records,
)
from corpus.paths import CURATED, PROMPTS_DIR, SCHEMA_PATH, is_curated
from corpus.records import PART_GROUPS, ClassPrompts, dump_record, load_corpus, norm_class_name, select_classes
from corpus.schema import PART_NAMES, CorpusError, schema, validate_record
from corpus.text_encoder import TextEncoder

__all__ = [
    "CONTENT_FIELDS", "CURATED", "PART_GROUPS", "PART_NAMES", "PROMPTS_DIR", "SCHEMA_PATH", "ClassPrompts",
    "CorpusError", "StaleCorpusError", "TextEncoder", "atomic_write", "atomic_write_text", "content_hash",
    "corpus_version", "dump_record", "hand_edited", "hash_differs", "is_curated", "is_edited", "load_corpus",
    "load_records",
    "mark_edited", "norm_class_name", "read_lines", "read_records", "read_utf8", "refuse_curated", "schema",
    "select_classes", "validate_record", "write_records",
]
