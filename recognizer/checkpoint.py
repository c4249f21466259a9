"""Atomic writes: a crash or Ctrl-C mid-write never leaves a half-written checkpoint or cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# The atomic rename lives with the corpus contract (stage 1 writes corpora and caches without torch);
# stage 2 imports it from there under its usual names.
from corpus.files import atomic_write, atomic_write_text  # noqa: F401


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_save_array(path: str | Path, arr) -> None:
    """np.save through a temporary file (np.save given a path would append '.npy' to the temporary name)."""
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)

    atomic_write(path, write)


def load_checkpoint(path: str | Path) -> dict:
    """Load with weights_only=True: a checkpoint can never run code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None


def dataset_entries(bundle) -> dict:
    """What a checkpoint stores about its dataset's clips: the layout (its name for older readers, and the
    whole layout, so that a custom skeleton needs no meta.json at inference) and the centring the loader applied."""
    from recognizer.method.graph import layout_to_dict

    return {"layout": bundle.layout.name, "layout_spec": layout_to_dict(bundle.layout),
            "centre": getattr(bundle, "centre", "none")}


def checkpoint_layout(ckpt: dict, where: str | Path):
    """The skeleton layout a checkpoint was trained on; older checkpoints name a shipped layout only."""
    from recognizer.method.graph import get_layout, layout_from_spec

    spec = ckpt.get("layout_spec")
    try:
        if spec is not None:
            return layout_from_spec(spec)
        return get_layout(ckpt["layout"])
    except ValueError as e:
        raise ValueError(f"{where}: {e}" + ("" if spec is not None else
                         " (an older checkpoint stores only the layout's name; retrain to store the layout)")) from None
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where}: the checkpoint's layout is malformed ({e})") from None
