"""The allowed range of every numeric option of `generate` (and `diff`), checked before anything runs.

Without these checks `--n 0` crashed with an IndexError, `--max-retries -1` with "unreachable",
`--tpm -100` stalled forever, `--concurrency 0` ran as 1, `--rpm 0` meant no limit, `--timeout 0`
failed every call as a timeout and `--temperature -1` went straight to the server. Each option now
gets one line naming it, the allowed range and the value given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from knowledge_engine.errors import KnowledgeEngineError


@dataclass(frozen=True)
class Range:
    option: str
    low: float
    high: float = math.inf
    low_open: bool = False  # the low end itself is not allowed (a rate or a timeout of 0)
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        low = f"above {self.low:g}" if self.low_open else f"of at least {self.low:g}"
        if self.high == math.inf:
            return f"{kind} {low}"
        if self.low_open:
            return f"{kind} above {self.low:g} and at most {self.high:g}"
        return f"{kind} from {self.low:g} to {self.high:g}"

    def check(self, value: float | None) -> None:
        if value is None:
            return
        bad = (isinstance(value, float) and not math.isfinite(value)) or value > self.high \
            or value < self.low or (self.low_open and value == self.low)
        if bad:
            raise KnowledgeEngineError(f"{self.option}: must be {self.describe()} (got {value:g})")


RANGES = {
    "n": Range("--n", 1, 128, integer=True),  # the OpenAI API's own limit on n
    "temperature": Range("--temperature", 0, 2),
    "top_p": Range("--top-p", 0, 1, low_open=True),
    "max_tokens": Range("--max-tokens", 1, 1_000_000, integer=True),
    "seed": Range("--seed", 0, 2**63 - 1, integer=True),
    "concurrency": Range("--concurrency", 1, 1024, integer=True),
    "max_retries": Range("--max-retries", 0, 100, integer=True),
    "invalid_retries": Range("--invalid-retries", 0, 100, integer=True),
    "backoff_base": Range("--backoff-base", 0, 3600),
    "backoff_max": Range("--backoff-max", 0, 3600),
    "timeout": Range("--timeout", 0, 86400, low_open=True),
    "rpm": Range("--rpm", 0, low_open=True),
    "tpm": Range("--tpm", 0, low_open=True),
    "max_tokens_total": Range("--max-tokens-total", 1, integer=True),
    "tensor_parallel_size": Range("--tensor-parallel-size", 1, 1024, integer=True),
}


def check_generate_options(opts) -> None:
    """Every numeric option of a GenerateOptions within its range, or one KnowledgeEngineError."""
    s, r, b = opts.sampling, opts.run, opts.backend
    values = {"n": s.n, "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens,
              "seed": s.seed, "concurrency": r.concurrency, "max_retries": r.max_retries,
              "invalid_retries": r.invalid_retries, "backoff_base": r.backoff_base, "backoff_max": r.backoff_max,
              "timeout": b.timeout, "rpm": r.rpm, "tpm": r.tpm, "max_tokens_total": r.max_tokens_total,
              "tensor_parallel_size": b.tensor_parallel_size}
    for name, value in values.items():
        RANGES[name].check(value)
