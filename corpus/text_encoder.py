"""The narrow text-encoder interface the corpus checks use, and the one place it meets the recognizer.

Stage 1 (the linter's near-duplicate checks, the review page) needs sentence embeddings but nothing
else of stage 2, so it sees an encoder only as `TextEncoder.encode(texts) -> (N, D) array`.
`recognizer_encoder` is the wiring point: it adapts the recognizer's configured text encoder (the one
training would embed the corpus with) to that interface. No other module of `corpus` or
`knowledge_engine` imports `recognizer` (tests/test_corpus_contract.py checks it).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class TextEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray:
        """(N,) texts -> (N, D) float embeddings (not necessarily normalised)."""
        ...


def cosine_matrix(encoder: TextEncoder, texts: list[str]) -> np.ndarray:
    """(N, N) cosine similarities of the texts' embeddings."""
    emb = np.asarray(encoder.encode(texts), dtype=np.float32)  # (N, D)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    return emb @ emb.T


class _RecognizerEncoder:
    """The recognizer's torch text encoder behind `TextEncoder` (no gradients, numpy out)."""

    def __init__(self, module) -> None:
        self.module = module

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.module.encode(texts).float().cpu().numpy()  # (N, D)


_ENCODERS: dict[tuple[str, str | None], TextEncoder] = {}


def recognizer_encoder(kind: str = "minilm", path: str | None = None) -> TextEncoder:
    """The recognizer's text encoder of this kind (config `text.encoder`, `text.path`); one per kind and
    path per process (loading MiniLM takes seconds)."""
    key = (kind, path)
    if key not in _ENCODERS:
        from recognizer.method.text_encoder import TextConfig, build_text_encoder

        _ENCODERS[key] = _RecognizerEncoder(build_text_encoder(TextConfig(encoder=kind, path=path)))
    return _ENCODERS[key]
