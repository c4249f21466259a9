"""Any OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, Ollama, the OpenAI API).

The `openai` client's own retries are switched off: retries with backoff are done by the caller
so that every backend counts and bounds them the same way.
"""

from __future__ import annotations

import email.utils
import time

import openai

from knowledge_engine.backends.base import (
    Backend,
    Call,
    Choice,
    Completion,
    FatalBackendError,
    TransientError,
    redact,
)

STRUCTURED_MODES = ("json_schema", "json_object", "none")
_PLACEHOLDER_KEY = "not-needed"  # local servers accept any key; the client insists on one


class OpenAICompatBackend(Backend):
    kind = "openai"

    def __init__(
        self,
        base_url: str | None,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        structured: str = "json_schema",
    ) -> None:
        if structured not in STRUCTURED_MODES:
            raise FatalBackendError(f"--structured: {structured!r} is not one of {STRUCTURED_MODES}")
        self.model = model
        self.structured = structured
        self.base_url = base_url
        self._secret = api_key
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or _PLACEHOLDER_KEY,
            timeout=timeout,
            max_retries=0,
        )

    def __repr__(self) -> str:
        return f"OpenAICompatBackend(base_url={self.base_url!r}, model={self.model!r})"

    async def complete(self, call: Call) -> Completion:
        s = call.sampling
        kwargs: dict = dict(
            model=self.model,
            messages=call.messages,
            n=s.n,
            seed=s.seed,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
        )
        fmt = response_format(self.structured, call.schema)
        if fmt is not None:
            kwargs["response_format"] = fmt
        try:
            resp = await self._client.chat.completions.create(**kwargs)
        except Exception as e:  # classified below; the message is rebuilt without secrets
            raise self._classify(e) from None
        return _to_completion(resp)

    def _classify(self, e: Exception) -> Exception:
        if isinstance(e, openai.APITimeoutError):
            return TransientError("timeout")
        if isinstance(e, openai.APIConnectionError):
            return TransientError("connection error")
        if isinstance(e, openai.APIStatusError):
            status = e.status_code
            if status == 429:
                return TransientError("HTTP 429", retry_after=retry_after(e.response.headers))
            if status >= 500 or status in (408, 409):
                return TransientError(f"HTTP {status}")
            detail = redact(str(getattr(e, "message", "")), [self._secret])[:200]
            return FatalBackendError(f"{self.base_url}: HTTP {status} for model {self.model!r}: {detail}")
        if isinstance(e, openai.APIResponseValidationError | ValueError):
            return TransientError(f"malformed response ({type(e).__name__})")
        return TransientError(f"{type(e).__name__}")

    async def aclose(self) -> None:
        await self._client.close()


def response_format(mode: str, schema: dict | None) -> dict | None:
    """The `response_format` field for a structured-output mode (llama.cpp reads `schema` too)."""
    if schema is None or mode == "none":
        return None
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}


def retry_after(headers) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _to_completion(resp) -> Completion:
    choices = [Choice(text=c.message.content if c.message else None, finish_reason=c.finish_reason)
               for c in (resp.choices or [])]
    usage = {}
    if resp.usage is not None:
        usage = {"prompt_tokens": resp.usage.prompt_tokens or 0,
                 "completion_tokens": resp.usage.completion_tokens or 0}
    return Completion(choices=choices, usage=usage)
