"""`generate` end to end: classes + templates + backend -> cache -> corpus file."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from corpus import PROMPTS_DIR, read_records, write_records
from corpus.interrupt import run_async
from corpus.overwrite import refuse_output
from knowledge_engine.assemble import assemble, keep_edits
from knowledge_engine.backends import BackendConfig, make_backend, plan_backend
from knowledge_engine.backends.base import Backend, Call, Sampling, url_secrets
from knowledge_engine.cache import Cache, acquire, cache_lock
from knowledge_engine.call_log import CallLog, log_path
from knowledge_engine.classes import class_file, load_classes
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.generate import Request, RunConfig, Stats, build_requests, estimate_tokens, fetch, missing
from knowledge_engine.limits import check_generate_options
from knowledge_engine.templates import DEFAULT_TEMPLATES, load_templates

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
    dry_run: bool = False  # count the requests that would be sent; send nothing, write nothing


@dataclass
class GenerateResult:
    out: Path
    cache: Path
    stats: Stats
    records: list[dict]
    kept_edits: list[str]
    fallback: dict[str, list[str]]
    cache_warnings: list[str]
    negotiation: list[str] = field(default_factory=list)
    dry_run: dict | None = None  # the plan, for --dry-run
    log: Path | None = None  # the per-call log
    kept_corpus: tuple[Path, int] | None = None  # an existing corpus left alone (path, its fallback classes)


def model_slug(model: str) -> str:
    """A file-name-safe model name: `Qwen/Qwen2.5-7B-Instruct` -> `qwen2.5-7b-instruct`."""
    base = Path(model).name.removesuffix(".gguf").lower()
    return re.sub(r"[^a-z0-9.]+", "-", base).strip("-.") or "model"


def dataset_name(opts: GenerateOptions) -> str:
    return opts.dataset if opts.classes is None or opts.dataset else Path(opts.classes).stem


def default_paths(opts: GenerateOptions, backend: Backend) -> tuple[Path, Path]:
    stem = f"{dataset_name(opts)}-{model_slug(backend.model)}"
    out = Path(opts.out) if opts.out else GENERATED_DIR / f"{stem}.jsonl"
    refuse_output(out, "--out")
    return out, cache_file(opts, backend.model)


def cache_file(opts: GenerateOptions, model: str) -> Path:
    """`--cache`, else prompts/cache/<dataset>-<model>.jsonl (the review page regenerates through it too)."""
    return Path(opts.cache) if opts.cache else CACHE_DIR / f"{dataset_name(opts)}-{model_slug(model)}.jsonl"


def plan(opts: GenerateOptions, backend: Backend):
    classes = load_classes(class_file(opts.dataset, opts.classes))
    templates = load_templates(tuple(opts.templates))
    return classes, build_requests(classes, templates, backend, opts.sampling)


def generate_corpus(opts: GenerateOptions, console: Console | None = None,
                    backend: Backend | None = None) -> GenerateResult:
    """Holds the cache lock for the whole run: a concurrent run on the same cache waits, then finds
    every reply cached instead of sending each request a second time."""
    check_generate_options(opts)
    # a dry run builds no backend: it imports no client library, loads no model, starts no server
    backend = backend or (plan_backend(opts.backend) if opts.dry_run else make_backend(opts.backend))
    classes, requests = plan(opts, backend)
    out, cache_path = default_paths(opts, backend)
    if opts.dry_run:  # reads the cache as it is: no lock file, no folder made, nothing compacted
        return _dry_run(opts, out, Cache.open(cache_path, compact=False), requests, backend)
    for path, what in ((cache_path, "--cache"), (out, "--out"), (log_path(cache_path), "call log")):
        check_writable(path, what)
    lock = cache_lock(cache_path)
    acquire(lock, lambda: console and console.print(f"waiting for another run that holds {lock.lock_file}",
                                                    highlight=False, markup=False))
    try:
        cache = Cache.open(cache_path)
        stats, log = send_missing(opts, backend, cache, requests, console)
        records = assemble(classes, requests, cache, backend.model)
        records, kept = keep_edits(records, out, opts.overwrite_edits)
        written, kept_corpus = no_worse(out, records)
        write_records(written, records)
    finally:
        lock.release()
    fallback = fallback_classes(records)
    stats.classes, stats.fell_back = len(records), len(fallback)
    return GenerateResult(written, cache_path, stats, records, kept, fallback, cache.warnings,
                          list(backend.negotiation), log=log, kept_corpus=kept_corpus)


def send_missing(opts: GenerateOptions, backend: Backend, cache: Cache, requests: list[Request],
                 console: Console | None = None) -> tuple[Stats, Path]:
    """Send the requests `cache` has no finished row for, every call in the call log; then tidy the
    cache and remember the structured-output mode the server accepted. The caller holds the cache lock.
    `generate` and the review page's "regenerate" both go through here."""
    _recall_structured(cache, backend)
    b = opts.backend
    log = CallLog(log_path(cache.path), [b.api_key, *url_secrets(b.base_url), *b.headers.values()])
    try:
        stats = run_async(fetch(requests, backend, cache, opts.run, console, log))  # SIGTERM: as Ctrl-C
    finally:
        log.close()
    cache.tidy()
    if backend.negotiation:
        cache.set_meta(_structured_key(backend), {"accepted": backend.active_structured,
                                                  "log": list(backend.negotiation)})
    return stats, log.path


def fallback_classes(records: list[dict]) -> dict[str, list[str]]:
    """Classes whose record uses fallback text (hand-edited records do not count)."""
    return {r["name"]: r["fallback"] for r in records if r.get("fallback") and not r.get("edited")}


def no_worse(out: Path, records: list[dict]) -> tuple[Path, tuple[Path, int] | None]:
    """Where to write the new corpus: `out`, unless an existing corpus there has fewer fallback classes
    (a dead server must not replace a good corpus with generic text); then beside it, `<out>.new.jsonl`."""
    if not out.is_file():
        return out, None
    old = len(fallback_classes(read_records(out)))
    if len(fallback_classes(records)) <= old:
        return out, None
    beside = out.with_name(out.stem + ".new.jsonl")
    check_writable(beside, "corpus")
    return beside, (out, old)


def check_writable(path: Path, what: str) -> None:
    """A file this run may write, or one line naming it (before a reply is received, not after)."""
    if path.is_dir():
        raise KnowledgeEngineError(f"{what} {path}: is a folder; give a file name")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KnowledgeEngineError(f"{what} {path}: cannot create the folder {folder} ({e.strerror})") from None
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise KnowledgeEngineError(f"{what} {path}: not writable (a read-only file or folder)")


def _structured_key(backend: Backend) -> str:
    return f"structured:{backend.kind}:{backend.endpoint}:{backend.structured}"


def _recall_structured(cache: Cache, backend: Backend) -> None:
    """Start in the structured-output mode this server accepted last time (no rejected call first)."""
    meta = cache.meta(_structured_key(backend))
    if meta is not None and backend.endpoint:
        backend.active_structured = meta["value"]["accepted"]


def _dry_run(opts: GenerateOptions, out: Path, cache: Cache, requests: list[Request],
             backend: Backend) -> GenerateResult:
    todo = missing(requests, cache, opts.run.retry_invalid)
    calls = [estimate_tokens(_first_call(r)) for r in todo]
    plan_ = {"requests": len(requests), "cached": len(requests) - len(todo), "to_send": len(todo),
             "classes": len({r.class_id for r in todo}), "worst_case_tokens": sum(calls),
             "backend": backend.kind, "model": backend.model, "missing": getattr(backend, "missing", None)}
    stats = Stats(requests=len(requests), cached=len(requests) - len(todo))
    asyncio.run(backend.aclose())
    return GenerateResult(out, cache.path, stats, [], [], {}, cache.warnings, dry_run=plan_)


def _first_call(req: Request) -> Call:
    return Call(req.template.messages(req.class_name), req.sampling, req.template.schema)


def regenerate_in_memory(opts: GenerateOptions) -> list[dict]:
    """What `generate` would write from the cache alone (nothing is sent), for `diff`."""
    check_generate_options(opts)
    backend = plan_backend(opts.backend)  # the cache keys only: no client library, model or server
    classes, requests = plan(opts, backend)
    _, cache_path = default_paths(opts, backend)
    return assemble(classes, requests, Cache.open(cache_path, compact=False), backend.model)
