"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted replies and faults.

Used by the tests and by `bench/prompts_bench.py`: it answers `/v1/chat/completions` with
deterministic replies (a function of class name, template, seed and choice index), records every
request, and measures the highest number of requests it had in flight at once. `one_choice` makes
it answer like llama.cpp's server (one choice per call whatever `n` asks); `api_key` makes it
refuse other keys with HTTP 401 (as vLLM's `--api-key` does); `status` answers every request
with that HTTP status (a wrong URL: 404, a forbidden account: 403).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULT_KINDS = ("429", "500", "400", "slow", "malformed", "length", "bad_body", "prose", "field")
# What llama-cpp-python's server (0.3.x) sends back for a `response_format` type it does not know:
# its route handler turns FastAPI's validation error into an OpenAI-style error with status 500.
LLAMA_CPP_FORMATS = ("text", "json_object")


def llama_cpp_format_error(fmt_type: str,
                           app_py: str = "/usr/lib/python3/site-packages/llama_cpp/server/app.py") -> dict:
    """The body of llama-cpp-python 0.3.36's HTTP 500 reply to `response_format: {"type": fmt_type}`
    (captured from the real server; `app_py` is where the server's app.py is installed)."""
    detail = {"type": "literal_error", "loc": ("body", "response_format", "type"),
              "msg": "Input should be 'text' or 'json_object'", "input": fmt_type,
              "ctx": {"expected": "'text' or 'json_object'"}}
    message = (f"1 validation error:\n  {detail}\n\n  File \"{app_py}\", line 376, in create_chat_completion\n"
               "    POST /v1/chat/completions")
    return {"error": {"message": message, "type": "internal_server_error", "param": None, "code": None}}


_ACTION = re.compile(r'action "([^"]+)"')


@dataclass
class Fault:
    """Apply `kind` to the next `times` requests whose class name contains `match` (None: any)."""

    kind: str
    times: int = 1
    match: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    template: str | None = None  # only requests of this template kind (synonyms, parts, combined)
    field: str | None = None  # kind "field": this reply field ...
    text: str | None = None  # ... gets this text (e.g. "The knees bend,.")
    gate: threading.Event | None = None  # kind "slow": answer once this is set (at most `delay` s), not before


@dataclass
class Seen:
    class_name: str
    template: str
    n: int
    seed: int | None
    fault: str | None
    authorization: str | None
    time: float = field(default_factory=time.monotonic)
    response_format: str | None = None  # the request's response_format type
    body: dict = field(default_factory=dict)  # the request's JSON body
    headers: dict = field(default_factory=dict)


def template_kind(text: str) -> str:
    has_syn, has_parts = "synonyms" in text, '"head"' in text
    return "combined" if has_syn and has_parts else "synonyms" if has_syn else "parts"


# one verb per part: a reply saying the same sentence behind every part name is rejected as "all alike"
_PART_VERBS = {"head": "turns", "hands": "grip", "arms": "swing", "hips": "shift", "legs": "bend", "feet": "step"}


def reply_content(class_name: str, template: str, seed: int, index: int) -> dict:
    """Deterministic content; the messy case and spacing exercise the corpus normalisation."""
    syn = [f"  {class_name.upper()}  Now ", f"{class_name} variant {(seed + index) % 3}",
           f"{class_name} now."]
    parts = {p: f"the {p} {verb} during {class_name} ({seed % 2})" for p, verb in _PART_VERBS.items()}
    parts["description"] = f"a person does {class_name}"
    if template == "synonyms":
        return {"synonyms": syn}
    if template == "parts":
        return parts
    return {"synonyms": syn, **parts}


class FakeLLMServer:
    def __init__(self, latency: float = 0.0, ignore_n: bool = False, faults: list[Fault] | None = None,
                 model: str = "fake-model", formats: tuple[str, ...] | None = None,
                 headers: dict[str, str] | None = None, one_choice: bool = False,
                 api_key: str | None = None, status: int | None = None) -> None:
        self.latency = latency
        self.api_key = api_key  # None: any key is accepted
        self.status = status  # every request (models included) is answered with this HTTP status
        # response_format types accepted (None: all); others get llama.cpp's HTTP 500 (LLAMA_CPP_FORMATS)
        self.formats = formats
        self.headers = dict(headers or {})  # sent with every successful reply (rate-limit headers)
        self.ignore_n = ignore_n or one_choice  # one choice per call, like llama.cpp's server
        self.models_seen = 0  # GET /v1/models requests
        self.answered = 0  # chat calls whose reply was sent in full
        self.faults = list(faults or [])
        self.model = model
        self.seen: list[Seen] = []
        self.inflight = 0
        self.max_inflight = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []  # open client connections, for kill()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeLLMServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def kill(self) -> None:
        """Die like a killed server: stop listening and cut every open connection (`stop` alone
        leaves kept-alive connections served by their threads)."""
        self.stop()
        with self._lock:
            conns, self._conns = list(self._conns), []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()
            self.max_inflight = 0

    # --- request handling --------------------------------------------------------------------
    def take_fault(self, class_name: str, template: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.times > 0 and (f.match is None or f.match in class_name) and \
                        (f.template is None or f.template == template):
                    f.times -= 1
                    return f
        return None

    def enter(self) -> None:
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)

    def leave(self) -> None:
        with self._lock:
            self.inflight -= 1

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # read when listening: a burst of connections is never refused


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeLLMServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one reply = two writes; avoid the 40 ms delayed-ACK stall

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.server_state._lock:
            self.server_state._conns.append(self.connection)

    def _refused(self) -> bool:
        """Answer with the configured HTTP status or a 401 for a wrong key; True when answered."""
        state = self.server_state
        if state.status is not None:
            self._send(state.status, {"error": {"message": f"scripted HTTP {state.status}", "type": "error"}})
            return True
        if state.api_key is not None and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            self._send(401, {"error": {"message": "Unauthorized", "type": "invalid_api_key"}})
            return True
        return False

    def do_GET(self) -> None:
        state = self.server_state
        with state._lock:
            state.models_seen += 1
        if self._refused():
            return
        if not self.path.rstrip("/").endswith("/models"):
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        self._send(200, {"object": "list", "data": [{"id": state.model, "object": "model"}]})

    def do_POST(self) -> None:
        state = self.server_state
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        state.enter()
        try:
            self._answer(state, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
        finally:
            state.leave()

    def _answer(self, state: FakeLLMServer, body: dict) -> None:
        user = next((m["content"] for m in reversed(body.get("messages", [])) if m["role"] == "user"), "")
        found = _ACTION.findall(user)
        name = found[-1] if found else user
        template = template_kind(user)
        fault = state.take_fault(name, template)
        n = int(body.get("n") or 1)
        fmt = (body.get("response_format") or {}).get("type")
        state.record(Seen(name, template, n, body.get("seed"), fault.kind if fault else None,
                          self.headers.get("Authorization"), response_format=fmt, body=body,
                          headers=dict(self.headers.items())))
        if self._refused():
            return
        if state.latency:
            time.sleep(state.latency)
        if fmt is not None and state.formats is not None and fmt not in state.formats:
            self._send(500, llama_cpp_format_error(fmt))
            return
        if fault is not None and self._fault(fault):
            return
        count = 1 if state.ignore_n else n
        seed = int(body.get("seed") or 0)
        contents = [json.dumps(reply_content(name, template, seed, i)) for i in range(count)]
        finish = "stop"
        if fault is not None and fault.kind == "malformed":
            contents = ["Sure! Here is the JSON: {synonyms: [oops"] * count
        if fault is not None and fault.kind == "field":
            contents = [json.dumps({**json.loads(c), fault.field: fault.text}) for c in contents]
        if fault is not None and fault.kind == "length":
            contents, finish = [c[: len(c) // 2] for c in contents], "length"
        if fmt is None or (fault is not None and fault.kind == "prose"):  # no JSON mode: chatty answers
            contents = [f"Sure! Here is the JSON you asked for:\n```json\n{c}\n```\nHope it helps." for c in contents]
        self._send(200, _completion(state.model, contents, finish, user), state.headers)
        with state._lock:
            state.answered += 1

    def _fault(self, fault: Fault) -> bool:
        """Answer with the fault; True when the reply has been sent."""
        if fault.kind == "429":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}}, headers)
            return True
        if fault.kind == "500":
            self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
            return True
        if fault.kind == "400":
            self._send(400, {"error": {"message": "This model's maximum context length is 8 tokens",
                                       "type": "invalid_request_error"}})
            return True
        if fault.kind == "slow":
            if fault.gate is not None:
                fault.gate.wait(fault.delay)
            else:
                time.sleep(fault.delay)
            return False
        if fault.kind == "bad_body":
            self._send_raw(200, b"{this is not json", "application/json")
            return True
        return False

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(self, status: int, data: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def _completion(model: str, contents: list[str], finish: str, prompt: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": c}, "finish_reason": finish}
                    for i, c in enumerate(contents)],
        "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": sum(len(c) for c in contents) // 4,
                  "total_tokens": len(prompt) // 4 + sum(len(c) for c in contents) // 4},
    }
