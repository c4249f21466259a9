"""One cache location for everything pcle derives and may recompute: `$PCLE_CACHE`, by default
`$XDG_CACHE_HOME/pcle` (`~/.cache/pcle`). Nothing is written under the folder a command runs from."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    if os.environ.get("PCLE_CACHE"):
        return Path(os.environ["PCLE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "pcle"


def text_embedding_cache() -> str:
    """Default of `prompt.cache_dir`: PCKE's embedded corpus texts, keyed by encoder and texts."""
    return str(cache_root() / "text-embeddings")
