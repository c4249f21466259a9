"""Prompt templates: versioned files in `prompts/templates/`, each with the JSON Schema of its reply.

The template text and version are part of every cache key, so editing a template (and bumping its
version) regenerates exactly the replies it produced. A template also owns the strict validation
of its replies: small models often answer with almost-JSON, and nothing invalid may reach a corpus.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from corpus import PART_NAMES, PROMPTS_DIR
from knowledge_engine.errors import KnowledgeEngineError

TEMPLATES_DIR = PROMPTS_DIR / "templates"
DEFAULT_TEMPLATES = ("synonyms", "parts")
_FIELDS = {"synonyms", "parts", "description"}
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_FENCE_ANYWHERE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
_PLACEHOLDERS = {"...", "…", "string", "text", "none", "n/a", "null"}


class InvalidReply(ValueError):
    """A reply that does not satisfy the template's schema or content rules (never cached as valid)."""


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    provides: tuple[str, ...]
    system: str
    user: str
    schema: dict
    example_values: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """Everything that shapes the answer or its acceptance, for the cache key."""
        return json.dumps({"system": self.system, "user": self.user, "reject": list(self.example_values)},
                          sort_keys=True)

    def messages(self, class_name: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.format(name=class_name)},
        ]

    def parse(self, text: str | None) -> dict:
        """Parse and strictly validate one reply; raise InvalidReply saying why."""
        data = _load_json(text)
        errors = list(jsonschema.Draft202012Validator(self.schema).iter_errors(data))
        if errors:
            err = min(errors, key=lambda e: len(e.absolute_path))
            where = ".".join(str(p) for p in err.absolute_path) or "(reply)"
            raise InvalidReply(f"schema: {where}: {err.message[:200]}")
        _check_content(data, {_canon(v) for v in self.example_values})
        return data


def _load_json(text: str | None) -> object:
    """The reply's JSON: the whole text, a fenced block, or failing those the first JSON object in
    prose (servers without structured output answer "Sure! Here it is: {...}")."""
    if text is None or not text.strip():
        raise InvalidReply("empty reply")
    body = text.strip()
    fenced = _FENCE.match(body) or _FENCE_ANYWHERE.search(body)
    if fenced:
        body = fenced.group(1)
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        found = _first_object(body)
        if found is None:
            raise InvalidReply(f"not valid JSON ({e.msg} at column {e.colno})") from None
        return found


def _first_object(text: str) -> dict | None:
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _canon(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .…!\"'")


def _check_content(data: dict, examples: set[str]) -> None:
    """Reject what a schema alone lets through: blanks, placeholders, copies of the prompt's example,
    and body-part answers that say the same thing for every part."""
    for key, value in data.items():
        for v in value if isinstance(value, list) else [value]:
            c = _canon(v) if isinstance(v, str) else ""
            if not c:
                raise InvalidReply(f"content: {key}: blank or placeholder value {v!r}")
            if c in _PLACEHOLDERS:
                raise InvalidReply(f"content: {key}: placeholder {v.strip()!r}")
            if c in examples:
                raise InvalidReply(f"content: {key}: copies the prompt's example {v.strip()!r}")
    parts = [_without_subject(_canon(data[p]), p) for p in PART_NAMES if p in data]
    if len(parts) == len(PART_NAMES) and len(set(parts)) < 3:
        raise InvalidReply("content: the body parts are (nearly) all described the same way")


def _without_subject(text: str, part: str) -> str:
    """The sentence without its leading part name: "the head climbs stairs" and "the hands climb stairs"
    say the same thing, and a template may make every sentence start with its part."""
    return re.sub(rf"^(?:the |his |her |their )?{part} ", "", text)


def load_template(ref: str) -> Template:
    """Load a template by name (from `prompts/templates/`) or by path."""
    path = Path(ref)
    if not path.suffix:
        path = TEMPLATES_DIR / f"{ref}.yaml"
    if not path.is_file():
        raise KnowledgeEngineError(f"{path}: template not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise KnowledgeEngineError(f"{path}: not valid YAML ({e})") from None
    except UnicodeDecodeError:
        raise KnowledgeEngineError(f"{path}: not UTF-8 text") from None
    return _from_dict(raw, path)


def _from_dict(raw: object, path: Path) -> Template:
    if not isinstance(raw, dict):
        raise KnowledgeEngineError(f"{path}: a template is a mapping")
    missing = [k for k in ("name", "version", "provides", "user", "schema") if k not in raw]
    if missing:
        raise KnowledgeEngineError(f"{path}: missing keys {missing}")
    provides = tuple(raw["provides"])
    unknown = set(provides) - _FIELDS
    if unknown:
        raise KnowledgeEngineError(f"{path}: 'provides' has unknown fields {sorted(unknown)}")
    if "{name}" not in raw["user"]:
        raise KnowledgeEngineError(f"{path}: 'user' must contain the placeholder {{name}}")
    return Template(
        name=str(raw["name"]),
        version=int(raw["version"]),
        provides=provides,
        system=str(raw.get("system", "")),
        user=str(raw["user"]),
        schema=raw["schema"],
        example_values=tuple(str(v) for v in raw.get("example_values", ())),
    )


def load_templates(refs: tuple[str, ...] = DEFAULT_TEMPLATES) -> tuple[Template, ...]:
    """Load templates and check that together they provide every corpus field."""
    templates = tuple(load_template(r) for r in refs)
    provided = {f for t in templates for f in t.provides}
    if provided != _FIELDS:
        raise KnowledgeEngineError(f"templates {list(refs)} do not provide {sorted(_FIELDS - provided)}")
    return templates
