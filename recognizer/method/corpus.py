"""Stage 2's older name for the corpus contract, which now lives in the top-level package `corpus`
(shared with the knowledge engine); new code imports `corpus` directly."""

from corpus import (  # noqa: F401
    CURATED,
    PART_GROUPS,
    PART_NAMES,
    PROMPTS_DIR,
    SCHEMA_PATH,
    ClassPrompts,
    CorpusError,
    dump_record,
    load_corpus,
    read_utf8,
    schema,
    select_classes,
    validate_record,
)
from corpus.records import norm_class_name as _norm  # noqa: F401
from corpus.records import parse_line  # noqa: F401
