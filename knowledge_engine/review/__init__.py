"""`pcle prompts serve`: a local web page to review and hand-edit corpora (needs the `[serve]` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from knowledge_engine.errors import KnowledgeEngineError


def open_review(paths: list[Path], port: int = 8765, host: str = "127.0.0.1", allow_curated: bool = False,
                threshold: float = 0.9, encoder: str = "minilm", encoder_path: str | None = None,
                regenerate=None) -> None:
    """Check the extra, the encoder and the backend options (`regenerate`: the GenerateOptions of
    `generate`'s flags, None: the button stays off), then serve until Ctrl-C."""
    missing = [m for m in ("starlette", "uvicorn", "jinja2", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise KnowledgeEngineError(f"`pcle prompts serve` needs {', '.join(missing)}: pip install 'pcle[serve]'")
    from corpus.text_encoder import recognizer_encoder
    from knowledge_engine.lint import LintOptions
    from knowledge_engine.review.regenerate import Regenerator
    from knowledge_engine.review.server import serve
    from knowledge_engine.review.session import Review

    regenerator = Regenerator(regenerate) if regenerate is not None else None
    try:
        text_encoder = None if encoder == "none" else recognizer_encoder(encoder, encoder_path)
    except (ValueError, RuntimeError) as e:
        raise KnowledgeEngineError(f"--encoder {encoder}: {e}") from None
    review = Review(list(paths), allow_curated, LintOptions(threshold, encoder, encoder_path), text_encoder,
                    regenerator)
    serve(review, host, port)
