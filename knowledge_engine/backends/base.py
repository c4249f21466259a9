"""The backend interface: one chat call in, choices with finish reasons and token usage out.

Backends do no retrying of their own: they classify failures as transient (`TransientError`, the
caller backs off and retries) or fatal (`FatalBackendError`), so that retries, backoff and the
concurrency bound live in one place (`generate.py`) and behave the same for every backend.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from knowledge_engine.errors import KnowledgeEngineError


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one call. `n` choices are asked for; a server may return fewer."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int = 0
    n: int = 1


@dataclass(frozen=True)
class Call:
    messages: list[dict[str, str]]
    sampling: Sampling
    schema: dict | None = None


@dataclass(frozen=True)
class Choice:
    text: str | None
    finish_reason: str | None


@dataclass
class Completion:
    choices: list[Choice]
    usage: dict[str, int] = field(default_factory=dict)
    pause_s: float | None = None  # the server's rate-limit headers ask to hold off new calls this long


class TransientError(Exception):
    """Worth retrying after a pause (429, 5xx, timeout, connection error)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class FatalBackendError(KnowledgeEngineError):
    """Retrying cannot help (bad request, authentication, missing model)."""


class Backend(abc.ABC):
    """One LLM endpoint. `kind` and `model` are part of every cache key."""

    kind: str = "base"
    model: str = ""
    structured: str = "none"
    # Upper bound on useful concurrent calls (None: as many as the caller allows).
    max_concurrency: int | None = None
    # The structured-output mode in use; differs from `structured` (the requested mode, part of the
    # cache key) after a server rejected it. `negotiation` says what was rejected and why.
    negotiation: list[str] | tuple[str, ...] = ()
    endpoint: str = ""  # identifies the server for the negotiation record in the cache

    @property
    def active_structured(self) -> str:
        return self.__dict__.get("_active_structured", self.structured)

    @active_structured.setter
    def active_structured(self, mode: str) -> None:
        self.__dict__["_active_structured"] = mode

    @abc.abstractmethod
    async def complete(self, call: Call) -> Completion:
        """Send one chat call. Raise TransientError or FatalBackendError on failure."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections, processes or models."""


def redact(text: str, secrets: list[str | None]) -> str:
    """Remove secrets from a message before it can reach a log, a cache row or an exception."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text
