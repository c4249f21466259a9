"""LLM backends behind one interface; `make_backend` picks one from flags or the environment."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from knowledge_engine.backends.base import Backend, safe_url
from knowledge_engine.errors import KnowledgeEngineError

KINDS = ("auto", "openai", "vllm", "llama", "llama-server")


@dataclass(frozen=True)
class BackendConfig:
    """Everything needed to build a backend. `api_key` is a secret: never logged or cached."""

    kind: str = "auto"
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout: float = 120.0
    structured: str | None = None  # json_schema | json_object | none; None = the backend's default
    tensor_parallel_size: int = 1
    headers: dict[str, str] = field(default_factory=dict)  # --header K:V (values are secrets too)
    extra_body: dict = field(default_factory=dict)  # --extra-body JSON: more request fields

    def __repr__(self) -> str:  # keep the key out of any accidental repr in logs
        return f"BackendConfig(kind={self.kind!r}, base_url={safe_url(self.base_url)!r}, model={self.model!r})"


def check_base_url(url: str | None) -> None:
    """An http(s) URL with a host, or one line saying what is wrong (before anything is sent)."""
    if not url:
        return
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as e:
        raise KnowledgeEngineError(f"--base-url {safe_url(url)!r}: not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KnowledgeEngineError(f"--base-url {safe_url(url)!r}: not an http:// or https:// URL with a host "
                                   "(e.g. http://127.0.0.1:8000/v1)")


def resolve_kind(cfg: BackendConfig) -> str:
    """`auto`: the HTTP backend when a base URL is configured, otherwise the embedded model."""
    if cfg.kind not in KINDS:
        raise KnowledgeEngineError(
            f"--backend: unknown backend {cfg.kind!r} (choose from {', '.join(KINDS)})")
    if cfg.kind != "auto":
        return cfg.kind
    return "openai" if cfg.base_url else "llama"


def check_config(cfg: BackendConfig, kind: str) -> None:
    """What a backend of `kind` needs from flags or the environment, checked before anything is built."""
    if kind == "openai":
        if not cfg.base_url and not cfg.api_key:
            raise KnowledgeEngineError("openai backend: set --base-url (or OPENAI_BASE_URL) or an API key")
        if not cfg.model:
            raise KnowledgeEngineError("openai backend: set --model (or LLM_MODEL)")
        check_base_url(cfg.base_url)
    elif kind == "vllm" and not cfg.model:
        raise KnowledgeEngineError("vllm backend: set --model to a local model directory or name")


DEFAULT_STRUCTURED = {"openai": "json_schema", "vllm": "json_schema", "llama": "json_object",
                      "llama-server": "json_object"}


def plan_backend(cfg: BackendConfig) -> Backend:
    """The backend `make_backend` would build, as far as a dry run needs it (kind, model, structured mode:
    the cache keys), without importing its client library or starting anything."""
    from knowledge_engine.backends.plan import PlannedBackend, missing_package, planned_model

    kind = resolve_kind(cfg)
    check_config(cfg, kind)
    shown = (safe_url(cfg.base_url) or "https://api.openai.com/v1") if kind == "openai" else f"the {kind} backend"
    return PlannedBackend(kind, planned_model(kind, cfg.model), cfg.structured or DEFAULT_STRUCTURED[kind], shown,
                          cfg.extra_body if kind == "openai" else {}, missing_package(kind))


def make_backend(cfg: BackendConfig) -> Backend:
    kind = resolve_kind(cfg)
    check_config(cfg, kind)
    if kind == "openai":
        from knowledge_engine.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(
            base_url=cfg.base_url,
            model=cfg.model,
            api_key=cfg.api_key,
            timeout=cfg.timeout,
            structured=cfg.structured or "json_schema",
            headers=cfg.headers,
            extra_body=cfg.extra_body,
        )
    if kind == "vllm":
        from knowledge_engine.backends.vllm_batch import VLLMBatchBackend

        return VLLMBatchBackend(cfg.model, structured=cfg.structured or "json_schema",
                                tensor_parallel_size=cfg.tensor_parallel_size)
    from knowledge_engine.backends.llama_cpp import LlamaCppBackend, LlamaServerBackend

    if kind == "llama-server":
        return LlamaServerBackend(model_path=cfg.model, timeout=cfg.timeout,
                                  structured=cfg.structured or "json_object")
    return LlamaCppBackend(model_path=cfg.model, structured=cfg.structured or DEFAULT_STRUCTURED["llama"])
