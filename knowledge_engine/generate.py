"""The generation run: work out which requests the cache lacks, send only those, cache each reply.

Retries, backoff, rate limits and the concurrency bound live here (not in the backends) so that every
backend behaves alike: transport failures (429 honouring Retry-After, 5xx, timeouts, connection
errors) are retried with exponential backoff and jitter; invalid or truncated replies are asked again
with a derived seed; a server that returns fewer than `n` choices is asked again until it has given
`n`. A request the server refuses outright (HTTP 400, ...) fails alone: the other classes finish.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from knowledge_engine.backends.base import Backend, Call, Completion, FatalBackendError, Sampling, TransientError
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
    rpm: float | None = None  # most calls started per minute (spaced evenly)
    tpm: float | None = None  # most tokens per minute (prompt estimate + max_tokens x n, corrected by usage)
    max_tokens_total: int | None = None  # budget: no call is sent that could take the run past it


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
    skipped: int = 0  # requests not sent because the token budget was reached (not cached)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    classes: int = 0
    fell_back: int = 0  # classes whose corpus record uses fallback text (set when the corpus is built)
    latencies: list[float] = field(default_factory=list)  # seconds per successful backend call
    invalid_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def latency(self, q: float) -> float | None:
        """The q-quantile of call latency (nearest rank), None before any call."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class RequestFailed(Exception):
    """Transport retries exhausted or the server refused; the request stays uncached and is retried
    by the next run."""


class BudgetReached(Exception):
    """The next call could take the run past --max-tokens-total; the request is left for a later run."""


class RateLimiter:
    """Even spacing of call starts for --rpm and --tpm (GCRA: each call moves a "next allowed" time
    forward by its cost over the rate), plus pauses asked for by the server's rate-limit headers."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._next_req = self._next_tok = self._hold = 0.0
        self._lock = asyncio.Lock()

    def hold(self, seconds: float) -> None:
        self._hold = max(self._hold, time.monotonic() + seconds)

    async def wait(self, tokens: int) -> None:
        async with self._lock:  # one caller at a time, so the spacing holds across concurrent calls
            now = time.monotonic()
            start = max(now, self._hold, self._next_req if self.rpm else now, self._next_tok if self.tpm else now)
            if start > now:
                await asyncio.sleep(start - now)
            if self.rpm:
                self._next_req = start + 60.0 / self.rpm
            if self.tpm:
                self._next_tok = start + 60.0 * tokens / self.tpm

    def correct(self, estimated: int, actual: int) -> None:
        """Replace a call's token estimate by what the server reported."""
        if self.tpm:
            self._next_tok += 60.0 * (actual - estimated) / self.tpm


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
        self._limiter = RateLimiter(cfg.rpm, cfg.tpm)
        self._reserved = 0  # worst-case tokens of calls in flight, for the budget

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cfg.backoff_max)
        base = min(self.cfg.backoff_max, self.cfg.backoff_base * 2**attempt)
        return base * (0.5 + 0.5 * self._rng.random())  # jitter: spread out synchronised retries

    def _reserve(self, worst: int) -> None:
        used = self.stats.prompt_tokens + self.stats.completion_tokens
        budget = self.cfg.max_tokens_total
        if budget is not None and used + self._reserved + worst > budget:
            raise BudgetReached(f"not sent: --max-tokens-total {budget} reached ({used} used)")
        self._reserved += worst

    async def _call(self, call: Call) -> Completion:
        worst = estimate_tokens(call)
        for attempt in range(self.cfg.max_retries + 1):
            try:
                async with self._slots:  # a slot is held only while a call is in flight
                    self._reserve(worst)
                    try:
                        await self._limiter.wait(worst)
                        self.stats.sent += 1
                        start = time.perf_counter()
                        completion = await self.backend.complete(call)
                    finally:
                        self._reserved -= worst
                    self.stats.latencies.append(time.perf_counter() - start)
                    self._account(completion, worst)
                    return completion
            except TransientError as e:
                if attempt == self.cfg.max_retries:
                    raise RequestFailed(f"{e} (after {attempt + 1} tries)") from None
                self.stats.retried += 1
                await asyncio.sleep(self._backoff(attempt, e.retry_after))
            except FatalBackendError as e:
                raise RequestFailed(str(e)) from None
        raise AssertionError("unreachable")

    def _account(self, completion: Completion, worst: int) -> None:
        used = completion.usage.get("prompt_tokens", 0) + completion.usage.get("completion_tokens", 0)
        self.stats.prompt_tokens += completion.usage.get("prompt_tokens", 0)
        self.stats.completion_tokens += completion.usage.get("completion_tokens", 0)
        self._limiter.correct(worst, used or worst)
        if completion.pause_s:
            self._limiter.hold(completion.pause_s)

    async def fulfil(self, req: Request) -> dict:
        """Collect `n` valid choices. A call that brings an invalid or missing choice uses up one of
        `invalid_retries` extra calls; calls that only make up for a server ignoring `n` do not."""
        n = req.sampling.n
        valid: list[tuple[dict, str, str | None]] = []
        rejected: list[dict] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        calls = bad_calls = 0
        while len(valid) < n and bad_calls <= self.cfg.invalid_retries:
            want = n - len(valid)
            sampling = Sampling(**{**asdict(req.sampling), "n": want, "seed": req.sampling.seed + calls})
            completion = await self._call(Call(req.template.messages(req.class_name), sampling,
                                               req.template.schema))
            calls += 1
            for k in usage:
                usage[k] += completion.usage.get(k, 0)
            before = len(rejected)
            for choice in completion.choices[:want]:
                try:
                    if choice.finish_reason == "length":
                        raise InvalidReply("cut at max_tokens (finish_reason=length)")
                    valid.append((req.template.parse(choice.text), choice.text or "", choice.finish_reason))
                except InvalidReply as e:
                    self.stats.invalid += 1
                    rejected.append({"text": choice.text, "finish_reason": choice.finish_reason,
                                     "reason": str(e)})
            if not completion.choices:
                rejected.append({"text": None, "finish_reason": None, "reason": "reply has no choices"})
            bad_calls += len(rejected) > before
        return self._row(req, valid, rejected, usage, calls)

    def _row(self, req: Request, valid: list, rejected: list, usage: dict, calls: int) -> dict:
        return {
            "key": req.key,
            "status": "ok" if valid else "invalid",
            "class_id": req.class_id,
            "request": req.canonical,
            "structured": self.backend.active_structured,
            "choices": [v[0] for v in valid],
            "raw": [v[1] for v in valid],
            "finish_reasons": [v[2] for v in valid],
            "rejected": rejected,
            "usage": usage,
            "calls": calls,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    async def run_one(self, req: Request) -> None:
        label = f"class {req.class_name!r} [{req.template.name}]"
        try:
            row = await self.fulfil(req)
        except RequestFailed as e:
            self.stats.failed += 1
            self.stats.failed_requests.append(f"{label}: {e}")
            return
        except BudgetReached as e:
            self.stats.skipped += 1
            self.stats.failed_requests.append(f"{label}: {e}")
            return
        if row["status"] != "ok":
            self.stats.invalid_requests.append(f"{label}: {row['rejected'][-1]['reason']}")
        self.cache.append(row)


def estimate_tokens(call: Call) -> int:
    """Worst-case tokens of one call: the prompt at ~4 characters a token, plus max_tokens per choice."""
    prompt = sum(len(m["content"]) for m in call.messages) // 4 + 1
    return prompt + call.sampling.max_tokens * call.sampling.n


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
    """The end-of-run summary: requests, calls, tokens, wall time, latency percentiles, fallbacks."""
    table = Table(title="prompt generation", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    lat = "/".join("-" if v is None else f"{v:.2f}" for v in (stats.latency(0.5), stats.latency(0.9),
                                                               stats.latency(1.0)))
    rows = [
        ("requests", f"{stats.requests} ({stats.cached} cached)"),
        ("calls sent", str(stats.sent)),
        ("retried", str(stats.retried)),
        ("invalid replies", str(stats.invalid)),
        ("failed", str(stats.failed)),
        ("over budget (not sent)", str(stats.skipped)),
        ("tokens in/out", f"{stats.prompt_tokens}/{stats.completion_tokens}"),
        ("wall time", f"{stats.wall_s:.2f} s"),
        ("latency p50/p90/max", f"{lat} s"),
        ("classes with fallback text", f"{stats.fell_back} of {stats.classes}"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    return table
