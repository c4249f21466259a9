"""Numbers that say whether the text side and the interaction learn, logged with every epoch.

Why: PCLE's first CPU grid gave nothing over GAP, and its logs could not say why. These are the
measurements that found it: class prompts that start nearly identical (off-diagonal cosine of the class
text embeddings), an interaction whose contrastive loss stays at chance (ln C for C classes), the logit
scales (the after-interaction scale was never logged), and how far the learned context moved from its
init. `pcle runs` and `pcle curves` read them from log.jsonl.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CHANCE_MARGIN = 0.97  # contrastive_after >= this x ln C counts as "at chance"


def text_cosines(class_text: torch.Tensor) -> dict[str, float]:
    """Mean, min and max off-diagonal cosine of (C, D) class text embeddings."""
    c = class_text.shape[0]
    if c < 2:
        return {}
    unit = F.normalize(class_text.float(), dim=-1)
    sim = unit @ unit.T  # (C, C)
    off = sim[~torch.eye(c, dtype=torch.bool, device=sim.device)]
    return {"text_cos_mean": float(off.mean()), "text_cos_min": float(off.min()), "text_cos_max": float(off.max())}


def epoch_diagnostics(model, class_text: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Text cosines, every logit scale (`scale_<term>`), ln C beside contrastive_after, the context's drift."""
    from recognizer.method.model import SCALE_TERMS

    out = text_cosines(class_text)
    scales = model.scales().detach().float().cpu()
    out.update({f"scale_{name}": float(v) for name, v in zip(SCALE_TERMS, scales)})
    if model.interacts:
        out["contrastive_after_chance"] = math.log(num_classes)
    if model.prompt_learner is not None:
        out["ctx_drift"] = model.prompt_learner.drift()
    return out


def at_chance(stats: dict) -> bool:
    """Is the contrastive loss after interaction still within CHANCE_MARGIN of ln C?"""
    chance = stats.get("contrastive_after_chance")
    return chance is not None and "contrastive_after" in stats and stats["contrastive_after"] >= CHANCE_MARGIN * chance


def interaction_warning(stats: dict, epochs: int) -> str | None:
    """A warning, once (at the epoch that completes half the run), when the interaction has not left chance."""
    if stats.get("epoch") != max(1, math.ceil(epochs / 2)) or not at_chance(stats):
        return None
    return (f"warning: after {stats['epoch']} of {epochs} epochs the interaction is still at chance "
            f"(contrastive_after {stats['contrastive_after']:.3f}, ln C = {stats['contrastive_after_chance']:.3f}): "
            "its similarities do not depend on the skeleton yet (docs/method.md: PCLE's interaction)")
