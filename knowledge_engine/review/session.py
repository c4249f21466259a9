"""What the review page shows and changes: corpora read from disk, lint findings on the strings they name,
edits validated by the corpus contract, an undo stack, accept-left/right between two corpora, and
regenerated records proposed beside the current ones (written only when accepted).

The files on disk are the truth: every request reads them (a corpus of 120 classes reads in
milliseconds) and every change is written at once, atomically, based on the version the page was
showing. A write based on an older version (a second tab, `pcle prompts edit` meanwhile) is refused with
a message instead of silently replacing the other change.
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corpus import (
    PART_NAMES,
    CorpusError,
    StaleCorpusError,
    TextEncoder,
    corpus_version,
    hand_edited,
    is_curated,
    load_records,
    mark_edited,
    read_lines,
    validate_record,
    write_records,
)
from knowledge_engine.assemble import norm_name
from knowledge_engine.edit import check_edit
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.lint import LintOptions, lint_corpus
from knowledge_engine.review.regenerate import NO_BACKEND, Proposal, Regenerator

COPIED_FIELDS = ("synonyms", "parts", "description")  # what accept-left/right copies
# what an accepted regeneration replaces: the text and where it came from (the hash of what was generated)
REGENERATED_FIELDS = (*COPIED_FIELDS, "source", "model", "content_hash")


class ReviewError(KnowledgeEngineError):
    """A change the page refuses; the message is shown to the person who asked for it."""


class CachedEncoder:
    """Remembers every text's embedding, so a lint after one edit embeds only the new strings."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner = inner
        self.memo: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if new:
            self.memo.update(zip(new, np.asarray(self.inner.encode(new), dtype=np.float32)))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.memo[t] for t in texts])  # (N, D)


@dataclass(frozen=True)
class Finding:
    level: str
    check: str
    message: str
    field: str | None  # the string it names ("synonyms.2", "parts.legs", "description"), None: the class


@dataclass
class Cell:
    """One corpus's record of a class, as the page shows it."""

    corpus: int
    record: dict
    findings: list[Finding]
    edited: bool
    diff: set[str] = field(default_factory=set)  # fields that differ from the other corpus
    proposal: Proposal | None = None  # a regenerated record waiting for accept / discard

    @property
    def proposal_diff(self) -> set[str]:
        """The proposal's fields whose text differs from the current record's."""
        return differing(self.proposal.record, self.record) if self.proposal else set()

    def field_findings(self, name: str) -> list[Finding]:
        return [f for f in self.findings if f.field == name]

    @property
    def class_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.field is None]


@dataclass
class Row:
    key: str  # the class name, normalised (how two corpora's records are matched)
    name: str
    cells: list[Cell | None]

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.key).strip("-") or "class"


@dataclass
class CorpusState:
    path: Path
    read_only: bool
    undo: list[tuple[list[dict], str]] = field(default_factory=list)  # (records before, version after)


def record_fields(rec: dict) -> dict[str, str]:
    """Every editable string of a record, by field path."""
    out = {f"synonyms.{i}": s for i, s in enumerate(rec["synonyms"])}
    out.update({f"parts.{p}": rec["parts"][p] for p in PART_NAMES})
    out["description"] = rec["description"]
    return out


_LABEL = re.compile(r"class \d+ (?:'[^']*'|\"[^\"]*\")")


def attach(message: str, rec: dict) -> list[str]:
    """The fields of `rec` a finding's message names: by field path ("field 'parts.legs' is blank") or by
    quoting the text (lint quotes the strings it flags); other classes' labels are not the record's text."""
    named = [f for f in record_fields(rec) if f"'{f}'" in message]
    if named:
        return named
    text = _LABEL.sub("", message)
    return [f for f, s in record_fields(rec).items()
            if s.strip() and any(repr(v) in text for v in {s, s[:80], norm_name(s)})]


class Review:
    """The corpora of one `pcle prompts serve`; methods are safe to call from several request threads."""

    def __init__(self, paths: list[Path], allow_curated: bool = False, lint: LintOptions = LintOptions(),
                 encoder: TextEncoder | None = None, regenerator: Regenerator | None = None) -> None:
        if not 1 <= len(paths) <= 2:
            raise ReviewError("give one corpus, or two to compare side by side")
        self.corpora = [CorpusState(Path(p), read_only=is_curated(p) and not allow_curated) for p in paths]
        self.lint_options = lint
        self.encoder = CachedEncoder(encoder) if encoder is not None else None
        self.regenerator = regenerator
        self.proposals: dict[tuple[int, int], Proposal] = {}  # (corpus, class id) -> not yet accepted
        self.lock = threading.Lock()
        self._findings: dict[int, tuple[str, dict[int, list[Finding]]]] = {}
        for i in range(len(self.corpora)):
            self.records(i)  # a corpus that does not load is one clear error before the page starts
            self.findings(i)

    # reading -------------------------------------------------------------------------------------
    @property
    def regenerate_note(self) -> str:
        """What "regenerate" asks, or why it is off (shown on the page)."""
        return f"regenerate asks the {self.regenerator.describe()}" if self.regenerator else NO_BACKEND

    def version(self, i: int) -> str:
        return corpus_version(self.corpora[i].path)

    def records(self, i: int) -> list[dict]:
        return load_records(self.corpora[i].path)

    def findings(self, i: int) -> dict[int, list[Finding]]:
        """Lint findings by class id, recomputed when the file's version changes."""
        version = self.version(i)
        cached = self._findings.get(i)
        if cached is None or cached[0] != version:
            self._findings[i] = (version, self._lint(i))
        return self._findings[i][1]

    def _lint(self, i: int) -> dict[int, list[Finding]]:
        path = self.corpora[i].path
        records = self.records(i)
        by_line = {f"{path}:{lineno}": rec for (lineno, _), rec in zip(read_lines(path), records)}
        by_id = {rec["class_id"]: rec for rec in records}
        out: dict[int, list[Finding]] = {rec["class_id"]: [] for rec in records}
        for issue in lint_corpus(path, self.lint_options, encoder=self.encoder):
            ids = re.findall(r"class (\d+) ", issue.where)
            rec = by_id.get(int(ids[0])) if ids else by_line.get(issue.where)
            if rec is None:
                continue  # a corpus-level finding (a dataset class without a record); not a class's row
            fields = attach(issue.message, rec) or [None]
            out[rec["class_id"]] += [Finding(issue.level, issue.check, issue.message, f) for f in fields]
        return out

    def checks(self) -> list[str]:
        """Every lint check with a finding in any corpus (the page's filter menu)."""
        return sorted({f.check for i in range(len(self.corpora)) for fs in self.findings(i).values() for f in fs})

    def rows(self) -> list[Row]:
        """The classes of every corpus, matched by name, in the first corpus's order."""
        rows: dict[str, Row] = {}
        for i in range(len(self.corpora)):
            findings = self.findings(i)
            for rec in sorted(self.records(i), key=lambda r: r["class_id"]):
                key = norm_name(rec["name"])
                row = rows.setdefault(key, Row(key, rec["name"], [None] * len(self.corpora)))
                row.cells[i] = Cell(i, rec, findings.get(rec["class_id"], []), hand_edited(rec),
                                    proposal=self.proposals.get((i, rec["class_id"])))
        for row in rows.values():
            mark_differences(row)
        return list(rows.values())

    def row(self, key: str) -> Row:
        for r in self.rows():
            if r.key == key:
                return r
        raise ReviewError(f"no class {key!r} in the corpora shown")

    # changing ------------------------------------------------------------------------------------
    def edit(self, i: int, class_id: int, field_path: str, value: str, version: str, op: str = "set") -> str:
        """Set, add or delete one string of one record; returns what was done, for the status line."""
        with self.lock:
            records = self._writable(i, version)
            rec = _find(records, class_id, self.corpora[i].path)
            new = mark_edited(apply_edit(rec, field_path, value.strip(), op))
            self._save(i, records, rec, new, version)
        verb = {"set": "saved", "add": "added", "delete": "deleted"}[op]
        return f"{verb} {field_path} of class {class_id} {rec['name']!r} in {self.corpora[i].path} (marked edited)"

    def accept(self, key: str, source: int, versions: list[str]) -> str:
        """Copy one class's content from corpus `source` to the other one (marked edited there)."""
        if len(self.corpora) != 2:
            raise ReviewError("accept-left/right needs two corpora side by side")
        target = 1 - source
        with self.lock:
            records = self._writable(target, versions[target])
            row = self.row(key)
            if row.cells[source] is None or row.cells[target] is None:
                raise ReviewError(f"class {row.name!r} is only in one of the corpora; nothing to copy")
            src = row.cells[source].record
            rec = _find(records, row.cells[target].record["class_id"], self.corpora[target].path)
            new = {**copy.deepcopy(rec), **{k: copy.deepcopy(src[k]) for k in COPIED_FIELDS}}
            new.pop("fallback", None)
            if src.get("fallback"):
                new["fallback"] = list(src["fallback"])  # the copied text is still fallback text
            self._save(target, records, rec, mark_edited(new), versions[target])
        return (f"copied class {row.name!r} from {self.corpora[source].path} to {self.corpora[target].path} "
                "(marked edited)")

    def regenerate(self, i: int, class_id: int, sample: int = 0) -> str:
        """Ask the backend for one class again and keep the result as a proposal (nothing is written).
        The call runs without the page's lock: edits made meanwhile go through."""
        if self.regenerator is None:
            raise ReviewError(NO_BACKEND)
        state = self.corpora[i]
        if state.read_only:
            raise ReviewError(f"{state.path}: a curated corpus is read-only here; nothing to regenerate into")
        if sample < 0:
            raise ReviewError(f"sample: must be 0 or more (got {sample})")
        proposal = self.regenerator.propose(state.path, self.records(i), class_id, sample)
        with self.lock:
            self.proposals[(i, class_id)] = proposal
        source = "every reply from the cache" if proposal.sent == 0 else f"{proposal.sent} call(s) sent"
        return (f"proposal for class {class_id} {proposal.record['name']!r} from {proposal.record['model']} "
                f"(seed {proposal.seed}; {source}, cache {proposal.cache}): accept or discard")

    def accept_proposal(self, i: int, class_id: int, version: str, confirm: bool = False) -> str:
        """Write the proposed record in place of the current one (validated, atomic, version-checked,
        marked edited so a later `generate` keeps it); a hand-edited record needs `confirm`."""
        with self.lock:
            records = self._writable(i, version)
            rec = _find(records, class_id, self.corpora[i].path)
            proposal = self.proposals.get((i, class_id))
            if proposal is None:
                raise ReviewError(f"class {class_id} {rec['name']!r}: no proposal to accept (regenerate first)")
            if hand_edited(rec) and not confirm:
                raise ReviewError(f"class {class_id} {rec['name']!r} is hand-edited: tick 'replace the hand-edited "
                                  "text' to accept the regenerated one; nothing written")
            new = {**copy.deepcopy(rec), **{k: copy.deepcopy(proposal.record[k]) for k in REGENERATED_FIELDS}}
            new.pop("fallback", None)
            self._save(i, records, rec, mark_edited(new), version)
            del self.proposals[(i, class_id)]
        return (f"wrote the regenerated class {class_id} {rec['name']!r} to {self.corpora[i].path} "
                "(marked edited: a later `generate` keeps it)")

    def discard_proposal(self, i: int, class_id: int) -> str:
        with self.lock:
            proposal = self.proposals.pop((i, class_id), None)
        if proposal is None:
            return f"class {class_id}: no proposal to discard"
        return f"discarded the proposal for class {class_id} {proposal.record['name']!r}; the corpus is unchanged"

    def undo(self, i: int) -> str:
        """Put back the records as they were before this page's last change to corpus i."""
        with self.lock:
            state = self.corpora[i]
            if not state.undo:
                raise ReviewError(f"{state.path}: nothing to undo (no change made from this page)")
            before, version_after = state.undo[-1]
            try:
                write_records(state.path, before, allow_curated=True, based_on=version_after)
            except StaleCorpusError:
                raise ReviewError(f"{state.path}: the file changed since the last change made here; nothing "
                                  "undone (reload to see it)") from None
            state.undo.pop()
        return f"undid the last change to {state.path}"

    def _writable(self, i: int, version: str) -> list[dict]:
        state = self.corpora[i]
        if state.read_only:
            raise ReviewError(f"{state.path}: a curated corpus is read-only here; start `pcle prompts serve` "
                              "with --allow-curated to edit it")
        if version != self.version(i):
            raise ReviewError(f"{state.path}: the file changed since this page was loaded (another tab or "
                              "editor saved it); nothing written, reload the page to see the current version")
        return self.records(i)

    def _save(self, i: int, records: list[dict], old: dict, new: dict, version: str) -> None:
        path = self.corpora[i].path
        where = f"{path} (class {old['class_id']} {old['name']!r})"
        try:
            validate_record(new, where)
        except CorpusError as e:
            raise ReviewError(f"{e}; corpus unchanged") from None
        updated = [new if r is old else r for r in records]
        try:
            check_edit(path, updated, new)  # what `validate` would call an error, as `pcle prompts edit` refuses
        except KnowledgeEngineError as e:
            raise ReviewError(str(e)) from None
        try:
            after = write_records(path, updated, allow_curated=True, based_on=version)
        except StaleCorpusError as e:
            raise ReviewError(str(e)) from None
        self.corpora[i].undo.append((records, after))


def apply_edit(rec: dict, field_path: str, value: str, op: str) -> dict:
    """A copy of `rec` with one string set, added (a synonym) or deleted (a synonym)."""
    new = copy.deepcopy(rec)
    kind, _, sub = field_path.partition(".")
    if kind == "synonyms" and op == "add":
        new["synonyms"].append(value)
    elif kind == "synonyms" and sub.isdigit() and int(sub) < len(new["synonyms"]):
        if op == "delete":
            del new["synonyms"][int(sub)]
        else:
            new["synonyms"][int(sub)] = value
    elif kind == "parts" and sub in PART_NAMES and op == "set":
        new["parts"][sub] = value
    elif field_path == "description" and op == "set":
        new["description"] = value
    else:
        raise ReviewError(f"class {rec['class_id']}: cannot {op} field {field_path!r}")
    return new


def mark_differences(row: Row) -> None:
    """With two corpora: the fields whose text differs (synonyms compared by their normalised form)."""
    if len(row.cells) != 2 or None in row.cells:
        return
    a, b = row.cells[0], row.cells[1]
    a.diff |= differing(a.record, b.record)
    b.diff |= differing(b.record, a.record)


def differing(rec: dict, other: dict) -> set[str]:
    """The fields of `rec` whose text `other` lacks: synonyms by normalised form, parts, description."""
    theirs = {norm_name(s) for s in other["synonyms"]}
    out = {f"synonyms.{i}" for i, s in enumerate(rec["synonyms"]) if norm_name(s) not in theirs}
    out |= {f"parts.{p}" for p in PART_NAMES if rec["parts"][p] != other["parts"][p]}
    if rec["description"] != other["description"]:
        out.add("description")
    return out


def _find(records: list[dict], class_id: int, path: Path) -> dict:
    for rec in records:
        if rec["class_id"] == class_id:
            return rec
    raise ReviewError(f"{path}: no class {class_id} (reload the page)")


def keep(row: Row, text: str, check: str, edited: bool, fallback: bool) -> bool:
    """The page's filters: a text in any string, a lint check ("any": any finding), edited, fallback."""
    cells = [c for c in row.cells if c is not None]
    if edited and not any(c.edited for c in cells):
        return False
    if fallback and not any(c.record.get("fallback") for c in cells):
        return False
    if check and not any(f.check == check or check == "any" for c in cells for f in c.findings):
        return False
    if text:
        needle = text.lower()
        haystack = [row.name] + [s for c in cells for s in record_fields(c.record).values()]
        if not any(needle in s.lower() for s in haystack):
            return False
    return True
