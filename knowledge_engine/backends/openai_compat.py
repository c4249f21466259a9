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
from pathlib import PurePosixPath

import openai

from knowledge_engine.backends.base import (
    Backend,
    Call,
    Choice,
    Completion,
    FatalBackendError,
    TransientError,
    redact,
    safe_url,
    url_secrets,
)
from knowledge_engine.backends.plan import STRUCTURED_MODES

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
        headers: dict[str, str] | None = None,
        extra_body: dict | None = None,
    ) -> None:
        if structured not in STRUCTURED_MODES:
            raise FatalBackendError(f"--structured: {structured!r} is not one of {STRUCTURED_MODES}")
        self.model = model
        self.structured = structured
        self.active_structured = structured
        self.negotiation = []
        self.base_url = base_url
        self.shown_url = safe_url(base_url) or "https://api.openai.com/v1"
        self.extra_body = dict(extra_body or {})
        # the key, credentials in the URL and custom header values never reach a message or a file
        self._secrets = [api_key, *url_secrets(base_url), *(headers or {}).values()]
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or _PLACEHOLDER_KEY,
            timeout=timeout,
            max_retries=0,
            default_headers=headers or None,
        )

    def __repr__(self) -> str:
        return f"OpenAICompatBackend(base_url={self.shown_url!r}, model={self.model!r})"

    @property
    def endpoint(self) -> str:
        return f"{safe_url(self.base_url) or 'api.openai.com'} {self.model}"

    async def check(self) -> None:
        """GET /models: the server is there, takes the key and serves the model (one request, before any
        chat call, so a wrong URL, key or model costs one line instead of a failure per class)."""
        try:
            page = await self._client.models.list()
        except openai.APIStatusError as e:
            status, detail = e.status_code, self._detail(e)
            if status == 404:
                raise FatalBackendError(f"{self.shown_url}/models: HTTP 404 ({detail}): no OpenAI-compatible "
                                        "API at this URL (it usually ends in /v1)", 404) from None
            if status in (401, 403):
                raise FatalBackendError(f"{self.shown_url}: HTTP {status}: the server rejects the API key "
                                        f"(--api-key / OPENAI_API_KEY): {detail}", status) from None
            raise self._classify(e) from None
        except Exception as e:
            raise self._classify(e) from None
        ids = [str(getattr(m, "id", "")) for m in (page.data or [])]
        if ids and not any(self.model in (i, PurePosixPath(i).name, i.removesuffix(":latest")) for i in ids):
            listed = ", ".join(repr(i) for i in ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            raise FatalBackendError(f"{self.shown_url}: the server does not serve model {self.model!r} (it "
                                    f"serves {listed}); set --model, or --no-check-server to send anyway", 404)

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
            completion.status = raw.status_code
            return completion

    def _kwargs(self, call: Call, mode: str) -> dict:
        s = call.sampling
        kwargs: dict = dict(model=self.model, messages=call.messages, n=s.n, seed=s.seed,
                            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens)
        fmt = response_format(mode, call.schema)
        if fmt is not None:
            kwargs["response_format"] = fmt
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body  # --extra-body: stop sequences, guided decoding, ...
        return kwargs

    def _downgrade(self, mode: str, error: str) -> None:
        """Step down one structured-output mode, once per server (concurrent calls see the same error)."""
        if self.active_structured == mode:
            self.active_structured = NEXT_MODE[mode]
            self.negotiation.append(f"{self.shown_url} rejected response_format {mode!r} ({error}); "
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
        return redact(" ".join(str(text).split()), self._secrets)[:300]

    def _classify(self, e: Exception) -> Exception:
        if isinstance(e, openai.APITimeoutError):
            return TransientError("timeout", kind="timeout")
        if isinstance(e, openai.APIConnectionError):
            # httpx's (httpx2's in openai 3) ConnectError: refused, no such host: nobody answers
            if any(c.__name__ == "ConnectError" for c in type(e.__cause__).__mro__):
                return TransientError(f"connection error ({_reason(e.__cause__)})", kind="connect")
            return TransientError("connection error")
        if isinstance(e, openai.APIStatusError):
            status, detail = e.status_code, self._detail(e)
            if status == 429:
                wait = retry_after(e.response.headers)
                if wait is None:
                    wait = rate_limit_pause(e.response.headers, force=True)
                return TransientError(f"HTTP 429: {detail}", retry_after=wait, status=429, kind="http")
            if status >= 500 or status in (408, 409):
                return TransientError(f"HTTP {status}: {detail}", status=status, kind="http")
            return FatalBackendError(f"HTTP {status} for model {self.model!r}: {detail}", status)
        if isinstance(e, openai.APIResponseValidationError | ValueError):
            return TransientError(f"malformed response ({type(e).__name__})")
        return TransientError(f"{type(e).__name__}")

    async def aclose(self) -> None:
        await self._client.close()


def _reason(e: Exception) -> str:
    """A connection error's reason without the address (the URL is named once, by the caller)."""
    chain, seen = [], set()
    while e is not None and id(e) not in seen:  # the OS error is a few causes down (httpcore, anyio)
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(x, ConnectionRefusedError) for x in chain):
        return "connection refused"
    text = " ".join(str(chain[-1]).split()) or type(chain[-1]).__name__
    low = text.lower()
    if "name or service not known" in low or "nodename nor servname" in low or "name resolution" in low:
        return "unknown host"
    return text[:120]


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
    return Completion(choices=choices, usage=usage, server_model=getattr(resp, "model", None))
