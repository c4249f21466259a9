"""`generate` end to end: classes + templates + backend -> cache -> corpus file."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from knowledge_engine.assemble import assemble, keep_edits, write_atomic
from knowledge_engine.backends import BackendConfig, make_backend
from knowledge_engine.backends.base import Backend, Sampling
from knowledge_engine.cache import Cache
from knowledge_engine.classes import class_file, load_classes
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.generate import RunConfig, Stats, build_requests, fetch
from knowledge_engine.templates import DEFAULT_TEMPLATES, load_templates
from recognizer.method.corpus import CURATED, PROMPTS_DIR

GENERATED_DIR = PROMPTS_DIR / "generated"
CACHE_DIR = PROMPTS_DIR / "cache"


@dataclass
class GenerateOptions:
    dataset: str | None = "nw-ucla"
    classes: Path | None = None
    backend: BackendConfig = field(default_factory=BackendConfig)
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    sampling: Sampling = field(default_factory=lambda: Sampling(n=2))
    run: RunConfig = field(default_factory=RunConfig)
    out: Path | None = None
    cache: Path | None = None
    overwrite_edits: bool = False


@dataclass
class GenerateResult:
    out: Path
    cache: Path
    stats: Stats
    records: list[dict]
    kept_edits: list[str]
    fallback: dict[str, list[str]]
    cache_warnings: list[str]


def model_slug(model: str) -> str:
    """A file-name-safe model name: `Qwen/Qwen2.5-7B-Instruct` -> `qwen2.5-7b-instruct`."""
    base = Path(model).name.removesuffix(".gguf").lower()
    return re.sub(r"[^a-z0-9.]+", "-", base).strip("-.") or "model"


def dataset_name(opts: GenerateOptions) -> str:
    return opts.dataset if opts.classes is None or opts.dataset else Path(opts.classes).stem


def default_paths(opts: GenerateOptions, backend: Backend) -> tuple[Path, Path]:
    stem = f"{dataset_name(opts)}-{model_slug(backend.model)}"
    out = Path(opts.out) if opts.out else GENERATED_DIR / f"{stem}.jsonl"
    cache = Path(opts.cache) if opts.cache else CACHE_DIR / f"{stem}.jsonl"
    if out.resolve() in {p.resolve() for p in CURATED.values()}:
        raise KnowledgeEngineError(
            f"{out}: that is a curated corpus; generated corpora go under {GENERATED_DIR}")
    return out, cache


def plan(opts: GenerateOptions, backend: Backend):
    classes = load_classes(class_file(opts.dataset, opts.classes))
    templates = load_templates(tuple(opts.templates))
    return classes, build_requests(classes, templates, backend, opts.sampling)


def generate_corpus(opts: GenerateOptions, console: Console | None = None,
                    backend: Backend | None = None) -> GenerateResult:
    backend = backend or make_backend(opts.backend)
    classes, requests = plan(opts, backend)
    out, cache_path = default_paths(opts, backend)
    cache = Cache.open(cache_path)
    stats = asyncio.run(fetch(requests, backend, cache, opts.run, console))
    records = assemble(classes, requests, cache, backend.model)
    records, kept = keep_edits(records, out, opts.overwrite_edits)
    write_atomic(out, records)
    fallback = {r["name"]: r["fallback"] for r in records if r.get("fallback") and not r.get("edited")}
    return GenerateResult(out, cache_path, stats, records, kept, fallback, cache.warnings)


def regenerate_in_memory(opts: GenerateOptions) -> list[dict]:
    """What `generate` would write from the cache alone (nothing is sent), for `diff`."""
    backend = make_backend(opts.backend)
    classes, requests = plan(opts, backend)
    _, cache_path = default_paths(opts, backend)
    return assemble(classes, requests, Cache.open(cache_path), backend.model)
