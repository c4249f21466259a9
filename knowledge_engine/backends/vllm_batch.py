"""vLLM's in-process batch API for a GPU box (`pip install '.[vllm]'`), imported lazily.

Calls arriving within a short window are gathered into one `LLM.chat` batch: vLLM is fastest when
it sees every prompt at once, while the generator keeps its simple one-coroutine-per-request shape.
"""

from __future__ import annotations

import asyncio

from knowledge_engine.backends.base import Backend, Call, Choice, Completion, FatalBackendError, Sampling

_MISSING = (
    "the vllm backend needs vLLM, which is not installed: `pip install '.[vllm]'` on a machine with a GPU "
    "(or run `vllm serve MODEL` and use --base-url http://127.0.0.1:8000/v1 instead)"
)


def _import_vllm():
    try:
        import vllm
    except ImportError:
        raise FatalBackendError(_MISSING) from None
    return vllm


def structured_kwargs(schema: dict | None) -> dict:
    """`structured_outputs=StructuredOutputsParams(json=...)` (vLLM >= 0.10), else the older
    `guided_decoding=GuidedDecodingParams(json=...)`."""
    if schema is None:
        return {}
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema)}
    return {"structured_outputs": StructuredOutputsParams(json=schema)}


class VLLMBatchBackend(Backend):
    kind = "vllm"

    def __init__(self, model: str, structured: str = "json_schema", tensor_parallel_size: int = 1,
                 batch_window: float = 0.05) -> None:
        vllm = _import_vllm()
        self.model = model
        self.structured = structured
        self._vllm = vllm
        self._llm = vllm.LLM(model=model, tensor_parallel_size=tensor_parallel_size)
        self._window = batch_window
        self._pending: list[tuple[Call, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def complete(self, call: Call) -> Completion:
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((call, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(self._window)
            batch, self._pending = self._pending, []
            try:
                results = await asyncio.to_thread(self._run, [c for c, _ in batch])
            except Exception as e:  # one failure fails the whole batch; the caller retries
                for _, fut in batch:
                    fut.set_exception(FatalBackendError(f"vllm: {type(e).__name__}: {e}"))
                continue
            for (_, fut), res in zip(batch, results, strict=True):
                fut.set_result(res)

    def _params(self, s: Sampling, schema: dict | None):
        extra = structured_kwargs(schema) if self.structured != "none" else {}
        return self._vllm.SamplingParams(n=s.n, seed=s.seed, temperature=s.temperature, top_p=s.top_p,
                                         max_tokens=s.max_tokens, **extra)

    def _run(self, calls: list[Call]) -> list[Completion]:
        outputs = self._llm.chat(
            [c.messages for c in calls],
            sampling_params=[self._params(c.sampling, c.schema) for c in calls],
            use_tqdm=False,
        )
        return [_to_completion(o) for o in outputs]


def _to_completion(out) -> Completion:
    choices = [Choice(text=o.text, finish_reason=o.finish_reason) for o in out.outputs]
    usage = {
        "prompt_tokens": len(out.prompt_token_ids or []),
        "completion_tokens": sum(len(o.token_ids) for o in out.outputs),
    }
    return Completion(choices=choices, usage=usage)
