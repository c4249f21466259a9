"""Atomic writes: a crash or Ctrl-C mid-write never leaves a half-written checkpoint or cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: str | Path, write) -> None:
    """Call write(tmp_path) then rename over `path` (same directory, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # on disk before the rename, so a power cut cannot leave an empty file
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


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
