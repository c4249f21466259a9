"""The review page's "regenerate this class": the requests `generate` would send for one class (the same
templates, sampling and backend options; seed + k for the k-th "another sample"), through the same
cache, cache lock and call log, assembled into a record by the same code. Nothing is written to the
corpus here: the record is a proposal the page shows beside the current one until it is accepted.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from filelock import Timeout

from knowledge_engine.assemble import build_record
from knowledge_engine.backends import make_backend, plan_backend, resolve_kind
from knowledge_engine.cache import Cache, cache_lock
from knowledge_engine.call_log import log_path
from knowledge_engine.classes import CLASSES_DIR, load_classes
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.generate import build_requests
from knowledge_engine.limits import check_generate_options
from knowledge_engine.run import GenerateOptions, cache_file, check_writable, model_slug, send_missing
from knowledge_engine.templates import load_templates
from knowledge_engine.text_checks import norm_name

NO_BACKEND = ("no backend configured: start `pcle prompts serve` with --base-url URL --model NAME (an "
              "OpenAI-compatible server) or --backend llama|llama-server|vllm to regenerate a class here")
LOCK_WAIT_S = 30.0  # a `generate` run holding the cache longer than this: say so instead of hanging


@dataclass(frozen=True)
class Proposal:
    """A regenerated record of one class, not yet written."""

    record: dict  # schema-valid, as `generate` would write it (source generated, model, content hash)
    sample: int  # 0: `generate`'s own seed; k: seed + k ("another sample")
    seed: int
    sent: int  # calls sent to the backend (0: every reply came from the cache)
    cache: Path


class Regenerator:
    """`generate`'s options for one class at a time; bad options are one line before the page starts."""

    def __init__(self, opts: GenerateOptions) -> None:
        check_generate_options(opts)
        load_templates(tuple(opts.templates))
        self.opts = opts
        self.kind = resolve_kind(opts.backend)
        if self.kind == "vllm":  # its constructor loads the model: plan it (same checks, same model name)
            self.model, self.url = plan_backend(opts.backend).model, ""
        else:
            backend = make_backend(opts.backend)
            self.model, self.url = backend.model, backend.shown_url if self.kind != "llama" else ""
            asyncio.run(backend.aclose())

    def describe(self) -> str:
        """What the page says the button asks (no credentials)."""
        return f"{self.kind} backend, model {self.model}" + (f" at {self.url}" if self.url else "")

    def cache_for(self, path: Path, records: list[dict]) -> Path:
        """`--cache`, else the file `generate` would use for this corpus's classes and this model."""
        return cache_file(dataclasses.replace(self.opts, dataset=dataset_of(path, records, self.model),
                                              classes=None), self.model)

    def propose(self, path: Path, records: list[dict], class_id: int, sample: int = 0) -> Proposal:
        """Send what the cache lacks for one class (a reply cached as invalid is asked again) and build
        its record; a failed or invalid reply is one KnowledgeEngineError (the page's error line)."""
        rec = next((r for r in records if r["class_id"] == class_id), None)
        if rec is None:
            raise KnowledgeEngineError(f"{path}: no class {class_id} (reload the page)")
        sampling = dataclasses.replace(self.opts.sampling, seed=self.opts.sampling.seed + sample)
        opts = dataclasses.replace(self.opts, sampling=sampling)
        check_generate_options(opts)
        cache_path = self.cache_for(path, records)
        for p, what in ((cache_path, "--cache"), (log_path(cache_path), "call log")):
            check_writable(p, what)
        lock = cache_lock(cache_path)
        try:
            lock.acquire(timeout=LOCK_WAIT_S)
        except Timeout:
            raise KnowledgeEngineError(f"{cache_path}: another run holds {lock.lock_file}; regenerate when it "
                                       "has finished") from None
        try:
            backend = make_backend(opts.backend)
            requests = [dataclasses.replace(r, class_id=class_id)
                        for r in build_requests([rec["name"]], load_templates(tuple(opts.templates)), backend,
                                                sampling)]
            cache = Cache.open(cache_path)
            stats, _ = send_missing(opts, backend, cache, requests)
        finally:
            lock.release()
        rows = [row for r in requests if (row := cache.get(r.key)) is not None]
        others = {norm_name(r["name"]) for r in records} - {norm_name(rec["name"])}
        new = build_record(class_id, rec["name"], rows, backend.model, others)
        problem = stats.stop_reason or next(iter(stats.failed_requests + stats.invalid_requests), None)
        if problem is None and new.get("fallback"):
            problem = f"no valid reply for the {', '.join(new['fallback'])}"
        if problem is not None:
            raise KnowledgeEngineError(f"regenerating class {class_id} {rec['name']!r}: {problem}; nothing "
                                       "proposed (what came back is in the call log; regenerate asks again)")
        return Proposal(new, sample, sampling.seed, stats.sent, cache_path)


def dataset_of(path: Path, records: list[dict], model: str) -> str:
    """The dataset name `generate` gave a corpus: the shipped class list its class names are, else the
    corpus file's name without the model (`generate --classes mine.txt` writes mine-<model>.jsonl)."""
    names = [norm_name(r["name"]) for r in sorted(records, key=lambda r: r["class_id"])]
    for f in sorted(CLASSES_DIR.glob("*.txt")):
        try:
            if [norm_name(n) for n in load_classes(f)] == names:
                return f.stem
        except KnowledgeEngineError:
            continue
    return path.stem.removesuffix(f"-{model_slug(model)}") or path.stem
