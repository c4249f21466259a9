"""The generation run: work out which requests the cache lacks, send only those, cache each reply.

Retries, backoff, rate limits and the concurrency bound live here (not in the backends) so that every
backend behaves alike: transport failures (429 honouring Retry-After, 5xx, timeouts, connection
errors) are retried with exponential backoff and jitter; invalid or truncated replies are asked again
with a derived seed; a server that returns fewer than `n` choices is asked again until it has given
`n`. A request the server refuses outright (HTTP 400, ...) fails alone: the other classes finish.

A killed run keeps its work: every call's choices are cached as they arrive (a `partial` row that
the next run resumes from), and calls are scheduled depth-first (a request that already had a call
gets the next free slot before a later request starts), so requests finish one after another and a
kill loses at most the calls in flight. A fatal error that no other request can escape (HTTP 401,
403 or 404, or a server that cannot be reached after every retry) stops the run at once: the
requests not yet sent are counted, not each reported.
"""

from __future__ import annotations

import asyncio
import heapq
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
from knowledge_engine.call_log import CallLog
from knowledge_engine.templates import InvalidReply, Template
from knowledge_engine.text_checks import canon, norm_name, norm_sentence, reply_texts, template_examples, text_problems


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
    check_server: bool = True  # ask the server for its models (is it there, is the key good) first


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
    resumed: int = 0  # requests that continued from the choices a killed run had cached
    stopped: int = 0  # requests not sent because a fatal error stopped the run (not cached)
    stop_reason: str | None = None  # that error, naming the server once
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


class RunStopped(Exception):
    """A fatal error that every request would hit stopped the run; this request was not sent."""


# HTTP statuses that no other request of the same run can escape: a bad key, a forbidden account,
# a wrong URL or model. The first one stops the run (HTTP 400 and the like stay per-request).
STOP_STATUSES = (401, 403, 404)


class DepthFirstSlots:
    """A semaphore whose waiters are served in request order, not arrival order: a request that
    already had a call gets the next free slot before a later request makes its first, so requests
    finish one after another and a killed run leaves complete rows behind."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: list[tuple[int, int, asyncio.Future]] = []  # heap of (order, arrival, future)
        self._arrivals = 0

    async def acquire(self, order: int) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (order, self._arrivals, fut))
        self._arrivals += 1
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as the waiter was cancelled
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the earliest request waiting
                return
        self._free += 1


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
            extra = getattr(backend, "extra_body", None)
            if extra:  # only when given, so the keys of every run without --extra-body stay as they were
                canonical["extra_body"] = extra
            out.append(Request(cid, name, t, sampling, canonical, request_key(canonical)))
    return out


def missing(requests: list[Request], cache: Cache, retry_invalid: bool) -> list[Request]:
    """Requests with no finished row: none, a partial one (a killed run's), or with `retry_invalid`
    an invalid one."""
    def needed(r: Request) -> bool:
        row = cache.get(r.key)
        return row is None or row.get("status") == "partial" or (retry_invalid and row.get("status") != "ok")

    return [r for r in requests if needed(r)]


@dataclass
class Collected:
    """What a request has collected so far; cached as a `partial` row after every call."""

    valid: list[tuple[dict, str, str | None]] = field(default_factory=list)  # (parsed, raw, finish)
    rejected: list[dict] = field(default_factory=list)
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    calls: int = 0
    bad_calls: int = 0

    @classmethod
    def resume(cls, row: dict | None) -> Collected:
        """Continue from a killed run's partial row (a finished or absent row starts afresh)."""
        if row is None or row.get("status") != "partial":
            return cls()
        valid = list(zip(row["choices"], row.get("raw") or [""] * len(row["choices"]),
                         row.get("finish_reasons") or [None] * len(row["choices"]), strict=False))
        usage = {k: int((row.get("usage") or {}).get(k, 0)) for k in ("prompt_tokens", "completion_tokens")}
        return cls(valid, list(row.get("rejected") or []), usage, int(row.get("calls") or 0),
                   int(row.get("bad_calls") or 0))


class Runner:
    def __init__(self, backend: Backend, cache: Cache, cfg: RunConfig, stats: Stats,
                 log: CallLog | None = None) -> None:
        self.backend, self.cache, self.cfg, self.stats, self.log = backend, cache, cfg, stats, log
        limit = cfg.concurrency if backend.max_concurrency is None else min(cfg.concurrency,
                                                                           backend.max_concurrency)
        self._slots = DepthFirstSlots(max(1, limit))
        self._rng = random.Random()
        self._limiter = RateLimiter(cfg.rpm, cfg.tpm)
        self._reserved = 0  # worst-case tokens of calls in flight, for the budget
        template_examples()  # read the templates now, not on the first reply (that would stall calls)

    def _stop(self, reason: str) -> None:
        """The first fatal error every request would hit stops the run; later ones are not reported."""
        if self.stats.stop_reason is None:
            self.stats.stop_reason = reason

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

    async def _call(self, call: Call, req: Request, order: int) -> Completion:
        worst = estimate_tokens(call)
        for attempt in range(self.cfg.max_retries + 1):
            if self.stats.stop_reason is not None:
                raise RunStopped(self.stats.stop_reason)
            start = time.perf_counter()
            try:
                await self._slots.acquire(order)  # a slot is held only while a call is in flight
                try:
                    if self.stats.stop_reason is not None:
                        raise RunStopped(self.stats.stop_reason)
                    self._reserve(worst)
                    try:
                        await self._limiter.wait(worst)
                        self.stats.sent += 1
                        start = time.perf_counter()
                        completion = await self.backend.complete(call)
                    finally:
                        self._reserved -= worst
                finally:
                    self._slots.release()
                latency = time.perf_counter() - start
                self.stats.latencies.append(latency)
                self._account(completion, worst)
                self._log(req, call, attempt, latency, completion=completion)
                return completion
            except TransientError as e:
                self._log(req, call, attempt, time.perf_counter() - start, error=e)
                if attempt == self.cfg.max_retries:
                    if e.kind == "connect":
                        self._stop(f"{self.backend.shown_url}: {e} (after {attempt + 1} tries)")
                    raise RequestFailed(f"{e} (after {attempt + 1} tries)") from None
                self.stats.retried += 1
                await asyncio.sleep(self._backoff(attempt, e.retry_after))
            except FatalBackendError as e:
                self._log(req, call, attempt, time.perf_counter() - start, error=e)
                if e.status in STOP_STATUSES:
                    self._stop(f"{self.backend.shown_url}: {e}")
                raise RequestFailed(str(e)) from None
        raise RequestFailed(f"no call made (--max-retries {self.cfg.max_retries})")

    def _log(self, req: Request, call: Call, attempt: int, latency: float,
             completion: Completion | None = None, error: Exception | None = None) -> None:
        if self.log is not None:
            self.log.write(req.key, req.class_name, req.template.name, attempt, call, latency,
                           self.backend, completion, error)

    def _account(self, completion: Completion, worst: int) -> None:
        used = completion.usage.get("prompt_tokens", 0) + completion.usage.get("completion_tokens", 0)
        self.stats.prompt_tokens += completion.usage.get("prompt_tokens", 0)
        self.stats.completion_tokens += completion.usage.get("completion_tokens", 0)
        self._limiter.correct(worst, used or worst)
        if completion.pause_s:
            self._limiter.hold(completion.pause_s)

    async def fulfil(self, req: Request, order: int = 0) -> dict:
        """Collect `n` valid choices. A call that brings an invalid or missing choice uses up one of
        `invalid_retries` extra calls; calls that only make up for a server ignoring `n` do not.
        After each call that leaves the request unfinished, what it has is cached (`partial`)."""
        n = req.sampling.n
        p = Collected.resume(self.cache.get(req.key))
        self.stats.resumed += p.calls > 0
        while len(p.valid) < n and p.bad_calls <= self.cfg.invalid_retries:
            want = n - len(p.valid)
            sampling = Sampling(**{**asdict(req.sampling), "n": want, "seed": req.sampling.seed + p.calls})
            call = Call(req.template.messages(req.class_name), sampling, req.template.schema)
            completion = await self._call(call, req, order)
            p.calls += 1
            for k in p.usage:
                p.usage[k] += completion.usage.get(k, 0)
            before = len(p.rejected)
            for choice in completion.choices[:want]:
                try:
                    if choice.finish_reason == "length":
                        raise InvalidReply("cut at max_tokens (finish_reason=length)")
                    parsed = req.template.parse(choice.text)
                    check_reply(parsed, req)
                    p.valid.append((parsed, choice.text or "", choice.finish_reason))
                except InvalidReply as e:
                    self.stats.invalid += 1
                    p.rejected.append({"text": choice.text, "finish_reason": choice.finish_reason,
                                       "reason": str(e)})
            if not completion.choices:
                p.rejected.append({"text": None, "finish_reason": None, "reason": "reply has no choices"})
            p.bad_calls += len(p.rejected) > before
            if len(p.valid) < n and p.bad_calls <= self.cfg.invalid_retries:
                self.cache.append(self._row(req, p, "partial"))  # a kill now loses nothing of this call
        return self._row(req, p, "ok" if p.valid else "invalid")

    def _row(self, req: Request, p: Collected, status: str) -> dict:
        return {
            "key": req.key,
            "status": status,
            "class_id": req.class_id,
            "request": req.canonical,
            "structured": self.backend.active_structured,
            "choices": [v[0] for v in p.valid],
            "raw": [v[1] for v in p.valid],
            "finish_reasons": [v[2] for v in p.valid],
            "rejected": p.rejected,
            "usage": dict(p.usage),
            "calls": p.calls,
            "bad_calls": p.bad_calls,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    async def run_one(self, req: Request, order: int = 0) -> None:
        label = f"class {req.class_name!r} [{req.template.name}]"
        try:
            row = await self.fulfil(req, order)
        except RunStopped:
            self.stats.stopped += 1
            return
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


def check_reply(reply: dict, req: Request) -> None:
    """The shared text checks (`text_checks`) on the text as the corpus would get it: a reply that
    `validate` would call an error is rejected here and asked again, never cached as valid."""
    examples = template_examples() | {canon(v) for v in req.template.example_values}
    for where, text in reply_texts(reply):
        shown = norm_name(text) if where.startswith("synonyms") else norm_sentence(text)
        errors = [p for p in text_problems(shown, examples, req.class_name, near=False) if p.level == "error"]
        if errors:
            raise InvalidReply(f"content: {where}: {errors[0].message}")


def estimate_tokens(call: Call) -> int:
    """Worst-case tokens of one call: the prompt at ~4 characters a token, plus max_tokens per choice."""
    prompt = sum(len(m["content"]) for m in call.messages) // 4 + 1
    return prompt + call.sampling.max_tokens * call.sampling.n


async def fetch(requests: list[Request], backend: Backend, cache: Cache, cfg: RunConfig,
                console: Console | None = None, log: CallLog | None = None) -> Stats:
    """Check the server, then send the missing requests concurrently, earliest request first; every
    call's choices are cached at once."""
    stats = Stats(requests=len(requests))
    todo = missing(requests, cache, cfg.retry_invalid)
    stats.cached = len(requests) - len(todo)
    runner = Runner(backend, cache, cfg, stats, log)
    start = time.perf_counter()
    with _progress(console, cfg.progress) as progress:
        task = progress.add_task("requests", total=len(todo))

        async def one(order: int, r: Request) -> None:
            await runner.run_one(r, order)
            progress.advance(task)

        try:
            if todo and cfg.check_server:
                await check_server(backend, cfg)
            await asyncio.gather(*(one(i, r) for i, r in enumerate(todo)))
        finally:
            await backend.aclose()
    stats.wall_s = time.perf_counter() - start
    return stats


async def check_server(backend: Backend, cfg: RunConfig) -> None:
    """Before any request: is the server there, does it take the key, does it serve the model?
    Transient failures are retried like calls; what is still wrong then ends the run, nothing sent."""
    for attempt in range(cfg.max_retries + 1):
        try:
            await backend.check()
            return
        except TransientError as e:
            if attempt == cfg.max_retries:
                raise FatalBackendError(f"{backend.shown_url}: {e} (after {attempt + 1} tries); nothing was "
                                        "sent (is the server running? is --base-url right?)") from None
            await asyncio.sleep(min(cfg.backoff_max, cfg.backoff_base * 2**attempt))


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
