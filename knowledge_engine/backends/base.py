"""The backend interface: one chat call in, choices with finish reasons and token usage out.

Backends do no retrying of their own: they classify failures as transient (`TransientError`, the
caller backs off and retries) or fatal (`FatalBackendError`), so that retries, backoff and the
concurrency bound live in one place (`generate.py`) and behave the same for every backend.
"""

from __future__ import annotations

import abc
import urllib.parse
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
    status: int | None = None  # HTTP status of the reply (None: no HTTP)
    server_model: str | None = None  # the model id the server says answered


class TransientError(Exception):
    """Worth retrying after a pause (429, 5xx, timeout, connection error)."""

    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None,
                 kind: str = "other") -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.status = status
        self.kind = kind  # connect (the server cannot be reached at all) | timeout | http | other


class FatalBackendError(KnowledgeEngineError):
    """Retrying cannot help (bad request, authentication, missing model)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


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
    shown_url: str = "the backend"  # how messages name the server (no credentials)

    @property
    def active_structured(self) -> str:
        return self.__dict__.get("_active_structured", self.structured)

    @active_structured.setter
    def active_structured(self, mode: str) -> None:
        self.__dict__["_active_structured"] = mode

    @abc.abstractmethod
    async def complete(self, call: Call) -> Completion:
        """Send one chat call. Raise TransientError or FatalBackendError on failure."""

    async def check(self) -> None:  # noqa: B027 - optional hook
        """Before the first request: raise TransientError or FatalBackendError if this backend cannot
        work (an HTTP server that is not there, rejects the key or does not serve the model)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections, processes or models."""


def redact(text: str, secrets: list[str | None]) -> str:
    """Remove secrets from a message before it can reach a log, a cache row or an exception."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def safe_url(url: str | None) -> str | None:
    """A URL fit to print or store: no user name or password (`http://user:sk-...@host/v1` ->
    `http://host/v1`) and no query values (`?api-key=...`). A URL without them comes back unchanged,
    so cache keys and meta rows made from it stay the same."""
    if not url:
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(f"{k}=***" for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if netloc == parts.netloc and query == parts.query:
        return url
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str | None) -> list[str]:
    """The credentials a URL carries (its password, user name, query values), to redact from messages."""
    if not url:
        return []
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.password, parts.username]
    found += [v for _, v in urllib.parse.parse_qsl(parts.query) if v]
    return [s for s in found if s]
