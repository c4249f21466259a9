"""`pcle prompts lint CORPUS`: what a person should read before hand-editing a corpus.

On top of `validate`'s checks (schema, blanks, duplicate synonyms, synonyms naming another class):
classes that fell back to generic text, near-duplicate synonyms or descriptions across classes
(cosine similarity of the configured text encoder's embeddings at or above a threshold), identical
part texts across classes, the shared text checks of `knowledge_engine.text_checks` (leftover
template placeholders, stray braces and punctuation, copies or near-copies of a template's example),
and texts too short or too long to describe an action. Errors are things the recognizer should not
be trained on; warnings are worth a look.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corpus import PART_NAMES, CorpusError, load_records
from corpus.text_encoder import TextEncoder, cosine_matrix, recognizer_encoder
from knowledge_engine.assemble import norm_name
from knowledge_engine.inspect_corpus import validate_corpus
from knowledge_engine.issues import Issue, identical_part_issues
from knowledge_engine.issues import label as _label

# Word counts outside these bounds are flagged (a synonym is a short name; a part text is a phrase).
LENGTHS = {"synonym": (1, 12), "part": (3, 40), "description": (4, 60)}


@dataclass(frozen=True)
class LintOptions:
    threshold: float = 0.9  # cosine similarity at or above which two texts count as near-duplicates
    encoder: str = "minilm"  # text encoder kind (recognizer TextConfig.encoder); "none" skips embeddings
    encoder_path: str | None = None


def lint_corpus(path: Path, opts: LintOptions = LintOptions(), class_names: list[str] | None = None,
                encoder: TextEncoder | None = None) -> list[Issue]:
    """All issues of a corpus, errors first. A corpus whose records cannot be read gets only
    `validate`'s findings (fix those first). `encoder` embeds texts for the near-duplicate checks
    (default: the recognizer's encoder named by `opts.encoder`; none when that is "none")."""
    # validate's findings include the shared text checks (placeholders, braces, punctuation, copies
    # of the prompts' examples), each under its own check name; fallback text and identical parts are
    # reported below, per class, once
    issues = [Issue(f.level, f.check, f.where, f.message) for f in validate_corpus(path, class_names)
              if "fallback text" not in f.message and f.check != "identical-part"]
    try:
        records = load_records(path)
    except CorpusError:
        return _sorted(issues)
    issues += fallback_issues(records) + identical_part_issues(records) + length_issues(records)
    if opts.encoder != "none":
        issues += similarity_issues(records, opts, encoder or recognizer_encoder(opts.encoder, opts.encoder_path))
    return _sorted(issues)


def _sorted(issues: list[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (i.level != "error", i.check, i.where))


def fallback_issues(records: list[dict]) -> list[Issue]:
    return [Issue("warning", "fallback", _label(r), f"{', '.join(r['fallback'])} are generic fallback text "
                  "(the LLM gave no valid reply)") for r in records if r.get("fallback")]


def length_issues(records: list[dict]) -> list[Issue]:
    out = []
    for r in records:
        texts = [("synonym", s) for s in r["synonyms"]] + [("part", r["parts"][p]) for p in PART_NAMES]
        for kind, text in texts + [("description", r["description"])]:
            low, high = LENGTHS[kind]
            words = len(text.split())
            if words < low or words > high:
                what = "too short" if words < low else "too long"
                out.append(Issue("warning", "length", _label(r),
                                 f"{kind} {what} ({words} words, expected {low}-{high}): {text[:80]!r}"))
    return out


def similarity_issues(records: list[dict], opts: LintOptions, encoder: TextEncoder) -> list[Issue]:
    """Near-duplicate synonyms and descriptions across classes, by embedding cosine similarity."""
    syn = [(r, s) for r in records for s in dict.fromkeys(norm_name(x) for x in r["synonyms"])]
    desc = [(r, r["description"]) for r in records]
    return (_near_pairs(syn, opts, encoder, "near-duplicate-synonym", "synonym")
            + _near_pairs(desc, opts, encoder, "near-duplicate-description", "description"))


def _near_pairs(items: list[tuple[dict, str]], opts: LintOptions, encoder: TextEncoder, check: str,
                what: str) -> list[Issue]:
    if len(items) < 2:
        return []
    sims = cosine_matrix(encoder, [t for _, t in items]).tolist()  # (N, N)
    out = []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            (ra, a), (rb, b) = items[i], items[j]
            if ra["class_id"] != rb["class_id"] and sims[i][j] >= opts.threshold:
                out.append(Issue("warning", check, _label(rb), f"{what} {b!r} is close to {a!r} of {_label(ra)} "
                                 f"(cosine {sims[i][j]:.2f})"))
    return out


def counts(issues: list[Issue]) -> dict[str, int]:
    out: dict[str, int] = {"errors": 0, "warnings": 0}
    for i in issues:
        out["errors" if i.level == "error" else "warnings"] += 1
        out[i.check] = out.get(i.check, 0) + 1
    return out
