"""A lint finding (`Issue`) and the cross-class check that both `validate` and `lint` report.

Kept apart from lint.py so that inspect_corpus.py (validate) and lint.py (which builds on validate)
import it one way, without importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from corpus import PART_NAMES


@dataclass(frozen=True)
class Issue:
    level: str  # error | warning
    check: str
    where: str
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def label(rec: dict) -> str:
    """How findings name a class: `class 3 'walk around'`."""
    return f"class {rec['class_id']} {rec['name']!r}"


def identical_part_issues(records: list[dict]) -> list[Issue]:
    """The same part text for two classes: the recognizer cannot tell them apart by that part."""
    out = []
    for part in PART_NAMES:
        seen: dict[str, dict] = {}
        for r in records:
            key = " ".join(r["parts"][part].lower().split())
            if key in seen:
                out.append(Issue("warning", "identical-part", label(r),
                                 f"{part}: same text as {label(seen[key])}: {r['parts'][part]!r}"))
            else:
                seen[key] = r
    return out
