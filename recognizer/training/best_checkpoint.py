"""`best.pt`: the epoch with the best validation top-1, kept beside the last checkpoint.

Chosen only on the validation split held out of train (`data.val_fraction` > 0), never on test, so
picking it does not leak the test set. Ties keep the earlier epoch. The choice is read back from the
history in the checkpoint, so a resumed run goes on comparing against the right best.
"""

from __future__ import annotations

import torch


def is_new_best(history: list[dict]) -> bool:
    """Did the latest epoch beat every earlier epoch's validation top-1?"""
    if not history or "val_top1" not in history[-1]:
        return False
    earlier = [h["val_top1"] for h in history[:-1] if "val_top1" in h]
    return not earlier or history[-1]["val_top1"] > max(earlier)


def best_summary(history: list[dict]) -> dict:
    """{'best_epoch', 'best_val_top1'} for metrics.json, or {} when no validation split was scored."""
    scored = [h for h in history if "val_top1" in h]
    if not scored:
        return {}
    best = max(scored, key=lambda h: (h["val_top1"], -h["epoch"]))
    return {"best_epoch": int(best["epoch"]), "best_val_top1": float(best["val_top1"])}


def usable_for_inference(state: dict, class_text: torch.Tensor) -> dict:
    """A checkpoint state whose model carries the epoch's class text, so `pcle evaluate`/`predict` can load it."""
    model = dict(state["model"])
    model["class_text"] = class_text.detach().float().cpu()
    return {**state, "model": model}
