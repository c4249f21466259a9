"""The text checks of a corpus field, one set for `generate` (a reply that fails them is rejected and
asked again), `validate` and `edit` (errors) and `lint` (which shows them with the check's name).

Before these were shared, `generate` accepted "The knees bend,." (a copy of the parts prompt's own
example with a stray comma), `lint` called it an error and `validate` a valid corpus. A check here
looks at one text as it stands (no normalisation that could hide the problem) and says what is
wrong with it. Errors are text the recognizer should not be trained on (generate rejects the reply);
a near-copy of an example is a warning (generic sentences such as "Head faces forward." are fine).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

# A placeholder of a template left in the text: {name}, {{name}}, <name>, [name], $name.
_PLACEHOLDER = re.compile(r"\{\{?\s*\w*\s*\}?\}|<\s*(?:name|class|action)\s*>|\[\s*(?:name|class|action)\s*\]"
                          r"|\$\{?(?:name|class|action)\b", re.IGNORECASE)
_BRACE = re.compile(r"[{}]")
# A comma, semicolon or colon right before the end of a sentence, or doubled punctuation.
_STRAY_PUNCT = re.compile(r"[,;:]\s*[.!?]|[,;:]\s*$|([,;:])\s*\1|\s[,;:.!?](?:\s|$)")
NEAR_COPY = 0.92  # difflib ratio at or above which a text counts as a near-copy of an example
_WORD = re.compile(r"[a-z]+")
_STOP = {"a", "an", "the", "of", "with", "one", "two", "and", "is", "are", "to", "his", "her", "their"}


@dataclass(frozen=True)
class TextProblem:
    check: str  # placeholder | brace | punctuation | example-copy | near-copy
    message: str
    level: str = "error"


def canon(text: str) -> str:
    """Lower case, single spaces, no surrounding quotes or punctuation: what counts as the same text."""
    return " ".join(text.replace("_", " ").lower().split()).strip(" \"'`.,;:!?…")


def text_problems(text: str, examples: frozenset[str] = frozenset(), class_name: str | None = None,
                  near: bool = True) -> list[TextProblem]:
    """What is wrong with one field's text (empty: nothing). `examples` are the canonical example
    values of the prompts; a copy or near-copy of one is a problem unless the class is itself what
    the example describes (every content word of the example is in the class name). `near=False`
    skips the near-copy comparison (a warning; `generate` only acts on errors)."""
    out = []
    placeholder = _PLACEHOLDER.search(text)
    if placeholder:
        out.append(TextProblem("placeholder", f"leftover template placeholder {placeholder.group(0)!r}: {text!r}"))
    elif _BRACE.search(text):
        out.append(TextProblem("brace", f"stray brace: {text!r}"))
    punct = _STRAY_PUNCT.search(text.strip())
    if punct:
        out.append(TextProblem("punctuation", f"stray punctuation {punct.group(0).strip()!r}: {text!r}"))
    copied = copied_example(text, examples, class_name, near)
    if copied is not None:
        if canon(text) == copied:
            out.append(TextProblem("example-copy", f"copies the prompt's example {copied!r}: {text!r}"))
        else:
            out.append(TextProblem("near-copy", f"nearly copies the prompt's example {copied!r}: {text!r}",
                                   "warning"))
    return out


def copied_example(text: str, examples: frozenset[str], class_name: str | None = None,
                   near: bool = True) -> str | None:
    """The example `text` copies or nearly copies, or None."""
    c = canon(text)
    if not c or (class_name is not None and c == canon(class_name)):
        return None
    own = _stems(class_name) if class_name else set()
    for ex in sorted(examples):
        if own and _stems(ex) <= own:
            continue  # the class is what the example describes ("waving a hand" for "hand waving")
        if c == ex:
            return ex
        if near and len(c) >= 8:
            m = difflib.SequenceMatcher(None, c, ex)
            if m.real_quick_ratio() >= NEAR_COPY and m.quick_ratio() >= NEAR_COPY and m.ratio() >= NEAR_COPY:
                return ex
    return None


def _stems(text: str) -> set[str]:
    """Content words, crudely stemmed (waving, wave -> wav; hands -> hand)."""
    return {w.removesuffix("ing").removesuffix("s").removesuffix("e") for w in _WORD.findall(text.lower())
            if w not in _STOP}


def reply_texts(reply: dict) -> list[tuple[str, str]]:
    """(field, text) of every string in a parsed reply or a corpus record's content."""
    out = []
    for key, value in reply.items():
        if isinstance(value, str):
            out.append((key, value))
        elif isinstance(value, list):
            out += [(f"{key}.{i}", v) for i, v in enumerate(value) if isinstance(v, str)]
        elif isinstance(value, dict):
            out += [(f"{key}.{k}", v) for k, v in value.items() if isinstance(v, str)]
    return out


def record_texts(record: dict) -> list[tuple[str, str]]:
    """(field, text) of a corpus record's generated content (not its name: that is the class list's)."""
    return reply_texts({"synonyms": record["synonyms"][1:] if record["synonyms"][:1] == [record["name"]]
                        else record["synonyms"], "parts": record["parts"], "description": record["description"]})


@lru_cache(maxsize=1)
def template_examples() -> frozenset[str]:
    """Canonical example values of the shipped templates (small models like to copy them)."""
    from knowledge_engine.templates import TEMPLATES_DIR, load_template

    values: set[str] = set()
    for path in sorted(TEMPLATES_DIR.glob("*.yaml")):
        values |= {canon(v) for v in load_template(str(path)).example_values}
    return frozenset(values)


def norm_name(text: str) -> str:
    """A synonym's canonical form: lower case, single spaces, no quotes or trailing punctuation."""
    return " ".join(text.replace("_", " ").split()).strip(" \"'`").rstrip(".!,;:").strip().lower()


def norm_sentence(text: str) -> str:
    """Single spaces, a capital first letter and a final full stop (replacing a trailing comma, colon
    or semicolon: "The knees bend," is "The knees bend.", not "The knees bend,.")."""
    text = " ".join(text.split()).strip(" \"'`").rstrip(",;: ")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."
