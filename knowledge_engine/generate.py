"""The generation run: work out which requests the cache lacks, send only those, cache each reply.

Retries, backoff and the concurrency bound live here (not in the backends) so that every backend
behaves alike: transport failures (429 honouring Retry-After, 5xx, timeouts, connection errors)
are retried with exponential backoff and jitter; invalid or truncated replies are asked again with
a derived seed; a server that returns fewer than `n` choices is asked again until it has given `n`.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from knowledge_engine.backends.base import Backend, Call, Completion, Sampling, TransientError
from knowledge_engine.cache import Cache, request_key
from knowledge_engine.templates import InvalidReply, Template


@dataclass(frozen=True)
class RunConfig:
    """Knobs of a run. Tests shrink the backoffs and timeouts; nothing here changes the replies."""

    concurrency: int = 8
    max_retries: int = 5  # transport retries per call
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    invalid_retries: int = 3  # extra calls allowed for invalid or truncated replies
    retry_invalid: bool = False  # resend requests cached as invalid
    progress: bool = True


@dataclass(frozen=True)
class Request:
    class_id: int
    class_name: str
    template: Template
    sampling: Sampling
    canonical: dict
    key: str


@dataclass
class Stats:
    requests: int = 0
    cached: int = 0
    sent: int = 0  # backend calls, retries included
    retried: int = 0
    invalid: int = 0  # rejected replies (bad JSON, schema, finish_reason=length)
    failed: int = 0  # requests given up after transport retries (not cached)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    invalid_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class RequestFailed(Exception):
    """Transport retries exhausted; the request stays uncached and is retried by the next run."""


def build_requests(classes: list[str], templates: tuple[Template, ...], backend: Backend,
                   sampling: Sampling) -> list[Request]:
    """One request per class and template, keyed by everything that determines the answer."""
    out = []
    for cid, name in enumerate(classes):
        for t in templates:
            canonical = {
                "backend": backend.kind,
                "model": backend.model,
                "structured": backend.structured,
                "template": {"name": t.name, "version": t.version, "text": t.text},
                "class": name,
                "sampling": {"temperature": sampling.temperature, "top_p": sampling.top_p,
                             "max_tokens": sampling.max_tokens},
                "seed": sampling.seed,
                "n": sampling.n,
                "schema": t.schema,
            }
            out.append(Request(cid, name, t, sampling, canonical, request_key(canonical)))
    return out


def missing(requests: list[Request], cache: Cache, retry_invalid: bool) -> list[Request]:
    """Requests with no cached row (or, with `retry_invalid`, only an invalid one)."""
    def needed(r: Request) -> bool:
        row = cache.get(r.key)
        return row is None or (retry_invalid and row.get("status") != "ok")

    return [r for r in requests if needed(r)]


class Runner:
    def __init__(self, backend: Backend, cache: Cache, cfg: RunConfig, stats: Stats) -> None:
        self.backend, self.cache, self.cfg, self.stats = backend, cache, cfg, stats
        limit = cfg.concurrency if backend.max_concurrency is None else min(cfg.concurrency,
                                                                           backend.max_concurrency)
        self._slots = asyncio.Semaphore(max(1, limit))
        self._rng = random.Random()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cfg.backoff_max)
        base = min(self.cfg.backoff_max, self.cfg.backoff_base * 2**attempt)
        return base * (0.5 + 0.5 * self._rng.random())  # jitter: spread out synchronised retries

    async def _call(self, call: Call) -> Completion:
        for attempt in range(self.cfg.max_retries + 1):
            try:
                async with self._slots:  # a slot is held only while a call is in flight
                    self.stats.sent += 1
                    return await self.backend.complete(call)
            except TransientError as e:
                if attempt == self.cfg.max_retries:
                    raise RequestFailed(f"{e} (after {attempt + 1} tries)") from None
                self.stats.retried += 1
                await asyncio.sleep(self._backoff(attempt, e.retry_after))
        raise AssertionError("unreachable")

    async def fulfil(self, req: Request) -> dict:
        """Collect `n` valid choices, or give up after `invalid_retries` extra calls."""
        n = req.sampling.n
        valid: list[tuple[dict, str, str | None]] = []
        rejected: list[dict] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        calls = 0
        budget = self.cfg.invalid_retries
        while len(valid) < n and calls < n + budget and len(rejected) <= budget:
            want = n - len(valid)
            sampling = Sampling(**{**asdict(req.sampling), "n": want, "seed": req.sampling.seed + calls})
            completion = await self._call(Call(req.template.messages(req.class_name), sampling,
                                               req.template.schema))
            calls += 1
            for k in usage:
                usage[k] += completion.usage.get(k, 0)
            for choice in completion.choices[:want]:
                try:
                    if choice.finish_reason == "length":
                        raise InvalidReply("cut at max_tokens (finish_reason=length)")
                    valid.append((req.template.parse(choice.text), choice.text or "", choice.finish_reason))
                except InvalidReply as e:
                    self.stats.invalid += 1
                    rejected.append({"text": choice.text, "finish_reason": choice.finish_reason,
                                     "reason": str(e)})
        return self._row(req, valid, rejected, usage, calls)

    def _row(self, req: Request, valid: list, rejected: list, usage: dict, calls: int) -> dict:
        self.stats.prompt_tokens += usage["prompt_tokens"]
        self.stats.completion_tokens += usage["completion_tokens"]
        return {
            "key": req.key,
            "status": "ok" if valid else "invalid",
            "class_id": req.class_id,
            "request": req.canonical,
            "choices": [v[0] for v in valid],
            "raw": [v[1] for v in valid],
            "finish_reasons": [v[2] for v in valid],
            "rejected": rejected,
            "usage": usage,
            "calls": calls,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    async def run_one(self, req: Request) -> None:
        label = f"{req.class_name} [{req.template.name}]"
        try:
            row = await self.fulfil(req)
        except RequestFailed as e:
            self.stats.failed += 1
            self.stats.failed_requests.append(f"{label}: {e}")
            return
        if row["status"] != "ok":
            self.stats.invalid_requests.append(f"{label}: {row['rejected'][-1]['reason']}")
        self.cache.append(row)


async def fetch(requests: list[Request], backend: Backend, cache: Cache, cfg: RunConfig,
                console: Console | None = None) -> Stats:
    """Send the missing requests concurrently; every finished one is cached at once."""
    stats = Stats(requests=len(requests))
    todo = missing(requests, cache, cfg.retry_invalid)
    stats.cached = len(requests) - len(todo)
    runner = Runner(backend, cache, cfg, stats)
    start = time.perf_counter()
    with _progress(console, cfg.progress) as progress:
        task = progress.add_task("requests", total=len(todo))

        async def one(r: Request) -> None:
            await runner.run_one(r)
            progress.advance(task)

        try:
            await asyncio.gather(*(one(r) for r in todo))
        finally:
            await backend.aclose()
    stats.wall_s = time.perf_counter() - start
    return stats


def _progress(console: Console | None, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console or Console(stderr=True), disable=not enabled, transient=False,
    )


def summary_table(stats: Stats) -> Table:
    table = Table(title="prompt generation")
    for col in ("requests", "cached", "sent", "retried", "invalid replies", "failed", "tokens (in/out)",
                "wall time"):
        table.add_column(col, justify="right")
    table.add_row(str(stats.requests), str(stats.cached), str(stats.sent), str(stats.retried),
                  str(stats.invalid), str(stats.failed), f"{stats.prompt_tokens}/{stats.completion_tokens}",
                  f"{stats.wall_s:.2f} s")
    return table
