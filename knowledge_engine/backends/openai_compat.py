"""Any OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, Ollama, the OpenAI API).

The `openai` client's own retries are switched off: retries with backoff are done by the caller
so that every backend counts and bounds them the same way.

Structured output is negotiated once per server: servers differ in which `response_format` they
take (llama-cpp-python's server answers HTTP 500 "Input should be 'text' or 'json_object'" to
`json_schema`). A 4xx/5xx whose error text names the response format moves this backend down one
step, json_schema -> json_object (with the schema, which llama.cpp enforces) -> none (the template
asks for JSON and the reply's JSON object is extracted from prose or a fenced block). The cache key
keeps the requested mode, so a rerun finds its replies; `run.py` records what the server accepted.
"""

from __future__ import annotations

import email.utils
import json
import re
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
NEXT_MODE = {"json_schema": "json_object", "json_object": "none"}
_FORMAT_ERROR = re.compile(r"response_format|json_schema|json_object", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
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
        self.active_structured = structured
        self.negotiation = []
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

    @property
    def endpoint(self) -> str:
        return f"{self.base_url or 'api.openai.com'} {self.model}"

    async def complete(self, call: Call) -> Completion:
        while True:
            mode = self.active_structured
            try:
                raw = await self._client.chat.completions.with_raw_response.create(**self._kwargs(call, mode))
                resp = raw.parse()
            except openai.APIStatusError as e:
                if call.schema is not None and mode in NEXT_MODE and _FORMAT_ERROR.search(self._detail(e)):
                    self._downgrade(mode, f"HTTP {e.status_code}: {self._detail(e)}")
                    continue  # asked again at once in the next mode: not a transport retry
                raise self._classify(e) from None
            except Exception as e:  # classified below; the message is rebuilt without secrets
                raise self._classify(e) from None
            completion = _to_completion(resp)
            completion.pause_s = rate_limit_pause(raw.headers)
            return completion

    def _kwargs(self, call: Call, mode: str) -> dict:
        s = call.sampling
        kwargs: dict = dict(model=self.model, messages=call.messages, n=s.n, seed=s.seed,
                            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)
        fmt = response_format(mode, call.schema)
        if fmt is not None:
            kwargs["response_format"] = fmt
        return kwargs

    def _downgrade(self, mode: str, error: str) -> None:
        """Step down one structured-output mode, once per server (concurrent calls see the same error)."""
        if self.active_structured == mode:
            self.active_structured = NEXT_MODE[mode]
            self.negotiation.append(f"{self.base_url} rejected response_format {mode!r} ({error}); "
                                    f"now using {self.active_structured!r}")

    def _detail(self, e: openai.APIStatusError) -> str:
        """The server's own error text (OpenAI-style `error.message`, else the body), without secrets."""
        body = e.body
        if isinstance(body, dict):
            text = body.get("message") or json.dumps(body, ensure_ascii=False)
        elif isinstance(body, str) and body:
            text = body
        else:
            text = e.response.text if e.response is not None else str(e)
        return redact(" ".join(str(text).split()), [self._secret])[:300]

    def _classify(self, e: Exception) -> Exception:
        if isinstance(e, openai.APITimeoutError):
            return TransientError("timeout")
        if isinstance(e, openai.APIConnectionError):
            return TransientError("connection error")
        if isinstance(e, openai.APIStatusError):
            status, detail = e.status_code, self._detail(e)
            if status == 429:
                wait = retry_after(e.response.headers)
                if wait is None:
                    wait = rate_limit_pause(e.response.headers, force=True)
                return TransientError(f"HTTP 429: {detail}", retry_after=wait)
            if status >= 500 or status in (408, 409):
                return TransientError(f"HTTP {status}: {detail}")
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


def duration_s(text: str) -> float | None:
    """Seconds from a rate-limit reset value: plain seconds (`2.5`) or OpenAI's `1m30s`, `20ms`."""
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(a + u for a, u in parts) != text.replace(" ", ""):
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(a) * scale[u] for a, u in parts)


def rate_limit_pause(headers, force: bool = False) -> float | None:
    """How long to hold off new calls per the server's `x-ratelimit-*` headers: the longest reset of a
    quota whose remaining count is 0 (`force`: of any quota, for a 429 without Retry-After)."""
    if headers is None:
        return None
    waits = []
    for quota in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{quota}")
        reset = headers.get(f"x-ratelimit-reset-{quota}")
        if reset is None or (not force and (remaining is None or remaining.strip() not in ("0", "0.0"))):
            continue
        wait = duration_s(reset.strip())
        if wait is not None:
            waits.append(wait)
    return max(waits) if waits else None


def _to_completion(resp) -> Completion:
    choices = [Choice(text=c.message.content if c.message else None, finish_reason=c.finish_reason)
               for c in (resp.choices or [])]
    usage = {}
    if resp.usage is not None:
        usage = {"prompt_tokens": resp.usage.prompt_tokens or 0,
                 "completion_tokens": resp.usage.completion_tokens or 0}
    return Completion(choices=choices, usage=usage)
